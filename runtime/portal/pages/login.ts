import { html, page } from '../html.js';
import type { Lang, Translate } from '../i18n.js';
import { dataBlock } from './data-block.js';

export function loginPage(o: { lang: Lang; t: Translate; currentUrl: string; returnTo: string; requestId: string }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('login.title'),
    scripts: ['simplewebauthn-browser.js', 'login.js'],
    body: html`
<p>${t('login.intro')}</p>
<form id="login-form" class="card" novalidate>
  <label for="username">${t('login.username')}</label>
  <input id="username" name="username" type="text" autocomplete="username webauthn" autocapitalize="none" spellcheck="false" aria-describedby="username-hint">
  <p id="username-hint" class="hint">${t('login.usernameHint')}</p>
  <button id="passkey-login" type="submit" class="primary">${t('login.button')}</button>
  <p id="status" class="status" role="status" aria-live="polite"></p>
</form>
<p class="hint">${t('login.phoneHint')}</p>
<p><a id="totp-login-link" href="/.kanmon/login/totp?return=${encodeURIComponent(o.returnTo)}">${t('login.useTotp')}</a></p>
<p><a id="recovery-login-link" href="/.kanmon/login/recovery">${t('login.useRecovery')}</a></p>
${dataBlock({
  returnTo: o.returnTo,
  messages: {
    working: t('common.working'),
    failed: t('login.failed'),
    cancelled: t('common.cancelled'),
    unsupported: t('common.unsupported'),
  },
})}`,
  });
}
