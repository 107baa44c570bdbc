import type { TotpEnrollmentView } from '../../services/totp.js';
import { Html, html, page, timeTag } from '../html.js';
import type { Lang, Translate } from '../i18n.js';
import { dataBlock } from './data-block.js';

/**
 * The authenticator-app setup page: the QR code of the otpauth URI, the same secret as text
 * in groups of four for apps without a camera, and a field for the code that confirms it.
 * With no setup in progress it offers to start one; with TOTP already on it says so.
 */
export function totpEnrollPage(o: {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
  username: string;
  state: 'pending' | 'none' | 'enabled';
  view?: TotpEnrollmentView;
}): string {
  const { t } = o;
  let body: Html;
  if (o.state === 'enabled') {
    body = html`<p id="totp-already" class="message">${t('totp.alreadySetUp')}</p>`;
  } else if (o.state === 'none' || !o.view) {
    body = html`<p id="totp-none" class="message">${t('totp.none')}</p>
<button id="totp-start" type="button" class="primary">${t('totp.start')}</button>
<p id="status" class="status" role="status" aria-live="polite"></p>`;
  } else {
    const v = o.view;
    body = html`<p>${t('totp.intro')}</p>
<figure id="totp-qr" role="img" aria-label="${t('totp.qrAlt')}">${new Html(v.qrSvg)}</figure>
<p>${t('totp.account')}: <strong id="totp-label">${v.issuer}:${o.username}</strong></p>
<p>${t('totp.manual')}</p>
<p><code id="totp-secret">${v.secretText}</code></p>
<form id="totp-confirm-form" class="card" novalidate>
  <label for="totp-code">${t('totp.confirmLabel')}</label>
  <input id="totp-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="7" spellcheck="false" required>
  <button id="totp-confirm" type="submit" class="primary">${t('totp.confirmButton')}</button>
  <p id="status" class="status" role="status" aria-live="polite"></p>
</form>
<p class="hint">${t('totp.expires')} ${timeTag(v.expiresAt, '')}</p>
<p><a id="totp-uri" href="${v.uri}">${t('totp.openInApp')}</a></p>`;
  }
  return page({
    ...o,
    title: t('totp.title'),
    scripts: ['totp.js'],
    body: html`${body}
<p><a href="/.kanmon/account">${t('account.title')}</a></p>
${dataBlock({
  messages: {
    working: t('codeLogin.working'),
    failed: t('common.failed'),
    confirmFailed: t('totp.confirmFailed'),
    confirmed: t('totp.confirmed'),
  },
})}`,
  });
}
