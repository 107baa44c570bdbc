import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { GroupPolicyConfig, RouteConfig } from '../config/schema.js';
import { readCookie } from '../http/cookies.js';
import { nextRequestId } from '../http/request-id.js';
import { decideAccess, type Decision } from '../policy/decide.js';
import type { Forwarder } from '../proxy/index.js';
import type { RouteTable } from '../routing/route-table.js';
import { SESSION_COOKIE, type ActiveSession, type SessionService } from '../services/sessions.js';
import { LANG_COOKIE, pickLang, translator } from '../portal/i18n.js';
import { messagePage, stepUpPage } from '../portal/pages/messages.js';
import { PORTAL_SECURITY_HEADERS } from '../portal/security-headers.js';
import { identityHeaders } from './identity-headers.js';

export interface GatewayRoute {
  readonly route: RouteConfig;
  readonly forwarder: Forwarder;
}

export interface GatewayDeps {
  readonly routes: RouteTable<GatewayRoute>;
  readonly sessions: SessionService;
  /** The X-Kanmon-Jwt for a session and route; cached, so not a signature per request. */
  readonly identityToken: (active: ActiveSession, routeId: string) => string;
  readonly clientIp: (req: IncomingMessage) => string;
  readonly logger: Logger;
  /** Told the final status of every response, for metrics; `routeId` is 'none' when nothing matched. */
  readonly onResponse?: (routeId: string, status: number) => void;
  /** Group rules (config.groups), e.g. device-bound passkeys for administrators. @default {} */
  readonly groupPolicies?: Readonly<Record<string, GroupPolicyConfig>>;
  /** Epoch ms, for per-route timeouts. @default Date.now */
  readonly now?: () => number;
}

/**
 * Everything that is not the portal: route match, session, policy, forward. This is the hot
 * path, so it avoids the framework: one cookie read, a cached session, a pure decision,
 * and the forwarder streaming to a pooled upstream connection.
 */
export class Gateway {
  constructor(private readonly deps: GatewayDeps) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.authorize(req).then(
      (outcome) => {
        const onResponse = this.deps.onResponse;
        if (onResponse) {
          const routeId = outcome.kind === 'forward' ? outcome.entry.route.id : (outcome.routeId ?? 'none');
          res.once('finish', () => onResponse(routeId, res.statusCode));
        }
        if (outcome.kind === 'forward') {
          outcome.entry.forwarder.forward(req, res, outcome.ctx);
        } else {
          this.refuse(req, res, outcome.decision);
        }
      },
      (err) => this.fail(req, res, err),
    );
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    this.authorize(req).then(
      (outcome) => {
        if (outcome.kind === 'forward') {
          outcome.entry.forwarder.upgrade(req, socket, head, outcome.ctx);
          return;
        }
        const status = outcome.decision.kind === 'login' ? '401 Unauthorized' : outcome.decision.kind === 'deny' && outcome.decision.reason === 'no-route' ? '404 Not Found' : '403 Forbidden';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      },
      (err) => {
        this.deps.logger.error({ err }, 'upgrade could not be authorized');
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      },
    );
  }

  private async authorize(req: IncomingMessage): Promise<
    | { kind: 'forward'; entry: GatewayRoute; ctx: { clientIp: string; publicHost: string; identityHeaders: Record<string, string>; requestId: string } }
    | { kind: 'refuse'; decision: Exclude<Decision, { kind: 'allow' }>; routeId?: string }
  > {
    const host = req.headers.host;
    const entry = this.deps.routes.match(host, req.url ?? '/');
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    const active = entry && token ? await this.deps.sessions.resolve(token) : undefined;
    const decision = decideAccess(
      entry?.route,
      active && {
        username: active.user.username,
        groups: active.user.groups,
        disabled: active.user.disabled,
        authMethods: active.session.authMethods,
        ...(active.session.passkey ? { passkey: active.session.passkey } : {}),
        session: { createdAt: active.session.createdAt, lastSeenAt: active.session.lastSeenAt },
      },
      {},
      { now: (this.deps.now ?? Date.now)(), groups: this.deps.groupPolicies ?? {} },
    );
    if (decision.kind !== 'allow') return { kind: 'refuse', decision, ...(entry ? { routeId: entry.route.id } : {}) };
    return {
      kind: 'forward',
      entry: entry!,
      ctx: {
        clientIp: this.deps.clientIp(req),
        publicHost: host ?? '',
        identityHeaders: identityHeaders(active!, this.deps.identityToken(active!, entry!.route.id)),
        requestId: nextRequestId(),
      },
    };
  }

  private refuse(req: IncomingMessage, res: ServerResponse, decision: Exclude<Decision, { kind: 'allow' }>): void {
    const loginHref = `/.kanmon/login?return=${encodeURIComponent(req.url ?? '/')}`;
    if (decision.kind === 'login' && isNavigation(req)) {
      res.writeHead(302, { location: loginHref, 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    const lang = pickLang(undefined, readCookie(req.headers.cookie, LANG_COOKIE), req.headers['accept-language']);
    const base = { lang, t: translator(lang), currentUrl: req.url ?? '/', requestId: nextRequestId() };
    let status: number;
    let body: string;
    if (decision.kind === 'login') {
      status = 401;
      body = messagePage({ ...base, titleKey: 'login.title', bodyKey: 'login.intro', link: { href: loginHref, labelKey: 'common.signIn' } });
    } else if (decision.kind === 'step-up') {
      status = 403;
      body = stepUpPage({ ...base, alternatives: decision.alternatives, loginHref, reason: decision.reason });
    } else {
      status = decision.reason === 'no-route' ? 404 : 403;
      body = messagePage({ ...base, titleKey: 'denied.title', bodyKey: `denied.${decision.reason}` });
    }
    drain(req);
    res.writeHead(status, { ...PORTAL_SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    // The store could not be read: fail closed, never forward without a verified session.
    this.deps.logger.error({ err, url: req.url?.split('?')[0] }, 'gateway could not authorize a request');
    drain(req);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const lang = pickLang(undefined, readCookie(req.headers.cookie, LANG_COOKIE), req.headers['accept-language']);
    const body = messagePage({ lang, t: translator(lang), currentUrl: req.url ?? '/', requestId: nextRequestId(), titleKey: 'error.title', bodyKey: 'error.unavailable' });
    res.writeHead(503, { ...PORTAL_SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'retry-after': '5' });
    res.end(body);
  }
}

/** A top-level page load gets the login redirect; fetches and API calls get a 401 they can act on. */
function isNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const mode = req.headers['sec-fetch-mode'];
  if (mode) return mode === 'navigate';
  const accept = req.headers.accept;
  return !accept || accept.includes('text/html') || accept.includes('*/*');
}

/** Discard a refused request's body so the connection can be reused. */
function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}
