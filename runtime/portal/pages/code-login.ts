import { html, page } from '../html.js';
import type { Lang, Translate } from '../i18n.js';
import { dataBlock } from './data-block.js';

/**
 * Sign-in with a username and a code: an authenticator app's (`otp`) or a recovery code
 * (`recovery`). One page for both, because the form and the refusal are the same: a generic
 * message that never says which of username or code was wrong.
 */
export function codeLoginPage(o: {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
  kind: 'otp' | 'recovery';
  returnTo: string;
  /** Prefilled when a session exists (a step-up); the user can still change it. */
  username?: string;
}): string {
  const { t } = o;
  const otp = o.kind === 'otp';
  const back = `/.kanmon/login?return=${encodeURIComponent(o.returnTo)}`;
  const other = otp ? `/.kanmon/login/recovery` : `/.kanmon/login/totp?return=${encodeURIComponent(o.returnTo)}`;
  return page({
    ...o,
    title: t(otp ? 'totpLogin.title' : 'recoveryLogin.title'),
    scripts: ['code-login.js'],
    body: html`
<p>${t(otp ? 'totpLogin.intro' : 'recoveryLogin.intro')}</p>
<form id="code-login-form" class="card" data-kind="${o.kind}" novalidate>
  <label for="username">${t('login.username')}</label>
  <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="64" value="${o.username ?? ''}" required>
  <label for="code">${t(otp ? 'totpLogin.code' : 'recoveryLogin.code')}</label>
  ${
    otp
      ? html`<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="7" spellcheck="false" required>`
      : html`<input id="code" name="code" type="text" autocomplete="off" autocapitalize="none" spellcheck="false" maxlength="16" required>`
  }
  <button id="code-login" type="submit" class="primary">${t('common.signIn')}</button>
  <p id="status" class="status" role="status" aria-live="polite"></p>
  <p id="lockout-hint" class="hint">${t('codeLogin.lockoutHint')}</p>
</form>
<p><a id="passkey-login-link" href="${back}">${t('codeLogin.usePasskey')}</a></p>
<p><a id="other-code-link" href="${other}">${t(otp ? 'login.useRecovery' : 'login.useTotp')}</a></p>
${dataBlock({
  endpoint: otp ? '/.kanmon/api/login/totp' : '/.kanmon/api/login/recovery',
  returnTo: o.returnTo,
  messages: { working: t('codeLogin.working'), failed: t('codeLogin.failed') },
})}`,
  });
}
