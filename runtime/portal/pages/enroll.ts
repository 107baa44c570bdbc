import { html, page, timeTag } from '../html.js';
import type { Lang, Translate } from '../i18n.js';
import { dataBlock } from './data-block.js';

export function enrollPage(o: {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
  token: string;
  bootstrap: boolean;
  username?: string;
  displayName?: string;
  expiresAt: number;
}): string {
  const { t } = o;
  return page({
    ...o,
    title: t('enroll.title'),
    scripts: ['simplewebauthn-browser.js', 'enroll.js'],
    body: html`
<p>${o.bootstrap ? t('enroll.bootstrapIntro') : t('enroll.intro')}</p>
<form id="enroll-form" class="card" novalidate>
  ${
    o.bootstrap
      ? html`<label for="username">${t('enroll.username')}</label>
  <input id="username" name="username" type="text" value="admin" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="64">
  <label for="display-name">${t('enroll.displayName')}</label>
  <input id="display-name" name="displayName" type="text" autocomplete="name" maxlength="128">`
      : html`<p><strong>${t('enroll.account')}:</strong> ${o.displayName} (<span id="enroll-username">${o.username}</span>)</p>`
  }
  <label for="passkey-name">${t('enroll.passkeyName')}</label>
  <input id="passkey-name" name="passkeyName" type="text" value="${t('enroll.passkeyNameDefault')}" maxlength="64" aria-describedby="passkey-name-hint">
  <p id="passkey-name-hint" class="hint">${t('enroll.passkeyNameHint')}</p>
  <button id="create-passkey" type="submit" class="primary">${t('enroll.button')}</button>
  <p id="status" class="status" role="status" aria-live="polite"></p>
</form>
<p class="hint">${t('enroll.expires')} ${timeTag(o.expiresAt, '')}</p>
${dataBlock({
  token: o.token,
  messages: {
    working: t('common.working'),
    failed: t('enroll.failed'),
    exists: t('enroll.exists'),
    cancelled: t('common.cancelled'),
    unsupported: t('common.unsupported'),
  },
})}`,
  });
}
