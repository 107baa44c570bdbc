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

  document.addEventListener('DOMContentLoaded', function () {
    var form = document.getElementById('enroll-form');
    var button = document.getElementById('create-passkey');
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
        });
        var response = await W.startRegistration({ optionsJSON: options });
        var result = await K.postJson('/.kanmon/api/enroll/verify', {
          token: data.token,
          response: response,
          name: value('passkey-name'),
        });
        window.location.assign(result.redirect || '/');
      } catch (err) {
        K.setStatus(err && err.code === 'conflict' ? msg.exists : K.isCancel(err) ? msg.cancelled : err.message || msg.failed, 'error');
        button.disabled = false;
      }
    });
  });
})();
