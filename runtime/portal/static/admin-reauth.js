// A fresh passkey assertion for a sensitive console action, then back to where it started.
(function () {
  'use strict';
  var W = window.SimpleWebAuthnBrowser;
  var K = window.Kanmon;

  async function post(path, body, csrf) {
    var res = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Kanmon-Csrf': csrf },
      credentials: 'same-origin',
      body: JSON.stringify(body || {}),
    });
    var data = {};
    try {
      data = await res.json();
    } catch (e) {
      data = {};
    }
    if (!res.ok) {
      var err = new Error(data.message || 'request failed');
      err.status = res.status;
      throw err;
    }
    return data;
  }

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
        var options = await post('/.kanmon/admin/api/reauth/options', {}, data.csrf);
        var response = await W.startAuthentication({ optionsJSON: options });
        var result = await post('/.kanmon/admin/api/reauth/verify', { response: response, returnTo: button.getAttribute('data-return') }, data.csrf);
        window.location.assign(result.redirect || '/.kanmon/admin');
      } catch (err) {
        K.setStatus(K.isCancel(err) ? msg.cancelled : msg.failed, 'error');
        button.disabled = false;
      }
    });
  });
})();
