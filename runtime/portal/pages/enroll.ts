import type { PasskeyRequirement } from '../../policy/user-requirements.js';
import { effectiveChoice, type AuthenticatorChoice } from '../../services/passkey-choice.js';
import { html, page, timeTag } from '../html.js';
import type { Lang, MessageKey, Translate } from '../i18n.js';
import { dataBlock } from './data-block.js';

/** The choices in the order the page offers them, each with its label and hint. */
const CHOICES: ReadonlyArray<{ id: AuthenticatorChoice; label: MessageKey; hint: MessageKey }> = [
  { id: 'platform', label: 'enroll.choice.platform', hint: 'enroll.choice.platformHint' },
  { id: 'phone', label: 'enroll.choice.phone', hint: 'enroll.choice.phoneHint' },
  { id: 'security-key', label: 'enroll.choice.securityKey', hint: 'enroll.choice.securityKeyHint' },
];

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
  /** The link demands its one-time code (sent on another channel). */
  codeRequired?: boolean;
  /** What policy demands of this user's passkeys. */
  requirement?: PasskeyRequirement;
  /** Offer an authenticator app after the passkey. */
  otpUsable?: boolean;
}): string {
  const { t } = o;
  const requirement = o.requirement;
  const onlySecurityKey = !!requirement && requirement.groups.length > 0;
  // A user some of whose routes need a device-bound passkey starts at "security key".
  const preselected = (requirement && effectiveChoice(requirement, undefined)) ?? 'platform';
  const offered = onlySecurityKey ? CHOICES.filter((c) => c.id === 'security-key') : CHOICES;
  const choices = offered.map(
    (c) => html`<div class="choice">
    <input type="radio" id="choice-${c.id}" name="authenticator" value="${c.id}"${c.id === preselected ? html` checked` : ''} aria-describedby="choice-${c.id}-hint">
    <label for="choice-${c.id}">${t(c.label)}</label>
    <p id="choice-${c.id}-hint" class="hint">${t(c.hint)}</p>
  </div>`,
  );
  const policyNote = onlySecurityKey ? t('enroll.deviceBoundRequired') : requirement?.deviceBound ? t('enroll.deviceBoundAdvised') : '';
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
  ${
    o.codeRequired
      ? html`<label for="enroll-code">${t('enroll.code')}</label>
  <input id="enroll-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="16" aria-describedby="enroll-code-hint">
  <p id="enroll-code-hint" class="hint">${t('enroll.codeHint')}</p>`
      : ''
  }
  <fieldset id="authenticator-choice">
    <legend>${t('enroll.choice.legend')}</legend>
    ${policyNote ? html`<p id="enroll-policy-note" class="message">${policyNote}</p>` : ''}
    ${choices}
  </fieldset>
  ${requirement?.attestation === 'direct' ? html`<p id="enroll-attestation-note" class="hint">${t('enroll.attestationNote')}</p>` : ''}
  <label for="passkey-name">${t('enroll.passkeyName')}</label>
  <input id="passkey-name" name="passkeyName" type="text" value="${t('enroll.passkeyNameDefault')}" maxlength="64" aria-describedby="passkey-name-hint">
  <p id="passkey-name-hint" class="hint">${t('enroll.passkeyNameHint')}</p>
  ${
    o.otpUsable
      ? html`<div class="choice"><input type="checkbox" id="then-totp" name="thenTotp"><label for="then-totp">${t('enroll.totpAfter')}</label></div>`
      : ''
  }
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
    codeWrong: t('enroll.codeWrong'),
    codeLocked: t('enroll.codeLocked'),
    needsSecurityKey: t('enroll.needsSecurityKey'),
  },
})}`,
  });
}
