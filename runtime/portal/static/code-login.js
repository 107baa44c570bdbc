// Sign-in with a username and a code (authenticator app or recovery code).
(function () {
  'use strict';
  var K = window.Kanmon;
  var data = K.pageData();
  var msg = data.messages || {};

  // Codes are typed on phones and Japanese keyboards: fold full-width digits and letters to
  // ASCII and drop spaces before sending; the server accepts only the canonical form.
  function cleanCode(value) {
    return String(value || '').normalize('NFKC').replace(/\s+/g, '');
  }

  document.addEventListener('DOMContentLoaded', function () {
    var form = document.getElementById('code-login-form');
    var button = document.getElementById('code-login');
    var username = document.getElementById('username');
    var code = document.getElementById('code');
    (username.value ? code : username).focus();
    form.addEventListener('submit', async function (event) {
      event.preventDefault();
      button.disabled = true;
      K.setStatus(msg.working, 'busy');
      try {
        var result = await K.postJson(data.endpoint, {
          username: username.value.trim(),
          code: cleanCode(code.value),
          returnTo: data.returnTo,
        });
        window.location.assign(result.redirect || '/');
      } catch (err) {
        // A store outage has its own explanation, sent by the server in the page's language.
        K.setStatus(err && err.code === 'store-unavailable' ? err.message : msg.failed, 'error');
        code.value = '';
        code.focus();
        button.disabled = false;
      }
    });
  });
})();
