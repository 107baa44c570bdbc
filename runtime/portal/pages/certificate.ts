import { CA_CERT_PATH, CERT_DOWNLOAD_PATH } from '../../ca/client-certificates.js';
import type { CertificateGateRefusal } from '../../services/device-enrollment.js';
import type { ClientCertificate } from '../../store/types.js';
import { html, page, timeTag, type Html } from '../html.js';
import type { Lang, MessageKey, Translate } from '../i18n.js';

interface Base {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
}

const SYSTEMS = ['windows', 'macos', 'ios', 'android'] as const;

/** Install steps per operating system, the same on the download page and wherever a certificate is handed out. */
export function installSteps(t: Translate) {
  return html`<h2>${t('certDownload.installTitle')}</h2>${SYSTEMS.map(
    (os) => html`<section class="install-os" id="install-${os}"><h3>${t(`certDownload.os.${os}` as MessageKey)}</h3><p>${t(`certDownload.os.${os}.steps` as MessageKey)}</p></section>`,
  )}`;
}

/**
 * The confirmation page of a certificate download link. Opening the link downloads nothing:
 * mail scanners and link previews fetch with GET, and the link works only once, so only the
 * user's own POST from this page redeems it.
 */
export function certDownloadPage(o: Base & { token: string }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('certDownload.title'),
    body: html`<p>${t('certDownload.intro')}</p><p>${t('certDownload.password')}</p>
<form id="cert-download-form" method="post" action="${CERT_DOWNLOAD_PATH}">
  <input type="hidden" name="token" value="${o.token}">
  <button id="cert-download" type="submit" class="primary">${t('certDownload.button')}</button>
</form>
${installSteps(t)}
<p><small>${t('certDownload.caNote')} <a href="${CA_CERT_PATH}">${t('certDownload.caLink')}</a></small></p>`,
  });
}

/** Used, expired or unknown download links. */
export function certDownloadGonePage(o: Base): string {
  const { t } = o;
  return page({ ...o, title: t('certDownload.gone.title'), body: html`<p id="cert-download-gone" class="message">${t('certDownload.gone.body')}</p>` });
}

/** Where the certificate offered after enrollment is taken or declined. */
export const ENROLL_CERTIFICATE_PATH = '/.kanmon/enroll/certificate';
/** Where a user confirms revoking one of their own certificates. */
export const ACCOUNT_CERTIFICATE_REVOKE_PATH = '/.kanmon/account/certificates/revoke';

/** Right after enrollment: a certificate for the device the user is on. A plain form: nothing needs script. */
export function certificateOfferPage(o: Base & { deviceLabel: string; next: string }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('devices.offer.title'),
    body: html`<p>${t('devices.offer.intro')}</p>
<form id="cert-offer-form" class="card" method="post" action="${ENROLL_CERTIFICATE_PATH}">
  <input type="hidden" name="next" value="${o.next}">
  <label for="device-label">${t('devices.offer.deviceLabel')}</label>
  <input id="device-label" name="deviceLabel" type="text" value="${o.deviceLabel}" maxlength="64" required aria-describedby="device-label-hint">
  <p id="device-label-hint" class="hint">${t('devices.offer.deviceHint')}</p>
  <div class="choice"><input type="checkbox" id="cert-legacy" name="legacy" value="on"><label for="cert-legacy">${t('devices.offer.legacy')}</label></div>
  <button id="cert-offer-accept" type="submit" name="action" value="accept" class="primary">${t('devices.offer.accept')}</button>
  <button id="cert-offer-decline" type="submit" name="action" value="decline" formnovalidate>${t('devices.offer.decline')}</button>
</form>
${installSteps(t)}`,
  });
}

/** The offer was taken: the password once, the one-time download, and how to install it. */
export function certificateIssuedPage(o: Base & { password: string; token: string; deviceLabel: string; serial: string; expiresAt: number; next: string }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('devices.issued.title'),
    body: html`<p><strong>${t('devices.issued.device')}:</strong> <span id="cert-device">${o.deviceLabel}</span> (<span id="cert-serial">${o.serial}</span>) · ${t('devices.issued.expires')} ${timeTag(o.expiresAt, '')}</p>
<div class="message"><p>${t('devices.issued.password')}</p><p><code id="cert-password" class="secret">${o.password}</code></p></div>
<p>${t('devices.issued.once')}</p>
<form id="cert-download-form" method="post" action="${CERT_DOWNLOAD_PATH}">
  <input type="hidden" name="token" value="${o.token}">
  <button id="cert-download" type="submit" class="primary">${t('devices.issued.download')}</button>
</form>
${installSteps(t)}
<p><a id="cert-continue" class="button" href="${o.next}">${t('devices.offer.continue')}</a></p>
<p><small>${t('certDownload.caNote')} <a href="${CA_CERT_PATH}">${t('certDownload.caLink')}</a></small></p>`,
  });
}

/** The offer was used, declined or has expired. */
export function certificateOfferGonePage(o: Base & { next: string }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('devices.offer.title'),
    body: html`<p id="cert-offer-gone" class="message">${t('devices.offer.gone')}</p><p><a class="button" href="${o.next}">${t('devices.offer.continue')}</a></p>`,
  });
}

/** Enrollment needs this user's device certificate, and this connection did not show a valid one. */
export function enrollCertificateRequiredPage(o: Base & { reason: CertificateGateRefusal }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('devices.gate.title'),
    body: html`<div id="enroll-certificate-required" data-reason="${o.reason}">
<p class="message">${t('devices.gate.body')}</p>
<p><strong>${t(`certificate.reason.${o.reason}` as MessageKey)}</strong></p>
<p>${t('devices.gate.how')}</p>
</div>
${installSteps(t)}
<p><a class="button" href="${o.currentUrl}">${t('certificate.retry')}</a></p>`,
  });
}

type CertificateState = 'active' | 'revoked' | 'expired';

function stateOf(c: ClientCertificate, now: number): CertificateState {
  if (c.status !== 'active') return 'revoked';
  return c.expiresAt <= now ? 'expired' : 'active';
}

/** The account page's list of the user's own certificates, each active one with a way to revoke it. */
export function accountCertificatesSection(t: Translate, certificates: readonly ClientCertificate[], now: number = Date.now()): Html {
  const rows = certificates.map((c) => {
    const state = stateOf(c, now);
    return html`<tr data-serial="${c.serial}" data-status="${state}">
  <td class="cert-device">${c.deviceLabel}</td>
  <td><code>${c.serial}</code></td>
  <td>${timeTag(c.issuedAt, '')}</td>
  <td>${timeTag(c.expiresAt, '')}</td>
  <td class="cert-status">${t(`devices.status.${state}` as MessageKey)}</td>
  <td class="actions">${state === 'active' ? html`<a class="button danger cert-revoke" href="${ACCOUNT_CERTIFICATE_REVOKE_PATH}?serial=${c.serial}">${t('devices.account.revoke')}</a>` : ''}</td>
</tr>`;
  });
  return html`<section id="certificates-section" aria-labelledby="certificates-heading">
<h2 id="certificates-heading">${t('devices.account.title')}</h2>
<p class="hint">${t('devices.account.hint')}</p>
<table id="certificates">
<thead><tr><th scope="col">${t('devices.account.col.device')}</th><th scope="col">${t('devices.account.col.serial')}</th><th scope="col">${t('devices.account.col.issued')}</th><th scope="col">${t('devices.account.col.expires')}</th><th scope="col">${t('devices.account.col.status')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${rows}</tbody>
</table>
</section>`;
}

/** Confirming the revocation of one's own certificate (a GET shows it; only the POST revokes). */
export function revokeOwnCertificatePage(o: Base & { certificate: ClientCertificate }): string {
  const { t } = o;
  const c = o.certificate;
  return page({
    ...o,
    title: t('devices.revoke.title'),
    body: html`<p><strong>${t('devices.issued.device')}:</strong> ${c.deviceLabel} (<code>${c.serial}</code>) · ${t('devices.issued.expires')} ${timeTag(c.expiresAt, '')}</p>
<p class="message">${t('devices.revoke.body')}</p>
<form id="cert-revoke-form" method="post" action="${ACCOUNT_CERTIFICATE_REVOKE_PATH}">
  <input type="hidden" name="serial" value="${c.serial}">
  <button id="cert-revoke-confirm" type="submit" class="danger">${t('devices.revoke.confirm')}</button>
  <a class="button" href="/.kanmon/account">${t('common.cancel')}</a>
</form>`,
  });
}

/** After revoking: what happened, and the way back. */
export function revokedOwnCertificatePage(o: Base): string {
  const { t } = o;
  return page({
    ...o,
    title: t('devices.account.title'),
    body: html`<p id="cert-revoked" class="message">${t('devices.revoke.done')}</p><p><a class="button" href="/.kanmon/account">${t('devices.revoke.back')}</a></p>`,
  });
}
