import type { ClientCertificate, Session, User } from '../../store/types.js';
import { accountCertificatesSection } from './certificate.js';
import type { PasskeySummary } from '../../services/passkey-account.js';
import { html, page, timeTag } from '../html.js';
import type { Lang, MessageKey, Translate } from '../i18n.js';
import { dataBlock } from './data-block.js';

export function accountPage(o: {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
  user: User;
  passkeys: readonly PasskeySummary[];
  sessions: readonly Session[];
  currentSessionId: string;
  /** Some route or group rule needs this user's passkeys to be device-bound. */
  deviceBoundNeeded?: boolean;
  /** The user's own client certificates (the section is shown when there are any). */
  certificates?: readonly ClientCertificate[];
}): string {
  const { t } = o;
  // Why a passkey does not count where a device-bound or approved-model passkey is required.
  const shortfalls = o.passkeys
    .filter((p) => p.notAcceptedBy.length > 0)
    .map(
      (p) => html`<li data-credential-id="${p.id}"><strong>${p.name}</strong>: ${[...new Set(p.notAcceptedBy.map((n) => n.reason))].map((r) => t(`account.short.${r}` as MessageKey)).join('; ')} (${t('account.notAcceptedBy')} ${p.notAcceptedBy.map((n) => n.route).join(', ')})</li>`,
    );
  const passkeyRows = o.passkeys.map(
    (p) => html`<tr data-credential-id="${p.id}">
  <td class="passkey-name">${p.name}</td>
  <td>${timeTag(p.createdAt, '')}</td>
  <td>${timeTag(p.lastUsedAt, t('account.never'))}</td>
  <td class="passkey-kind">${p.synced ? t('account.synced') : t('account.deviceBound')}</td>
  <td>${p.authenticator ?? t('account.unknownAuthenticator')}</td>
  <td class="actions">
    <button type="button" class="rename" data-id="${p.id}" data-name="${p.name}">${t('account.rename')}</button>
    <button type="button" class="delete danger" data-id="${p.id}">${t('account.delete')}</button>
  </td>
</tr>`,
  );
  const sessionRows = [...o.sessions]
    .sort((a, b) => b.lastSeenAt - a.lastSeenAt)
    .map(
      (s) => html`<tr${s.id === o.currentSessionId ? html` class="current"` : ''}>
  <td>${timeTag(s.createdAt, '')}${s.id === o.currentSessionId ? html` <strong>(${t('account.thisSession')})</strong>` : ''}</td>
  <td>${timeTag(s.lastSeenAt, '')}</td>
  <td>${s.ip}</td>
  <td class="ua">${s.userAgent.slice(0, 120)}</td>
</tr>`,
    );
  return page({
    ...o,
    title: t('account.title'),
    scripts: ['simplewebauthn-browser.js', 'account.js'],
    body: html`
<p>${t('account.signedInAs')}: <strong id="account-display-name">${o.user.displayName}</strong> (<span id="account-username">${o.user.username}</span>)</p>
<p><a href="/">${t('common.backToApp')}</a></p>
<section aria-labelledby="passkeys-heading">
<h2 id="passkeys-heading">${t('account.passkeys')}</h2>
<table id="passkeys">
<thead><tr><th scope="col">${t('account.col.name')}</th><th scope="col">${t('account.col.created')}</th><th scope="col">${t('account.col.lastUsed')}</th><th scope="col">${t('account.col.kind')}</th><th scope="col">${t('account.col.authenticator')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${passkeyRows}</tbody>
</table>
${o.deviceBoundNeeded ? html`<p id="passkey-policy-notice" class="message">${t('account.policyNotice')}</p>` : ''}
${shortfalls.length > 0 ? html`<ul id="passkey-policy">${shortfalls}</ul>` : ''}
<p id="add-passkey-step" class="message" hidden>${t('account.recoveryStep')}</p>
<form id="add-passkey-form" class="inline" novalidate>
  <label for="new-passkey-name">${t('enroll.passkeyName')}</label>
  <input id="new-passkey-name" type="text" maxlength="64" value="${t('enroll.passkeyNameDefault')}">
  <button id="add-passkey" type="submit" class="primary">${t('account.add')}</button>
</form>
</section>
<section id="totp-section" aria-labelledby="totp-heading">
<h2 id="totp-heading">${t('account.totp')}</h2>
<p class="hint">${t('account.totpHint')}</p>
<p id="totp-status">${t('account.loading')}</p>
<div id="totp-enroll-row" hidden><button id="totp-enroll" type="button" class="primary">${t('account.totpEnroll')}</button></div>
<div id="totp-reset-row" hidden><button id="totp-reset" type="button" class="danger">${t('account.totpReset')}</button></div>
</section>
<section id="recovery-section" aria-labelledby="recovery-heading">
<h2 id="recovery-heading">${t('account.recovery')}</h2>
<p class="hint">${t('account.recoveryHint')}</p>
<p id="recovery-status">${t('account.loading')}</p>
<div id="recovery-new" hidden>
  <p class="message"><strong>${t('account.recoveryShowOnce')}</strong></p>
  <ol id="recovery-codes"></ol>
</div>
<div id="recovery-generate-row" hidden><button id="recovery-generate" type="button">${t('account.recoveryGenerate')}</button></div>
</section>
${o.certificates && o.certificates.length > 0 ? accountCertificatesSection(t, o.certificates) : ''}
<section aria-labelledby="sessions-heading">
<h2 id="sessions-heading">${t('account.sessions')}</h2>
<table id="sessions">
<thead><tr><th scope="col">${t('account.col.started')}</th><th scope="col">${t('account.col.lastSeen')}</th><th scope="col">${t('account.col.address')}</th><th scope="col">${t('account.col.device')}</th></tr></thead>
<tbody>${sessionRows}</tbody>
</table>
<button id="sign-out-others" type="button">${t('account.signOutOthers')}</button>
</section>
<p><a id="upstream-apps-link" href="/.kanmon/account/apps">${t('upstream.credentials.link')}</a></p>
<form id="sign-out-form" method="post" action="/.kanmon/logout">
  <button id="sign-out" type="submit">${t('account.signOut')}</button>
</form>
<p id="status" class="status" role="status" aria-live="polite"></p>
${dataBlock({
  messages: {
    working: t('common.working'),
    failed: t('common.failed'),
    cancelled: t('common.cancelled'),
    unsupported: t('common.unsupported'),
    renamePrompt: t('account.renamePrompt'),
    confirmDelete: t('account.confirmDelete'),
    lastFactor: t('account.lastFactor'),
    added: t('account.added'),
    signedOutOthers: t('account.signedOutOthers'),
    totpOn: t('account.totpOn'),
    totpOff: t('account.totpOff'),
    totpConfirmReset: t('account.totpConfirmReset'),
    totpRemoved: t('account.totpRemoved'),
    totpLastFactor: t('account.totpLastFactor'),
    recoveryNone: t('account.recoveryNone'),
    recoveryUnused: t('account.recoveryUnused'),
    recoveryGenerate: t('account.recoveryGenerate'),
    recoveryRegenerate: t('account.recoveryRegenerate'),
    recoveryConfirmRegenerate: t('account.recoveryConfirmRegenerate'),
  },
})}`,
  });
}
