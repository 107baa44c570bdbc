// Shared by every portal page. No inline script anywhere: the CSP forbids it.
(function () {
  'use strict';

  // Server renders times in UTC; show them in the viewer's own time zone and language.
  function localiseTimes() {
    var lang = document.documentElement.lang || undefined;
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
    } catch (e) {
      return;
    }
    document.querySelectorAll('time[datetime]').forEach(function (el) {
      var d = new Date(el.getAttribute('datetime'));
      if (!isNaN(d.getTime())) el.textContent = fmt.format(d);
    });
  }

  function pageData() {
    var el = document.getElementById('kanmon-data');
    if (!el) return {};
    try {
      return JSON.parse(el.textContent || '{}');
    } catch (e) {
      return {};
    }
  }

  // JSON POST to the portal API. Same-origin fetch sends the Origin header the server checks;
  // the console's API also wants its CSRF token (`csrf`) in X-Kanmon-Csrf.
  async function postJson(path, body, csrf) {
    var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (csrf) headers['X-Kanmon-Csrf'] = csrf;
    var res = await fetch(path, {
      method: 'POST',
      headers: headers,
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
      err.code = data.error;
      throw err;
    }
    return data;
  }

  function setStatus(text, kind) {
    var el = document.getElementById('status');
    if (!el) return;
    el.textContent = text || '';
    el.className = 'status' + (kind ? ' ' + kind : '');
  }

  // The browser reports a cancelled or timed-out prompt as NotAllowedError / AbortError.
  function isCancel(err) {
    return !!err && (err.name === 'NotAllowedError' || err.name === 'AbortError' || err.code === 'ERROR_CEREMONY_ABORTED');
  }

  window.Kanmon = { pageData: pageData, postJson: postJson, setStatus: setStatus, isCancel: isCancel };
  document.addEventListener('DOMContentLoaded', localiseTimes);
})();
