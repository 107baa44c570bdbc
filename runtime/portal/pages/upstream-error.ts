/**
 * The pages Kanmon answers in place of an application: unreachable (502), too slow (504),
 * request body too large (413). Branded, in the visitor's language, with a way onward and the
 * request id, and nothing about the upstream: no address, host name or error text.
 */
import type { IncomingMessage } from 'node:http';
import type { ErrorPage, GatewayErrorStatus } from '../../proxy/index.js';
import { html, page } from '../html.js';
import { langOfRawRequest, translator, type MessageKey } from '../i18n.js';
import { PORTAL_SECURITY_HEADERS } from '../security-headers.js';

const TEXTS: Record<GatewayErrorStatus, { title: MessageKey; body: MessageKey }> = {
  502: { title: 'upstream.error.badGatewayTitle', body: 'upstream.error.badGatewayBody' },
  504: { title: 'upstream.error.timeoutTitle', body: 'upstream.error.timeoutBody' },
  413: { title: 'upstream.error.tooLargeTitle', body: 'upstream.error.tooLargeBody' },
};

export const upstreamErrorPage: ErrorPage = (status, ctx, req) => {
  const currentUrl = localTarget(req.url);
  const lang = langOfRawRequest(req);
  const t = translator(lang);
  const texts = TEXTS[status];
  // A failed GET is worth repeating as it was; a refused upload is not, so that page leads back instead.
  const link =
    status === 413
      ? html`<a id="upstream-error-back" class="button" href="${backTarget(req, ctx.publicHost)}">${t('upstream.error.back')}</a>`
      : html`<a id="upstream-error-retry" class="button primary" href="${currentUrl}">${t('upstream.error.retry')}</a>`;
  return {
    contentType: 'text/html; charset=utf-8',
    headers: PORTAL_SECURITY_HEADERS,
    body: page({
      lang,
      t,
      currentUrl,
      requestId: ctx.requestId,
      title: t(texts.title),
      body: html`<div id="upstream-error" class="message" data-status="${status}"><p>${t(texts.body)}</p></div><p>${link}</p>`,
    }),
  };
};

/** The request's path and query, as a same-origin link target ('//host' would leave the site). */
function localTarget(url: string | undefined): string {
  if (!url || url.charCodeAt(0) !== 47 /* / */ || url.startsWith('//')) {
    try {
      const u = new URL(url ?? '/', 'https://kanmon.invalid');
      return u.pathname.startsWith('//') ? '/' : `${u.pathname}${u.search}`;
    } catch {
      return '/';
    }
  }
  return url;
}

/** Where "go back" leads: the referring page when it is on this same host, otherwise the site's root. */
function backTarget(req: IncomingMessage, publicHost: string): string {
  const referer = req.headers.referer;
  if (!referer) return '/';
  try {
    const u = new URL(referer);
    if (u.host.toLowerCase() !== publicHost.toLowerCase() || (u.protocol !== 'https:' && u.protocol !== 'http:')) return '/';
    return localTarget(`${u.pathname}${u.search}`);
  } catch {
    return '/';
  }
}
