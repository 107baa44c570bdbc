import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KanmonConfig } from '../config/schema.js';
import { readCookie } from '../http/cookies.js';
import { safeReturnPath } from '../http/return-path.js';
import type { ActiveSession } from '../services/sessions.js';
import { SESSION_COOKIE } from '../services/sessions.js';
import type { RequestContext } from '../services/request-context.js';
import { ServiceError } from '../services/errors.js';
import { StoreUnavailableError, TokenUnusableError } from '../store/errors.js';
import { CeremonyError } from '../webauthn/index.js';
import type { Services } from '../services/index.js';
import { LANG_COOKIE, pickLang, translator, type Lang, type MessageKey, type Translate } from './i18n.js';
import { PORTAL_SECURITY_HEADERS } from './security-headers.js';
import type { StaticFile } from './static-files.js';
import { loginPage } from './pages/login.js';
import { enrollPage } from './pages/enroll.js';
import { accountPage } from './pages/account.js';
import { messagePage } from './pages/messages.js';

export interface PortalDeps {
  readonly config: KanmonConfig;
  readonly services: Services;
  readonly statics: ReadonlyMap<string, StaticFile>;
  /** The client address as the listener saw it (PROXY v2 aware). */
  readonly clientIp: (req: IncomingMessage) => string;
}

declare module 'fastify' {
  interface FastifyRequest {
    kanmonLang: Lang;
    kanmonT: Translate;
  }
}

type Body = Record<string, unknown>;

/**
 * The portal under /.kanmon/: pages and their JSON API. Handlers only translate HTTP to
 * service calls; every rule lives in the services, shared with the CLI.
 */
export async function registerPortal(app: FastifyInstance, deps: PortalDeps): Promise<void> {
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
          context: ctxOf(req),
          details: { path: req.url.split('?')[0]!.slice(0, 200), origin: String(origin ?? '').slice(0, 200), site: String(site ?? '') },
        });
        return sendError(reply, req, 403, 'cross-site', 'error.forbidden');
      }
    }
  });

  function ctxOf(req: FastifyRequest): RequestContext {
    return { ip: deps.clientIp(req.raw), userAgent: String(req.headers['user-agent'] ?? ''), requestId: String(req.id) };
  }

  function sessionToken(req: FastifyRequest): string | undefined {
    return readCookie(req.headers.cookie, SESSION_COOKIE);
  }

  async function sessionOf(req: FastifyRequest): Promise<ActiveSession | undefined> {
    return services.sessions.resolve(sessionToken(req));
  }

  function bodyOf(req: FastifyRequest): Body {
    const body = req.body;
    if (body === undefined || body === null) return {};
    if (typeof body !== 'object' || Array.isArray(body)) throw new ServiceError('invalid-input', 'request body must be a JSON object');
    return body as Body;
  }

  function htmlReply(reply: FastifyReply, status: number, body: string): FastifyReply {
    return reply.code(status).type('text/html; charset=utf-8').send(body);
  }

  function pageBase(req: FastifyRequest) {
    return { lang: req.kanmonLang, t: req.kanmonT, currentUrl: req.url, requestId: String(req.id) };
  }

  function wantsHtml(req: FastifyRequest): boolean {
    return !req.url.startsWith('/.kanmon/api/') && req.method === 'GET';
  }

  function sendError(reply: FastifyReply, req: FastifyRequest, status: number, code: string, key: MessageKey): FastifyReply {
    const t = req.kanmonT ?? translator('en');
    if (wantsHtml(req)) {
      return htmlReply(reply, status, messagePage({ ...pageBase(req), t, titleKey: 'error.title', bodyKey: key }));
    }
    return reply.code(status).type('application/json; charset=utf-8').send({ error: code, message: t(key), requestId: req.id });
  }

  // ---- errors: never a 5xx for bad client input; the client gets a generic text, the log the detail
  app.setErrorHandler(async (err, req, reply) => {
    const ctx = { requestId: req.id, path: req.url.split('?')[0] };
    if (err instanceof CeremonyError) {
      req.log.info({ ...ctx, reason: err.reason, detail: err.message }, 'ceremony refused');
      return sendError(reply, req, 400, 'ceremony-failed', 'common.failed');
    }
    if (err instanceof TokenUnusableError) {
      await services.audit.record({ type: 'enroll', result: 'failure', reason: `token-${err.reason}`, context: ctxOf(req) });
      return sendError(reply, req, 410, `token-${err.reason}`, `token.${err.reason}` as MessageKey);
    }
    if (err instanceof ServiceError) {
      req.log.info({ ...ctx, code: err.code, detail: err.message }, 'request refused');
      const status = { 'invalid-input': 400, 'not-found': 404, conflict: 409, forbidden: 403, 'last-factor': 409, 'token-unusable': 410 }[err.code];
      const key: MessageKey = err.code === 'last-factor' ? 'account.lastFactor' : err.code === 'conflict' ? 'enroll.exists' : 'error.badRequest';
      return sendError(reply, req, status, err.code, key);
    }
    if (err instanceof StoreUnavailableError) {
      req.log.error({ ...ctx, err }, 'store unavailable');
      return sendError(reply, req, 503, 'unavailable', 'error.unavailable');
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      req.log.info({ ...ctx, code: (err as { code?: string }).code, detail: (err as Error).message }, 'bad request');
      const key: MessageKey = status === 413 ? 'error.tooLarge' : status === 404 ? 'error.notFound' : 'error.badRequest';
      return sendError(reply, req, status, status === 413 ? 'too-large' : 'bad-request', key);
    }
    req.log.error({ ...ctx, err }, 'unexpected error in portal');
    return sendError(reply, req, 500, 'internal', 'error.internal');
  });

  app.setNotFoundHandler((req, reply) => sendError(reply, req, 404, 'not-found', 'error.notFound'));

  // ---- static files and keys
  app.get('/.kanmon/static/:file', async (req, reply) => {
    const file = deps.statics.get((req.params as { file: string }).file);
    if (!file) return sendError(reply, req, 404, 'not-found', 'error.notFound');
    reply.header('cache-control', 'public, max-age=300').header('etag', file.etag);
    if (req.headers['if-none-match'] === file.etag) return reply.code(304).send();
    return reply.type(file.contentType).send(file.body);
  });

  app.get('/.kanmon/jwks.json', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300').header('access-control-allow-origin', '*');
    return reply.type('application/jwk-set+json').send(services.signingKeys.jwks());
  });

  // ---- login
  app.get('/.kanmon/login', async (req, reply) => {
    const returnTo = safeReturnPath((req.query as Record<string, unknown>).return);
    return htmlReply(reply, 200, loginPage({ ...pageBase(req), returnTo }));
  });

  app.post('/.kanmon/api/login/options', async () => services.passkeyLogin.start());

  app.post('/.kanmon/api/login/verify', async (req, reply) => {
    const body = bodyOf(req);
    const { setCookie } = await services.passkeyLogin.finish(body.response, ctxOf(req), sessionToken(req));
    reply.header('set-cookie', setCookie);
    return { redirect: safeReturnPath(body.returnTo) };
  });

  app.post('/.kanmon/logout', async (req, reply) => {
    const token = sessionToken(req);
    if (token) {
      const active = await services.sessions.resolve(token);
      await services.sessions.end(token, ctxOf(req), active?.user);
    }
    reply.header('set-cookie', services.sessions.clearCookieHeader());
    return reply.redirect('/.kanmon/signed-out', 303);
  });

  app.get('/.kanmon/signed-out', async (req, reply) =>
    htmlReply(reply, 200, messagePage({ ...pageBase(req), titleKey: 'signedOut.title', bodyKey: 'signedOut.body', link: { href: '/.kanmon/login', labelKey: 'common.signIn' } })),
  );

  // ---- enrollment
  app.get('/.kanmon/enroll', async (req, reply) => {
    const token = (req.query as Record<string, unknown>).token;
    try {
      const view = await services.enrollment.inspect(token);
      return htmlReply(
        reply,
        200,
        enrollPage({
          ...pageBase(req),
          token: token as string,
          bootstrap: view.token.purpose === 'bootstrap-admin',
          ...(view.user ? { username: view.user.username, displayName: view.user.displayName } : {}),
          expiresAt: view.token.expiresAt,
        }),
      );
    } catch (err) {
      if (!(err instanceof TokenUnusableError)) throw err;
      await services.audit.record({ type: 'enroll', result: 'failure', reason: `token-${err.reason}`, context: ctxOf(req) });
      return htmlReply(reply, 410, messagePage({ ...pageBase(req), titleKey: 'token.title', bodyKey: `token.${err.reason}` }));
    }
  });

  app.post('/.kanmon/api/enroll/options', async (req) => {
    const body = bodyOf(req);
    return services.enrollment.startRegistration(body.token, { username: body.username, displayName: body.displayName });
  });

  app.post('/.kanmon/api/enroll/verify', async (req, reply) => {
    const body = bodyOf(req);
    const context = ctxOf(req);
    const { user } = await services.enrollment.finishRegistration(body.token, body.response, body.name, context);
    const { setCookie } = await services.sessions.start(user, ['passkey'], context, sessionToken(req));
    reply.header('set-cookie', setCookie);
    return { redirect: '/' };
  });

  // ---- account self-service
  async function requireSession(req: FastifyRequest): Promise<ActiveSession> {
    const active = await sessionOf(req);
    if (!active) throw new SignedOut();
    return active;
  }

  class SignedOut extends Error {}

  app.get('/.kanmon/account', async (req, reply) => {
    const active = await sessionOf(req);
    if (!active) return reply.redirect(`/.kanmon/login?return=${encodeURIComponent('/.kanmon/account')}`, 302);
    const [passkeys, sessions] = await Promise.all([services.passkeyAccount.list(active.user), services.sessions.listForUser(active.user.id)]);
    const now = Date.now();
    return htmlReply(
      reply,
      200,
      accountPage({
        ...pageBase(req),
        user: active.user,
        passkeys,
        sessions: sessions.filter((s) => s.absoluteExpiresAt > now && now - s.lastSeenAt < config.session.idleTimeoutSeconds * 1000),
        currentSessionId: active.session.id,
      }),
    );
  });

  const accountApi = (handler: (active: ActiveSession, body: Body, req: FastifyRequest) => Promise<unknown>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      let active: ActiveSession;
      try {
        active = await requireSession(req);
      } catch (err) {
        if (err instanceof SignedOut) return sendError(reply, req, 401, 'signed-out', 'error.forbidden');
        throw err;
      }
      return handler(active, bodyOf(req), req);
    };

  app.post('/.kanmon/api/account/passkeys/options', accountApi((a) => services.passkeyAccount.startAdd(a.user)));
  app.post(
    '/.kanmon/api/account/passkeys/verify',
    accountApi(async (a, body, req) => {
      const cred = await services.passkeyAccount.finishAdd(a.user, body.response, body.name, ctxOf(req));
      return { ok: true, id: cred.id };
    }),
  );
  app.post(
    '/.kanmon/api/account/passkeys/rename',
    accountApi(async (a, body, req) => {
      await services.passkeyAccount.rename(a.user, body.id, body.name, ctxOf(req));
      return { ok: true };
    }),
  );
  app.post(
    '/.kanmon/api/account/passkeys/delete',
    accountApi(async (a, body, req) => {
      await services.passkeyAccount.remove(a.user, body.id, ctxOf(req));
      return { ok: true };
    }),
  );
  app.post(
    '/.kanmon/api/account/sessions/revoke-others',
    accountApi(async (a, _body, req) => {
      const count = await services.sessions.revokeAll(a.user, a.user.username, ctxOf(req), a.session.id);
      return { ok: true, count };
    }),
  );
}
