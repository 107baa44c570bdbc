import type { Factor } from '../../config/schema.js';
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

export function stepUpPage(o: Base & { alternatives: readonly (readonly Factor[])[]; loginHref: string }): string {
  const { t } = o;
  const items = o.alternatives.map((alt) => html`<li>${alt.map((f) => t(`factor.${f}` as MessageKey)).join(t('factor.and'))}</li>`);
  return page({
    ...o,
    title: t('stepup.title'),
    body: html`<p>${t('stepup.body')}</p><ul>${items}</ul><p><a class="button primary" href="${o.loginHref}">${t('common.signIn')}</a></p>`,
  });
}
