import { drainRequestBody } from '../http/lingering-drain.js';
import type { FastifyInstance } from 'fastify';
import { readCookie } from '../http/cookies.js';
import { ServiceError } from '../services/errors.js';
import { StoreUnavailableError, TokenUnusableError } from '../store/errors.js';
import { CeremonyError } from '../webauthn/index.js';
import { LANG_COOKIE, pickLang, translator, type MessageKey, type Translate } from './i18n.js';
import { PortalKit, SERVICE_ERROR_STATUS, SignedOutError, type PortalDeps } from './kit.js';
import { registerAccountRoutes } from './routes/account.js';
import { registerCaRoutes } from './routes/ca.js';
import { registerUpstreamAppsRoutes } from './routes/upstream-apps.js';
import { registerEnrollRoutes } from './routes/enroll.js';
import { registerLoginRoutes } from './routes/login.js';
import { registerRecoveryRoutes } from './routes/recovery.js';
import { registerStaticRoutes } from './routes/static.js';
import { registerTotpRoutes } from './routes/totp.js';
import { PORTAL_SECURITY_HEADERS } from './security-headers.js';

/** How much of a refused oversized body is read and discarded so the client sees the 413 answer. */
const LINGERING_DRAIN_BYTES = 32 * 1024 * 1024;
const LINGERING_DRAIN_MS = 10_000;

export type { PortalDeps } from './kit.js';

/**
 * The portal under /.kanmon/: pages and their JSON API. This file holds what applies to
 * every portal request (language, security headers, the cross-site check, error answers);
 * the routes live in routes/, one module per area. Handlers only translate HTTP to service
 * calls; every rule lives in the services, shared with the CLI.
 */
export async function registerPortal(app: FastifyInstance, deps: PortalDeps): Promise<PortalKit> {
  const kit = new PortalKit(deps);
  const { services, config } = deps;
  const allowedOrigins = new Set(config.webauthn.origins);

  app.removeContentTypeParser(['text/plain']);
  // The sign-out form posts urlencoded; nothing else does.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.decorateRequest('kanmonLang', 'en');
  app.decorateRequest('kanmonT', null as unknown as Translate);

  app.addHook('onRequest', async (req, reply) => {
    const query = req.query as Record<string, unknown> | undefined;
    const lang = pickLang(query?.lang, readCookie(req.headers.cookie, LANG_COOKIE), req.headers['accept-language']);
    req.kanmonLang = lang;
    req.kanmonT = translator(lang);
    reply.headers(PORTAL_SECURITY_HEADERS);
    if (query?.lang === 'ja' || query?.lang === 'en') {
      reply.header('set-cookie', `${LANG_COOKIE}=${lang}; Path=/; Secure; SameSite=Lax; Max-Age=31536000`);
    }
    // Cross-site request forgery: every state-changing portal request must come from one of
    // our own origins. Browsers always send Origin on POST; Sec-Fetch-Site, when present, must agree.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const origin = req.headers.origin;
      const site = req.headers['sec-fetch-site'];
      if (!origin || !allowedOrigins.has(origin) || (site !== undefined && site !== 'same-origin')) {
        await services.audit.record({
          type: 'portal.cross-site',
          result: 'failure',
          reason: 'origin-refused',
          context: kit.ctxOf(req),
          details: { path: req.url.split('?')[0]!.slice(0, 200), origin: String(origin ?? '').slice(0, 200), site: String(site ?? '') },
        });
        return kit.sendError(reply, req, 403, 'cross-site', 'error.forbidden');
      }
    }
  });

  // Never a 5xx for bad client input: the client gets a generic text, the log the detail.
  app.setErrorHandler(async (err, req, reply) => {
    const ctx = { requestId: req.id, path: req.url.split('?')[0] };
    if (err instanceof SignedOutError) {
      return kit.sendError(reply, req, 401, 'signed-out', 'error.forbidden');
    }
    if (err instanceof CeremonyError) {
      req.log.info({ ...ctx, reason: err.reason, detail: err.message }, 'ceremony refused');
      return kit.sendError(reply, req, 400, 'ceremony-failed', 'common.failed');
    }
    if (err instanceof TokenUnusableError) {
      await services.audit.record({ type: 'enroll', result: 'failure', reason: `token-${err.reason}`, context: kit.ctxOf(req) });
      return kit.sendError(reply, req, 410, `token-${err.reason}`, `token.${err.reason}` as MessageKey);
    }
    if (err instanceof ServiceError) {
      req.log.info({ ...ctx, code: err.code, detail: err.message }, 'request refused');
      const status = SERVICE_ERROR_STATUS[err.code];
      const key: MessageKey = err.code === 'last-factor' ? 'account.lastFactor' : err.code === 'conflict' ? 'enroll.exists' : 'error.badRequest';
      return kit.sendError(reply, req, status, err.code, key);
    }
    if (err instanceof StoreUnavailableError) {
      // Fail closed with a page that says what is going on (sign-in waits for the store; README: Operations).
      req.log.error({ ...ctx, err }, 'store unavailable');
      reply.header('retry-after', '30');
      return kit.sendError(reply, req, 503, 'store-unavailable', 'operations.storeUnavailable.body');
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      req.log.info({ ...ctx, code: (err as { code?: string }).code, detail: (err as Error).message }, 'bad request');
      const key: MessageKey = status === 413 ? 'error.tooLarge' : status === 404 ? 'error.notFound' : 'error.badRequest';
      // Let a browser that is still uploading finish, within a bound, so it can read the 413 page.
      if (status === 413) await drainRequestBody(req.raw, LINGERING_DRAIN_BYTES, LINGERING_DRAIN_MS);
      return kit.sendError(reply, req, status, status === 413 ? 'too-large' : 'bad-request', key);
    }
    req.log.error({ ...ctx, err }, 'unexpected error in portal');
    return kit.sendError(reply, req, 500, 'internal', 'error.internal');
  });

  app.setNotFoundHandler((req, reply) => kit.sendError(reply, req, 404, 'not-found', 'error.notFound'));

  registerStaticRoutes(app, kit);
  registerLoginRoutes(app, kit);
  registerEnrollRoutes(app, kit);
  registerAccountRoutes(app, kit);
  registerTotpRoutes(app, kit);
  registerRecoveryRoutes(app, kit);
  registerCaRoutes(app, kit);
  registerUpstreamAppsRoutes(app, kit);
  return kit;
}
