(function () {
  'use strict';
  var W = window.SimpleWebAuthnBrowser;
  var K = window.Kanmon;
  var data = K.pageData();
  var msg = data.messages || {};

  async function login(useAutofill) {
    var options = await K.postJson('/.kanmon/api/login/options', {});
    var response = await W.startAuthentication({ optionsJSON: options, useBrowserAutofill: useAutofill });
    K.setStatus(msg.working, 'busy');
    var result = await K.postJson('/.kanmon/api/login/verify', { response: response, returnTo: data.returnTo });
    window.location.assign(result.redirect || '/');
  }

  function fail(err) {
    if (err && err.name === 'AbortError') return; // superseded by the button's ceremony
    // A store outage has its own explanation, sent by the server in the page's language.
    K.setStatus(err && err.code === 'store-unavailable' ? err.message : K.isCancel(err) ? msg.cancelled : msg.failed, 'error');
    var button = document.getElementById('passkey-login');
    if (button) button.disabled = false;
  }

  document.addEventListener('DOMContentLoaded', function () {
    var form = document.getElementById('login-form');
    var button = document.getElementById('passkey-login');
    if (!W.browserSupportsWebAuthn()) {
      K.setStatus(msg.unsupported, 'error');
      button.disabled = true;
      return;
    }
    // Conditional mediation: passkeys offered in the username field's autofill.
    W.browserSupportsWebAuthnAutofill().then(function (ok) {
      if (ok) login(true).catch(fail);
    });
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      button.disabled = true;
      K.setStatus(msg.working, 'busy');
      // Starting a modal ceremony aborts the pending autofill one (the library does this).
      login(false).catch(fail);
    });
  });
})();
