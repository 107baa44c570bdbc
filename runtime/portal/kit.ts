import type { IncomingMessage } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { KanmonConfig } from '../config/schema.js';
import { readCookie } from '../http/cookies.js';
import type { Services } from '../services/index.js';
import { ServiceError, type ServiceErrorCode } from '../services/errors.js';
import type { RequestContext } from '../services/request-context.js';
import { SESSION_COOKIE, type ActiveSession } from '../services/sessions.js';
import { translator, type Lang, type MessageKey, type Translate } from './i18n.js';
import { messagePage } from './pages/messages.js';
import type { StaticFile } from './static-files.js';

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

export type Body = Record<string, unknown>;

/** The HTTP status a refused service call is answered with, in the portal and the console alike. */
export const SERVICE_ERROR_STATUS: Readonly<Record<ServiceErrorCode, number>> = {
  'invalid-input': 400,
  'not-found': 404,
  conflict: 409,
  forbidden: 403,
  'last-factor': 409,
  'token-unusable': 410,
  unavailable: 503,
};

/** Thrown by `requireSession`; the error handler answers 401 (API) or redirects to login (page). */
export class SignedOutError extends Error {}

/**
 * What every portal route module needs: request context, session lookup, body checks,
 * and the one way to answer an error. Route modules take a kit and register their routes.
 */
export class PortalKit {
  constructor(readonly deps: PortalDeps) {}

  get services(): Services {
    return this.deps.services;
  }

  get config(): KanmonConfig {
    return this.deps.config;
  }

  ctxOf(req: FastifyRequest): RequestContext {
    return { ip: this.deps.clientIp(req.raw), userAgent: String(req.headers['user-agent'] ?? ''), requestId: String(req.id) };
  }

  sessionToken(req: FastifyRequest): string | undefined {
    return readCookie(req.headers.cookie, SESSION_COOKIE);
  }

  sessionOf(req: FastifyRequest): Promise<ActiveSession | undefined> {
    return this.deps.services.sessions.resolve(this.sessionToken(req));
  }

  async requireSession(req: FastifyRequest): Promise<ActiveSession> {
    const active = await this.sessionOf(req);
    if (!active) throw new SignedOutError();
    return active;
  }

  bodyOf(req: FastifyRequest): Body {
    const body = req.body;
    if (body === undefined || body === null) return {};
    if (typeof body !== 'object' || Array.isArray(body)) throw new ServiceError('invalid-input', 'request body must be a JSON object');
    return body as Body;
  }

  htmlReply(reply: FastifyReply, status: number, body: string): FastifyReply {
    return reply.code(status).type('text/html; charset=utf-8').send(body);
  }

  pageBase(req: FastifyRequest) {
    return { lang: req.kanmonLang, t: req.kanmonT, currentUrl: req.url, requestId: String(req.id) };
  }

  /** Pages get an HTML error page, the JSON API `{ error, message, requestId }`. */
  sendError(reply: FastifyReply, req: FastifyRequest, status: number, code: string, key: MessageKey): FastifyReply {
    const t = req.kanmonT ?? translator('en');
    if (!req.url.startsWith('/.kanmon/api/') && req.method === 'GET') {
      return this.htmlReply(reply, status, messagePage({ ...this.pageBase(req), t, titleKey: 'error.title', bodyKey: key }));
    }
    return reply.code(status).type('application/json; charset=utf-8').send({ error: code, message: t(key), requestId: req.id });
  }
}
