import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { mtlsRequiredForAnyone, routeUsesMtls, type GroupPolicyConfig, type MtlsConfig, type RouteConfig } from '../config/schema.js';
import { readCookie } from '../http/cookies.js';
import { StoreUnavailableError } from '../store/errors.js';
import { nextRequestId } from '../http/request-id.js';
import { decideAccess, type Decision, type PolicyDevice } from '../policy/decide.js';
import type { TokenIdentity } from '../jwt/identity-token.js';
import type { AuditInput } from '../services/audit-log.js';
import type { Forwarder } from '../proxy/index.js';
import type { RouteTable } from '../routing/route-table.js';
import { SESSION_COOKIE, policySubjectOf, type ActiveSession, type SessionService } from '../services/sessions.js';
import { langOfRawRequest, translator } from '../portal/i18n.js';
import { certificateRequiredPage, messagePage, stepUpPage } from '../portal/pages/messages.js';
import { PORTAL_SECURITY_HEADERS } from '../portal/security-headers.js';
import { certificateIdentityHeaders, identityHeaders } from './identity-headers.js';
import type { PeerCertificates } from './peer-certificate.js';
import type { PresentedCertificateCheck } from '../ca/index.js';
import type { SignInExchange, SignInUpgrade } from '../upstream-auth/index.js';

export interface GatewayRoute {
  readonly route: RouteConfig;
  readonly forwarder: Forwarder;
}

export interface GatewayDeps {
  /** Route lookup; a LiveConfig's current table when routes change while Kanmon runs (runtime/config/live.ts). */
  readonly routes: Pick<RouteTable<GatewayRoute>, 'match'>;
  readonly sessions: SessionService;
  /**
   * The X-Kanmon-Jwt for an identity and route, cached under `cacheKey` (a session id, or the
   * certificate serial on certificate-only routes), so not a signature per request.
   */
  readonly identityToken: (cacheKey: string, routeId: string, identity: TokenIdentity) => string;
  readonly clientIp: (req: IncomingMessage) => string;
  readonly logger: Logger;
  /** Told the final status of every response, for metrics; `routeId` is 'none' when nothing matched. */
  readonly onResponse?: (routeId: string, status: number) => void;
  /** Group rules (config.groups), e.g. device-bound passkeys for administrators. @default {} */
  readonly groupPolicies?: Readonly<Record<string, GroupPolicyConfig>>;
  /** Epoch ms, for per-route timeouts. @default Date.now */
  readonly now?: () => number;
  /** Client certificates of TLS connections; absent when the listener does not request them. */
  readonly peerCertificates?: PeerCertificates;
  /** Users and groups who need a certificate on every route (config.mtls.requiredFor). */
  readonly mtlsRequiredFor?: MtlsConfig['requiredFor'];
  /** Records an audit event (another user's certificate presented). */
  readonly audit?: (input: AuditInput) => Promise<void>;
  /** Routes with `upstreamAuth` are forwarded through this (runtime/upstream-auth): it signs in to the upstream for the user. */
  readonly upstreamSignIn?: {
    forward(req: IncomingMessage, res: ServerResponse, exchange: SignInExchange): void;
    /** A WebSocket handshake carries the sign-in's upstream headers (the jar's cookies, Authorization). */
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, exchange: SignInUpgrade): void;
  };
}

type ForwardCtx = { clientIp: string; publicHost: string; identityHeaders: Record<string, string>; requestId: string };

/**
 * Everything that is not the portal: route match, session, policy, forward. This is the hot
 * path, so it avoids the framework: one cookie read, a cached session, a pure decision,
 * and the forwarder streaming to a pooled upstream connection.
 */
const ROUTE_OF_RESPONSE = Symbol('kanmon.route');
type ResponseWithRoute = ServerResponse & { [ROUTE_OF_RESPONSE]?: string };

/** Retry-After while the store is out: the portal's sign-in pages say the same (runtime/portal/portal.ts). */
const STORE_RETRY_AFTER = '30';

/** How long one set of identity headers is reused for a session object and route. */
const IDENTITY_MEMO_MS = 5000;

export class Gateway {

  /**
   * Identity headers per cached session object and route, reused for at most
   * IDENTITY_MEMO_MS: a cached session object is replaced whenever the session is re-read or
   * touched (so new groups show up then), and the bound keeps the JWT within its reuse window
   * (it is re-minted a minute before it expires). Saves building headers and the token
   * cache's identity comparison on every request.
   */
  readonly #identityMemo = new WeakMap<ActiveSession, Map<string, { headers: Record<string, string>; until: number }>>();

  #identityFor(a: ActiveSession, routeId: string, authMethods: readonly string[], certified: boolean): Record<string, string> {
    const now = Date.now();
    const key = certified ? `${routeId}\u0000mtls` : routeId;
    let perRoute = this.#identityMemo.get(a);
    const hit = perRoute?.get(key);
    if (hit && now < hit.until) return hit.headers;
    const identity: TokenIdentity = { userId: a.user.id, username: a.user.username, groups: a.user.groups, authMethods };
    const headers = identityHeaders(a, this.deps.identityToken(a.session.id, routeId, identity), authMethods);
    if (!perRoute) {
      perRoute = new Map();
      this.#identityMemo.set(a, perRoute);
    }
    perRoute.set(key, { headers, until: now + IDENTITY_MEMO_MS });
    return headers;
  }
  /** Connections whose refused certificate was already audited: once per connection is enough. */
  readonly #auditedCertificate = new WeakSet<object>();
  readonly #requiresAnyone: boolean;
  /** The 'finish' listener every response shares; the emitter (`this`) carries its route. */
  readonly #reportResponse: (this: ServerResponse) => void;

  constructor(private readonly deps: GatewayDeps) {
    const r = deps.mtlsRequiredFor;
    this.#requiresAnyone = !!r && mtlsRequiredForAnyone(r);
    const onResponse = deps.onResponse;
    this.#reportResponse = function (this: ServerResponse) {
      onResponse?.((this as ResponseWithRoute)[ROUTE_OF_RESPONSE] ?? 'none', this.statusCode);
    };
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.authorize(req).then(
      (outcome) => {
        if (this.deps.onResponse) {
          // One shared listener reading the route from the response, not a closure per request.
          (res as ResponseWithRoute)[ROUTE_OF_RESPONSE] = outcome.kind === 'forward' ? outcome.entry.route.id : (outcome.routeId ?? 'none');
          res.on('finish', this.#reportResponse);
        }
        if (outcome.kind === 'forward') {
          if (outcome.entry.route.upstreamAuth && this.deps.upstreamSignIn) {
            this.deps.upstreamSignIn.forward(req, res, { route: outcome.entry.route, forwarder: outcome.entry.forwarder, ctx: outcome.ctx, ...(outcome.session ? { session: outcome.session } : {}) });
          } else {
            outcome.entry.forwarder.forward(req, res, outcome.ctx);
          }
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
          if (outcome.entry.route.upstreamAuth && this.deps.upstreamSignIn) {
            this.deps.upstreamSignIn.upgrade(req, socket, head, { route: outcome.entry.route, forwarder: outcome.entry.forwarder, ctx: outcome.ctx, ...(outcome.session ? { session: outcome.session } : {}) });
          } else {
            outcome.entry.forwarder.upgrade(req, socket, head, outcome.ctx);
          }
          return;
        }
        const status = outcome.decision.kind === 'login' ? '401 Unauthorized' : outcome.decision.kind === 'deny' && outcome.decision.reason === 'no-route' ? '404 Not Found' : '403 Forbidden';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      },
      (err) => {
        this.deps.logger.error({ err }, 'upgrade could not be authorized');
        this.failUpgrade(socket, err);
      },
    );
  }

  /** A handshake that failed for want of the store (or otherwise): 503 with Retry-After. Upstream sign-in answers its store failures with this too. */
  failUpgrade(socket: Duplex, err: unknown): void {
    const retryAfter = err instanceof StoreUnavailableError ? STORE_RETRY_AFTER : '5';
    socket.end(`HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${retryAfter}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  private async authorize(req: IncomingMessage): Promise<
    | { kind: 'forward'; entry: GatewayRoute; ctx: ForwardCtx; session?: ActiveSession }
    | { kind: 'refuse'; decision: Exclude<Decision, { kind: 'allow' }>; routeId?: string }
  > {
    const host = req.headers.host;
    const entry = this.deps.routes.match(host, req.url ?? '/');
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    const active = entry && token ? await this.deps.sessions.resolve(token) : undefined;
    // Routes without 'mtls' (and no requiredFor) skip the certificate entirely: the hot path stays as it was.
    const peer = entry && this.deps.peerCertificates && (this.#requiresAnyone || routeUsesMtls(entry.route)) ? await this.deps.peerCertificates.evidenceOf(req.socket) : undefined;
    const device: PolicyDevice = peer
      ? {
          clientCertificate: { valid: peer.check.valid, ...(peer.check.valid ? { owner: peer.check.owner } : {}) },
          ...(peer.holder ? { certificateHolder: peer.holder } : {}),
        }
      : {};
    const decision = decideAccess(
      entry?.route,
      active && policySubjectOf(active),
      device,
      { now: (this.deps.now ?? Date.now)(), groups: this.deps.groupPolicies ?? {}, ...(this.deps.mtlsRequiredFor ? { mtlsRequiredFor: this.deps.mtlsRequiredFor } : {}) },
    );
    if (decision.kind === 'certificate-required' && peer) this.#auditRefusedCertificate(req, entry!.route.id, active, peer.check);
    if (decision.kind !== 'allow') return { kind: 'refuse', decision, ...(entry ? { routeId: entry.route.id } : {}) };
    const routeId = entry!.route.id;
    let headers: Record<string, string>;
    if (decision.byCertificate && peer?.check.valid) {
      // A certificate-only route without a session: the certificate is the identity.
      const { owner, holder } = decision.byCertificate;
      const identity: TokenIdentity = holder
        ? { userId: holder.userId, username: holder.username, groups: holder.groups, authMethods: ['mtls'] }
        : { userId: `shared:${owner.kind === 'shared' ? owner.label : ''}`, username: `shared:${owner.kind === 'shared' ? owner.label : ''}`, groups: [], authMethods: ['mtls'] };
      headers = certificateIdentityHeaders(identity, this.deps.identityToken(`cert:${peer.check.serial}`, routeId, identity));
    } else {
      const a = active!;
      // 'mtls' joins the methods the backend sees only when this connection proved it for this user.
      const certified = peer?.check.valid && (peer.check.owner.kind === 'shared' || peer.check.owner.userId === a.user.id);
      const authMethods = certified ? [...a.session.authMethods, 'mtls'] : a.session.authMethods;
      headers = this.#identityFor(a, routeId, authMethods, !!certified);
    }
    return {
      kind: 'forward',
      entry: entry!,
      ctx: { clientIp: this.deps.clientIp(req), publicHost: host ?? '', identityHeaders: headers, requestId: nextRequestId() },
      // The session whose identity is forwarded (upstream sign-in keeps its cookie jar per session).
      ...(active && !decision.byCertificate ? { session: active } : {}),
    };
  }

  /**
   * Audits a presented certificate that did not count: another user's, or one of Kanmon's that
   * is revoked, expired, unknown or names another owner than its record. Certificates of other
   * CAs (browsers offer whatever they hold) and store outages are left to the log.
   */
  #auditRefusedCertificate(req: IncomingMessage, routeId: string, active: ActiveSession | undefined, check: PresentedCertificateCheck): void {
    const audit = this.deps.audit;
    const reason = check.valid ? 'certificate-other-user' : check.reason;
    if (!audit || reason === 'unknown-issuer' || reason === 'malformed' || reason === 'unavailable' || this.#auditedCertificate.has(req.socket)) return;
    this.#auditedCertificate.add(req.socket);
    const owner = check.owner;
    void audit({
      type: 'cert.present',
      result: 'failure',
      reason,
      ...(active ? { userId: active.user.id, username: active.user.username } : {}),
      context: { ip: this.deps.clientIp(req), userAgent: String(req.headers['user-agent'] ?? ''), requestId: nextRequestId() },
      details: { route: routeId, serial: check.serial, ...(owner ? { certificateOwner: owner.kind === 'user' ? `user:${owner.userId}` : `shared:${owner.label}` } : {}) },
    });
  }

  private refuse(req: IncomingMessage, res: ServerResponse, decision: Exclude<Decision, { kind: 'allow' }>): void {
    const loginHref = `/.kanmon/login?return=${encodeURIComponent(req.url ?? '/')}`;
    if (decision.kind === 'login' && isNavigation(req)) {
      res.writeHead(302, { location: loginHref, 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    const base = pageBase(req);
    let status: number;
    let body: string;
    if (decision.kind === 'login') {
      status = 401;
      body = messagePage({ ...base, titleKey: 'login.title', bodyKey: 'login.intro', link: { href: loginHref, labelKey: 'common.signIn' } });
    } else if (decision.kind === 'step-up') {
      status = 403;
      body = stepUpPage({ ...base, alternatives: decision.alternatives, loginHref, reason: decision.reason });
    } else if (decision.kind === 'certificate-required') {
      status = 403;
      body = certificateRequiredPage({ ...base, reason: decision.reason });
    } else {
      status = decision.reason === 'no-route' ? 404 : 403;
      body = messagePage({ ...base, titleKey: 'denied.title', bodyKey: `denied.${decision.reason}` });
    }
    sendPage(req, res, status, body);
  }

  /** A request that failed for want of the store (or otherwise): 503 and a page. Upstream sign-in answers its store failures with this too. */
  fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    // The store could not be read: fail closed, never forward without a verified session.
    this.deps.logger.error({ err, url: req.url?.split('?')[0] }, 'gateway could not authorize a request');
    if (res.headersSent) {
      drain(req);
      res.destroy();
      return;
    }
    // The store is out (README: When the store fails): the same page sign-in shows, saying what is going on.
    const page = err instanceof StoreUnavailableError ? { titleKey: 'operations.storeUnavailable.title', bodyKey: 'operations.storeUnavailable.body' } as const : { titleKey: 'error.title', bodyKey: 'error.unavailable' } as const;
    sendPage(req, res, 503, messagePage({ ...pageBase(req), ...page }), { 'retry-after': err instanceof StoreUnavailableError ? STORE_RETRY_AFTER : '5', 'cache-control': 'no-store' });
  }
}

/** What every page Kanmon answers in place of the backend needs: the language (the page's own switch adds ?lang=) and a request id. */
function pageBase(req: IncomingMessage) {
  const lang = langOfRawRequest(req);
  return { lang, t: translator(lang), currentUrl: req.url ?? '/', requestId: nextRequestId() };
}

/** Writes one of Kanmon's own pages with the portal's security headers, discarding the request body. */
function sendPage(req: IncomingMessage, res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  drain(req);
  res.writeHead(status, { ...PORTAL_SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(req.method === 'HEAD' ? undefined : body);
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
