import type { Factor } from '../../config/schema.js';
import type { CertificateReason, StepUpReason } from '../../policy/decide.js';
import { html, page } from '../html.js';
import type { Lang, MessageKey, Translate } from '../i18n.js';

interface Base {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
}

/** A page that only says something: token problems, denials, errors, signed out. */
export function messagePage(o: Base & { titleKey: MessageKey; bodyKey: MessageKey; link?: { href: string; labelKey: MessageKey } }): string {
  const { t } = o;
  return page({
    ...o,
    title: t(o.titleKey),
    body: html`<p class="message">${t(o.bodyKey)}</p>${o.link ? html`<p><a class="button" href="${o.link.href}">${t(o.link.labelKey)}</a></p>` : ''}`,
  });
}

/** For a passkey that does not qualify: why, and what kind of authenticator would. */
const PASSKEY_REASONS: Partial<Record<StepUpReason, { why: MessageKey; what: MessageKey }>> = {
  'passkey-not-device-bound': { why: 'stepup.why.passkey-not-device-bound', what: 'stepup.what.deviceBound' },
  'authenticator-not-allowed': { why: 'stepup.why.authenticator-not-allowed', what: 'stepup.what.allowlisted' },
  'authenticator-not-attested': { why: 'stepup.why.authenticator-not-attested', what: 'stepup.what.attested' },
};

export function stepUpPage(o: Base & { alternatives: readonly (readonly Factor[])[]; loginHref: string; reason?: StepUpReason }): string {
  const { t } = o;
  const explained = o.reason ? PASSKEY_REASONS[o.reason] : undefined;
  const why = explained
    ? html`<div id="step-up-reason" class="message" data-reason="${o.reason}"><p><strong>${t(explained.why)}</strong></p><p>${t(explained.what)}</p><p><a href="/.kanmon/account">${t('stepup.accountLink')}</a></p></div>`
    : '';
  const items = o.alternatives.map((alt) => html`<li>${alt.map((f) => t(`factor.${f}` as MessageKey)).join(t('factor.and'))}</li>`);
  // The login page signs in with a passkey (and links the other ways); where a route takes an
  // authenticator app code, that page is offered directly too. Both keep the return path.
  const otpHref = o.alternatives.some((alt) => alt.includes('otp')) ? o.loginHref.replace('/.kanmon/login?', '/.kanmon/login/totp?') : undefined;
  return page({
    ...o,
    title: t('stepup.title'),
    body: html`<p>${t('stepup.body')}</p><ul>${items}</ul>${why}<p><a id="step-up-sign-in" class="button primary" href="${o.loginHref}">${t('common.signIn')}</a>${
      otpHref ? html` <a id="step-up-totp" class="button" href="${otpHref}">${t('stepup.useTotp')}</a>` : ''
    }</p>`,
  });
}

/**
 * The route needs a company device certificate this connection did not prove: what happened and
 * how to get one. Browsers choose a certificate once per connection and remember the choice, so
 * after installing one the user must restart the browser (or open a new private window).
 */
export function certificateRequiredPage(o: Base & { reason: CertificateReason }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('certificate.title'),
    body: html`<div id="certificate-required" class="message" data-reason="${o.reason}"><p><strong>${t('certificate.body')}</strong></p><p>${t(
      `certificate.reason.${o.reason}` as MessageKey,
    )}</p></div><h2>${t('certificate.howTitle')}</h2><ol><li>${t('certificate.how.ask')}</li><li>${t('certificate.how.link')}</li><li>${t('certificate.how.restart')}</li></ol><p><a id="certificate-retry" class="button primary" href="${o.currentUrl}">${t('certificate.retry')}</a></p>`,
  });
}
