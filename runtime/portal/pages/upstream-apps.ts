import type { RouteConfig } from '../../config/schema.js';
import type { CredentialStatus } from '../../services/upstream-credentials.js';
import { html, page, timeTag } from '../html.js';
import type { Lang, MessageKey, Translate } from '../i18n.js';

export interface AppCredentialsRow {
  readonly route: RouteConfig;
  readonly status: CredentialStatus;
  /** The user enters only the secret (the user name comes from the route's template, or there is none). */
  readonly secretOnly: boolean;
  /** The route falls back to a shared account when the user stores nothing. */
  readonly sharedFallback: boolean;
  /** A single-use token for this row's forms. */
  readonly formToken: string;
}

/** The user's stored sign-in details for applications with their own login: status and a form per application. */
export function upstreamAppsPage(o: {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
  rows: readonly AppCredentialsRow[];
  /** The application the gateway sent the user here for, and why. */
  focus?: { readonly routeId: string; readonly why: 'missing' | 'rejected' };
  returnTo: string;
  notice?: { readonly key: MessageKey; readonly error?: boolean };
}): string {
  const { t } = o;
  const sections = o.rows.map((row) => {
    const id = row.route.id;
    const s = row.status;
    const state = s.stored ? (s.rejectedAt !== undefined ? t('upstream.credentials.rejected') : t('upstream.credentials.stored')) : t('upstream.credentials.notStored');
    const focused = o.focus?.routeId === id;
    const isHeader = row.route.upstreamAuth?.kind === 'header';
    return html`<section class="upstream-app" id="app-${id}" data-route="${id}" aria-labelledby="app-${id}-heading">
<h2 id="app-${id}-heading">${id}</h2>
<p>${t('upstream.credentials.col.status')}: <strong class="app-status" data-state="${s.stored ? (s.rejectedAt !== undefined ? 'rejected' : 'stored') : 'missing'}">${state}</strong>${
      s.updatedAt !== undefined ? html` · ${t('upstream.credentials.updated')}: ${timeTag(s.updatedAt, '')}` : ''
    }</p>
${focused ? html`<p class="message app-focus" role="alert">${t(o.focus!.why === 'rejected' || s.rejectedAt !== undefined ? 'upstream.signIn.rejected' : 'upstream.signIn.needsCredentials')}</p>` : ''}
${row.sharedFallback ? html`<p class="hint">${t('upstream.credentials.shared')}</p>` : ''}
<form method="post" action="/.kanmon/account/apps/save" class="app-credentials">
  <input type="hidden" name="route" value="${id}">
  <input type="hidden" name="token" value="${row.formToken}">
  <input type="hidden" name="return" value="${focused ? o.returnTo : ''}">
  ${row.secretOnly ? '' : html`<label>${t('upstream.credentials.username')} <input name="username" autocomplete="off" maxlength="256" value="${s.username ?? ''}" required></label>`}
  <label>${t(isHeader ? 'upstream.credentials.secret' : 'upstream.credentials.password')} <input type="password" name="password" autocomplete="new-password" maxlength="1024" required></label>
  <button type="submit" class="primary">${t('upstream.credentials.save')}</button>
</form>
${s.stored ? html`<form method="post" action="/.kanmon/account/apps/remove" class="app-remove">
  <input type="hidden" name="route" value="${id}">
  <input type="hidden" name="token" value="${row.formToken}">
  <button type="submit" class="danger">${t('upstream.credentials.remove')}</button>
</form>` : ''}
</section>`;
  });
  return page({
    ...o,
    title: t('upstream.credentials.title'),
    body: html`<p>${t('upstream.credentials.intro')}</p>
${o.notice ? html`<p id="apps-notice" class="status ${o.notice.error ? 'error' : 'ok'}" role="status">${t(o.notice.key)}</p>` : ''}
${o.rows.length === 0 ? html`<p id="apps-none">${t('upstream.credentials.none')}</p>` : sections}
<p><a href="/.kanmon/account">${t('account.title')}</a></p>`,
  });
}
