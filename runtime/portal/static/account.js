(function () {
  'use strict';
  var W = window.SimpleWebAuthnBrowser;
  var K = window.Kanmon;
  var data = K.pageData();
  var msg = data.messages || {};

  function reloadWith(text) {
    if (text) sessionStorage.setItem('kanmon-status', text);
    window.location.reload();
  }

  document.addEventListener('DOMContentLoaded', function () {
    var pending = sessionStorage.getItem('kanmon-status');
    if (pending) {
      sessionStorage.removeItem('kanmon-status');
      K.setStatus(pending, 'ok');
    }

    document.getElementById('add-passkey-form').addEventListener('submit', async function (event) {
      event.preventDefault();
      if (!W.browserSupportsWebAuthn()) return K.setStatus(msg.unsupported, 'error');
      K.setStatus(msg.working, 'busy');
      try {
        var options = await K.postJson('/.kanmon/api/account/passkeys/options', {});
        var response = await W.startRegistration({ optionsJSON: options });
        await K.postJson('/.kanmon/api/account/passkeys/verify', {
          response: response,
          name: document.getElementById('new-passkey-name').value,
        });
        reloadWith(msg.added);
      } catch (err) {
        K.setStatus(K.isCancel(err) ? msg.cancelled : msg.failed, 'error');
      }
    });

    document.querySelectorAll('button.rename').forEach(function (button) {
      button.addEventListener('click', async function () {
        var name = window.prompt(msg.renamePrompt, button.getAttribute('data-name') || '');
        if (name === null) return;
        try {
          await K.postJson('/.kanmon/api/account/passkeys/rename', { id: button.getAttribute('data-id'), name: name });
          reloadWith();
        } catch (err) {
          K.setStatus(msg.failed, 'error');
        }
      });
    });

    document.querySelectorAll('button.delete').forEach(function (button) {
      button.addEventListener('click', async function () {
        if (!window.confirm(msg.confirmDelete)) return;
        try {
          await K.postJson('/.kanmon/api/account/passkeys/delete', { id: button.getAttribute('data-id') });
          reloadWith();
        } catch (err) {
          K.setStatus(err && err.code === 'last-factor' ? msg.lastFactor : msg.failed, 'error');
        }
      });
    });

    document.getElementById('sign-out-others').addEventListener('click', async function () {
      try {
        await K.postJson('/.kanmon/api/account/sessions/revoke-others', {});
        reloadWith(msg.signedOutOthers);
      } catch (err) {
        K.setStatus(msg.failed, 'error');
      }
    });
  });
})();
