(function () {
  'use strict';
  var W = window.SimpleWebAuthnBrowser;
  var K = window.Kanmon;
  var data = K.pageData();
  var msg = data.messages || {};

  function value(id) {
    var el = document.getElementById(id);
    return el ? el.value : undefined;
  }

  // Where the passkey should live: this device, a phone (QR code) or a security key.
  function chosenAuthenticator() {
    var checked = document.querySelector('input[name="authenticator"]:checked');
    return checked ? checked.value : undefined;
  }

  function messageFor(err) {
    if (!err) return msg.failed;
    if (err.code === 'conflict') return msg.exists;
    if (err.code === 'code-wrong' || err.code === 'code-required') return msg.codeWrong;
    if (err.code === 'code-locked') return msg.codeLocked;
    if (err.code === 'passkey-not-device-bound') return msg.needsSecurityKey;
    if (K.isCancel(err)) return msg.cancelled;
    return err.message || msg.failed;
  }

  document.addEventListener('DOMContentLoaded', function () {
    var form = document.getElementById('enroll-form');
    var button = document.getElementById('create-passkey');
    var thenTotp = document.getElementById('then-totp');
    if (!W.browserSupportsWebAuthn()) {
      K.setStatus(msg.unsupported, 'error');
      button.disabled = true;
      return;
    }
    form.addEventListener('submit', async function (event) {
      event.preventDefault();
      button.disabled = true;
      K.setStatus(msg.working, 'busy');
      try {
        var options = await K.postJson('/.kanmon/api/enroll/options', {
          token: data.token,
          username: value('username'),
          displayName: value('display-name'),
          code: value('enroll-code'),
          authenticator: chosenAuthenticator(),
        });
        var response = await W.startRegistration({ optionsJSON: options });
        var result = await K.postJson('/.kanmon/api/enroll/verify', {
          token: data.token,
          response: response,
          name: value('passkey-name'),
          thenTotp: !!(thenTotp && thenTotp.checked),
        });
        window.location.assign(result.redirect || '/');
      } catch (err) {
        K.setStatus(messageFor(err), 'error');
        if (err && err.code === 'code-locked') return;
        button.disabled = false;
        if (err && (err.code === 'code-wrong' || err.code === 'code-required')) {
          var code = document.getElementById('enroll-code');
          if (code) code.focus();
        }
      }
    });
  });
})();
