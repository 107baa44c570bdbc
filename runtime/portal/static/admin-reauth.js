// A fresh passkey assertion for a sensitive console action, then back to where it started.
(function () {
  'use strict';
  var W = window.SimpleWebAuthnBrowser;
  var K = window.Kanmon;

  document.addEventListener('DOMContentLoaded', function () {
    var data = K.pageData();
    var msg = data.messages || {};
    var button = document.getElementById('reauth-button');
    if (!button) return;
    if (!W.browserSupportsWebAuthn()) {
      K.setStatus(msg.unsupported, 'error');
      button.disabled = true;
      return;
    }
    button.addEventListener('click', async function () {
      button.disabled = true;
      K.setStatus(msg.working, 'busy');
      try {
        var options = await K.postJson('/.kanmon/admin/api/reauth/options', {}, data.csrf);
        var response = await W.startAuthentication({ optionsJSON: options });
        var result = await K.postJson('/.kanmon/admin/api/reauth/verify', { response: response, returnTo: button.getAttribute('data-return') }, data.csrf);
        window.location.assign(result.redirect || '/.kanmon/admin');
      } catch (err) {
        K.setStatus(K.isCancel(err) ? msg.cancelled : msg.failed, 'error');
        button.disabled = false;
      }
    });
  });
})();
