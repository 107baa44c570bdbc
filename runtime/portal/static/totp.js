// The authenticator-app setup page: start a setup, confirm it with a code from the app.
(function () {
  'use strict';
  var K = window.Kanmon;
  var data = K.pageData();
  var msg = data.messages || {};

  document.addEventListener('DOMContentLoaded', function () {
    var start = document.getElementById('totp-start');
    if (start) {
      start.addEventListener('click', async function () {
        start.disabled = true;
        try {
          await K.postJson('/.kanmon/api/account/totp/enroll', {});
          window.location.reload();
        } catch (err) {
          K.setStatus(msg.failed, 'error');
          start.disabled = false;
        }
      });
    }

    var form = document.getElementById('totp-confirm-form');
    if (!form) return;
    var code = document.getElementById('totp-code');
    var button = document.getElementById('totp-confirm');
    form.addEventListener('submit', async function (event) {
      event.preventDefault();
      button.disabled = true;
      K.setStatus(msg.working, 'busy');
      try {
        await K.postJson('/.kanmon/api/account/totp/confirm', {
          code: String(code.value || '').normalize('NFKC').replace(/\s+/g, ''),
        });
        // The account page shows this once it has loaded (see account.js).
        sessionStorage.setItem('kanmon-status', msg.confirmed);
        window.location.assign('/.kanmon/account');
      } catch (err) {
        K.setStatus(msg.confirmFailed, 'error');
        code.value = '';
        code.focus();
        button.disabled = false;
      }
    });
  });
})();
