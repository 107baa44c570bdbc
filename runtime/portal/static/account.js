(function () {
  'use strict';
  var W = window.SimpleWebAuthnBrowser;
  var K = window.Kanmon;
  var data = K.pageData();
  var msg = data.messages || {};

  function reloadWith(text) {
    if (text) sessionStorage.setItem('kanmon-status', text);
    // Leave a one-time step (?step=add-passkey) behind once it is done.
    if (window.location.search.indexOf('step=') >= 0) window.location.assign(window.location.pathname);
    else window.location.reload();
  }

  function show(id, visible) {
    var el = document.getElementById(id);
    if (el) el.hidden = !visible;
  }

  async function getJson(path) {
    var res = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (!res.ok) throw new Error('request failed');
    return res.json();
  }

  // Authenticator app and recovery codes: their state is fetched, so the page the account
  // route renders stays the same whatever factors exist.
  async function loadTotp() {
    var status = await getJson('/.kanmon/api/account/totp');
    var el = document.getElementById('totp-status');
    el.textContent = status.enabled ? msg.totpOn : msg.totpOff;
    el.setAttribute('data-state', status.enabled ? 'on' : 'off');
    show('totp-enroll-row', !status.enabled);
    show('totp-reset-row', !!status.enabled);
  }

  async function loadRecovery() {
    var status = await getJson('/.kanmon/api/account/recovery-codes');
    var el = document.getElementById('recovery-status');
    el.textContent = status.exists ? msg.recoveryUnused + ' ' + status.unused + ' / ' + status.total : msg.recoveryNone;
    el.setAttribute('data-unused', String(status.unused));
    document.getElementById('recovery-generate').textContent = status.exists ? msg.recoveryRegenerate : msg.recoveryGenerate;
    document.getElementById('recovery-generate').setAttribute('data-exists', status.exists ? 'yes' : 'no');
    show('recovery-generate-row', true);
  }

  function setUpFallbackFactors() {
    loadTotp().catch(function () {
      K.setStatus(msg.failed, 'error');
    });
    loadRecovery().catch(function () {
      K.setStatus(msg.failed, 'error');
    });

    document.getElementById('totp-enroll').addEventListener('click', async function () {
      try {
        var result = await K.postJson('/.kanmon/api/account/totp/enroll', {});
        window.location.assign(result.next || '/.kanmon/account/totp');
      } catch (err) {
        K.setStatus(msg.failed, 'error');
      }
    });

    document.getElementById('totp-reset').addEventListener('click', async function () {
      if (!window.confirm(msg.totpConfirmReset)) return;
      try {
        await K.postJson('/.kanmon/api/account/totp/reset', {});
        reloadWith(msg.totpRemoved);
      } catch (err) {
        K.setStatus(err && err.code === 'last-factor' ? msg.totpLastFactor : msg.failed, 'error');
      }
    });

    var generate = document.getElementById('recovery-generate');
    generate.addEventListener('click', async function () {
      if (generate.getAttribute('data-exists') === 'yes' && !window.confirm(msg.recoveryConfirmRegenerate)) return;
      generate.disabled = true;
      try {
        var result = await K.postJson('/.kanmon/api/account/recovery-codes/generate', {});
        // Shown once, from this answer only: nothing stores them in the page or the browser.
        var list = document.getElementById('recovery-codes');
        list.textContent = '';
        result.codes.forEach(function (code) {
          var item = document.createElement('li');
          var text = document.createElement('code');
          text.textContent = code;
          item.appendChild(text);
          list.appendChild(item);
        });
        show('recovery-new', true);
        await loadRecovery();
      } catch (err) {
        K.setStatus(msg.failed, 'error');
      } finally {
        generate.disabled = false;
      }
    });

    // After a recovery-code sign-in: straight to registering a new passkey.
    if (new URLSearchParams(window.location.search).get('step') === 'add-passkey') {
      show('add-passkey-step', true);
      var name = document.getElementById('new-passkey-name');
      name.scrollIntoView({ block: 'center' });
      name.focus();
    }
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

    setUpFallbackFactors();

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
