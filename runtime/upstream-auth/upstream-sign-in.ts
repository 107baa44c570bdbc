/**
 * Upstream sign-in per request, for routes with `upstreamAuth`. The gateway hands such
 * requests here (after session and policy allowed them) instead of to the forwarder directly.
 *
 * - `basic` and `header`: the stored credentials become an Authorization or API header.
 * - `form`: the request carries the jar's cookies for (Kanmon session, route). When the jar
 *   holds no upstream session yet, Kanmon signs in first. Set-Cookie from the upstream goes into
 *   the jar, never to the browser. When the upstream asks for a login anyway (a redirect to its
 *   login page, a configured status, or a marker in an HTML body), the answer is discarded,
 *   Kanmon signs in again and replays the request: server-side for bodiless requests; a request
 *   with a body already went upstream and was consumed, so the browser is sent a 307 to the
 *   same URL and sends its body again itself (what a user would expect of an expired session:
 *   the form just goes through), once.
 *
 * A refused password is marked on the stored credentials and never tried again until the user
 * (or an administrator) replaces it: an upstream may lock an account after a few wrong tries.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { FormLoginConfig, UpstreamAuthConfig } from '../config/upstream-auth.js';
import type { RouteConfig } from '../config/schema.js';
import { readCookie } from '../http/cookies.js';
import { LANG_COOKIE, pickLang, translator, type MessageKey } from '../portal/i18n.js';
import { messagePage } from '../portal/pages/messages.js';
import { PORTAL_SECURITY_HEADERS } from '../portal/security-headers.js';
import type { ExchangeHooks, ResponseHeadDecision } from '../proxy/hooks.js';
import type { ForwardContext } from '../proxy/index.js';
import type { AuditLog } from '../services/audit-log.js';
import type { RequestContext } from '../services/request-context.js';
import type { ActiveSession } from '../services/sessions.js';
import type { ResolvedCredentials, UpstreamCredentialService } from '../services/upstream-credentials.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { DocumentStore } from '../store/types.js';
import { StoreUnavailableError } from '../store/errors.js';
import { applySetCookies, takeSetCookies, upstreamCookieHeader } from './cookie-jar.js';
import { boundMs } from './expiring-cache.js';
import { JarStore, type JarKey, type JarState } from './jar-store.js';
import { createSignInDispatcher, isRedirect, redirectsToLogin, signInWithForm, signOutOfUpstream, type SignInClient } from './sign-in.js';

/** Largest HTML body looked at for a login marker; bigger pages are not login pages. */
export const MARKER_BODY_LIMIT = 256 * 1024;
/** Where users store their credentials for an application. */
export const APPS_PAGE = '/.kanmon/account/apps';

/** The forwarder as this module uses it: one request, with hooks. */
export interface HookedForwarder {
  forward(req: IncomingMessage, res: ServerResponse, ctx: ForwardContext, hooks?: ExchangeHooks): void;
}

/** The forwarder's upgrade (WebSocket) path, with hooks. */
export interface HookedUpgrader {
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ForwardContext, hooks?: ExchangeHooks): void;
}

/** An upgrade request of a route with upstreamAuth. */
export interface SignInUpgrade extends Omit<SignInExchange, 'forwarder'> {
  readonly forwarder: HookedUpgrader;
}

export interface SignInExchange {
  readonly route: RouteConfig;
  readonly forwarder: HookedForwarder;
  readonly ctx: ForwardContext;
  /** The Kanmon session; absent on certificate-only access, which cannot hold a jar. */
  readonly session?: ActiveSession;
}

export interface UpstreamSignInOptions {
  readonly documents: DocumentStore;
  /** Seals cookie jars before they reach the store (the cookies are the app's bearer credentials). */
  readonly secrets: SecretBox;
  readonly credentials: UpstreamCredentialService;
  readonly audit: AuditLog;
  readonly logger: Logger;
  /** How a route's upstream is reached: its URL (the demo's resolved) and TLS connect options. */
  readonly upstreamOf: (route: RouteConfig) => { readonly url: string; readonly tls?: Readonly<Record<string, unknown>> };
  /**
   * How long this node trusts its cached copy of a jar before re-reading the store, in
   * seconds, or a getter of a live setting (Kanmon passes session.cacheSeconds). @default 5
   */
  readonly cacheSeconds?: number | (() => number);
  /**
   * How a store failure under a request or handshake is answered: the gateway's own answer
   * (runtime/gateway/gateway.ts, 503 with Retry-After and the store-outage page), so a user sees
   * the same whichever read failed. Other failures get this module's sign-in pages.
   */
  readonly storeUnavailable: {
    request(req: IncomingMessage, res: ServerResponse, err: StoreUnavailableError): void;
    upgrade(socket: Duplex, err: StoreUnavailableError): void;
  };
  readonly now?: () => number;
}

type SignInResult = 'signed-in' | 'missing' | 'rejected' | 'failed';

export class UpstreamSignIn {
  readonly #jars: JarStore;
  /** Per route id: the sign-in connection pool and what it was built for (a changed route gets a new one). */
  readonly #dispatchers = new Map<string, { readonly dispatcher: Dispatcher; readonly builtFor: string }>();
  readonly #inflight = new Map<string, Promise<SignInResult>>();
  readonly #routes: () => readonly RouteConfig[];
  #routeIndex: { readonly from: readonly RouteConfig[]; readonly byId: ReadonlyMap<string, RouteConfig> } | undefined;
  readonly #now: () => number;
  /** Set once any request went through upstream sign-in here: its jars may outlive the route's upstreamAuth. */
  #everSignedIn = false;

  constructor(
    private readonly opts: UpstreamSignInOptions,
    /** The routes, or a getter of the live ones (runtime/config/live.ts), read at each sign-out. */
    routes: readonly RouteConfig[] | (() => readonly RouteConfig[]),
  ) {
    this.#now = opts.now ?? Date.now;
    this.#jars = new JarStore(opts.documents, { secrets: opts.secrets, logger: opts.logger, cacheMs: boundMs(opts.cacheSeconds ?? 5), now: this.#now });
    this.#routes = typeof routes === 'function' ? routes : () => routes;
  }

  /** Routes with upstreamAuth by id, from the routes as they are now (rebuilt only when the route list was swapped). */
  #routesById(): ReadonlyMap<string, RouteConfig> {
    const from = this.#routes();
    if (this.#routeIndex?.from !== from) this.#routeIndex = { from, byId: new Map(from.filter((r) => r.upstreamAuth).map((r) => [r.id, r])) };
    return this.#routeIndex.byId;
  }

  /** Forwards one request of a route with upstreamAuth. Never throws; failures become pages. */
  forward(req: IncomingMessage, res: ServerResponse, x: SignInExchange): void {
    this.#forward(req, res, x).catch((err: unknown) => this.#failed(req, res, x, err));
  }

  /** A request whose sign-in threw: the store's outage answer when the store failed, else the sign-in page. */
  #failed(req: IncomingMessage, res: ServerResponse, x: SignInExchange, err: unknown): void {
    if (err instanceof StoreUnavailableError) return this.opts.storeUnavailable.request(req, res, err);
    this.opts.logger.error({ err, route: x.route.id, requestId: x.ctx.requestId }, 'upstream sign-in failed unexpectedly');
    this.#page(req, res, 502, 'upstream.signIn.unavailable', x.ctx.requestId);
  }

  /**
   * An upgrade (WebSocket) of a route with upstreamAuth: the handshake carries what a request
   * would (the API header, Basic credentials, or the jar's cookies, signing in first when the
   * jar holds no upstream session). A handshake cannot be replayed after a refusal: when the
   * upstream refuses it anyway (its session ended meanwhile), its answer is relayed, and the
   * page's next request signs in again. Never throws; failures become a bare status line.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, x: SignInUpgrade): void {
    this.#upgrade(req, socket, head, x).catch((err: unknown) => {
      this.opts.logger.error({ err, route: x.route.id, requestId: x.ctx.requestId }, 'upstream sign-in for an upgrade failed');
      if (socket.destroyed) return;
      if (err instanceof StoreUnavailableError) return this.opts.storeUnavailable.upgrade(socket, err);
      refuseUpgrade(socket, '502 Bad Gateway');
    });
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, x: SignInUpgrade): Promise<void> {
    const auth = x.route.upstreamAuth!;
    const active = x.session;
    if (!active) return refuseUpgrade(socket, '403 Forbidden');
    const creds = await this.opts.credentials.resolve(x.route, active.user);
    if (!creds || creds.rejectedAt !== undefined) return refuseUpgrade(socket, '403 Forbidden');
    if (auth.kind === 'header') return x.forwarder.upgrade(req, socket, head, x.ctx, { upstreamHeaders: [auth.header, `${auth.valuePrefix}${creds.secret}`] });
    if (auth.kind === 'basic') {
      const value = `Basic ${Buffer.from(`${creds.username}:${creds.secret}`, 'utf8').toString('base64')}`;
      return x.forwarder.upgrade(req, socket, head, x.ctx, { upstreamHeaders: ['authorization', value] });
    }
    const jarKey = jarKeyOf(active, x.route);
    let jar = await this.#jars.get(jarKey);
    if (jar.signedInAt === undefined) {
      const result = await this.#signIn(req, { ...x, forwarder: NO_FORWARDER }, auth, creds, jarKey, undefined);
      if (result !== 'signed-in') return refuseUpgrade(socket, result === 'rejected' ? '403 Forbidden' : '502 Bad Gateway');
      jar = await this.#jars.get(jarKey);
    }
    if (socket.destroyed) return;
    const cookie = upstreamCookieHeader(req.headers.cookie, jar.cookies, req.url ?? '/', this.#now()) ?? '';
    x.forwarder.upgrade(req, socket, head, x.ctx, { upstreamHeaders: ['cookie', cookie] });
  }

  async #forward(req: IncomingMessage, res: ServerResponse, x: SignInExchange): Promise<void> {
    const auth = x.route.upstreamAuth!;
    const active = x.session;
    if (!active) return this.#page(req, res, 403, 'upstream.signIn.needsSession', x.ctx.requestId, '/.kanmon/login');
    const creds = await this.opts.credentials.resolve(x.route, active.user);
    if (!creds) return this.#credentialsNeeded(req, res, x, auth, 'missing');
    if (creds.rejectedAt !== undefined) return this.#credentialsNeeded(req, res, x, auth, 'rejected');

    if (auth.kind === 'header') {
      x.forwarder.forward(req, res, x.ctx, { upstreamHeaders: [auth.header, `${auth.valuePrefix}${creds.secret}`] });
      return;
    }
    if (auth.kind === 'basic') {
      const value = `Basic ${Buffer.from(`${creds.username}:${creds.secret}`, 'utf8').toString('base64')}`;
      x.forwarder.forward(req, res, x.ctx, {
        upstreamHeaders: ['authorization', value],
        // 401 to our credentials: refused. The browser must not get the upstream's Basic prompt.
        inspectResponse: (status) =>
          status === 401
            ? {
                kind: 'intercept',
                onIntercept: () => {
                  void this.opts.credentials
                    .markRejected(x.route, active.user, creds, 'the upstream answered 401 to HTTP Basic', this.#context(req, x.ctx))
                    .catch((err: unknown) => this.opts.logger.warn({ err, route: x.route.id }, 'refused upstream credentials could not be marked'))
                    .finally(() => this.#credentialsNeeded(req, res, x, auth, 'rejected'));
                },
              }
            : PASS,
      });
      return;
    }

    const jarKey = jarKeyOf(active, x.route);
    const pathname = pathOnly(req.url ?? '/');
    if (pathname === pathOnly(auth.loginUrl) && (req.method === 'GET' || req.method === 'HEAD')) {
      // The user never needs the upstream's own login page: Kanmon signs in and sends them on.
      const result = (await this.#jars.get(jarKey)).signedInAt === undefined ? await this.#signIn(req, x, auth, creds, jarKey, undefined) : 'signed-in';
      if (result !== 'signed-in') return this.#signInFailed(req, res, x, auth, result, creds);
      drain(req);
      res.writeHead(303, { location: homeOf(x.route), 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    let jar = await this.#jars.get(jarKey);
    if (jar.signedInAt === undefined) {
      const result = await this.#signIn(req, x, auth, creds, jarKey, undefined);
      if (result !== 'signed-in') return this.#signInFailed(req, res, x, auth, result, creds);
      jar = await this.#jars.get(jarKey);
    }
    this.#forwardWithJar(req, res, x, auth, creds, jarKey, jar, false);
  }

  #forwardWithJar(req: IncomingMessage, res: ServerResponse, x: SignInExchange, auth: FormLoginConfig, creds: ResolvedCredentials, jarKey: JarKey, jar: JarState, replay: boolean): void {
    const path = req.url ?? '/';
    const now = this.#now();
    const cookie = upstreamCookieHeader(req.headers.cookie, jar.cookies, path, now) ?? '';
    const bodiless = !hasBody(req);
    // Only routes with a body marker, and only answers that can be a login page, pay for a look at the body.
    const markerCandidate = auth.detect.bodyMarker !== undefined && bodiless && req.method === 'GET' && acceptsHtml(req);
    const upstreamHeaders = markerCandidate ? ['cookie', cookie, 'accept-encoding', 'identity'] : ['cookie', cookie];
    const expiresAt = x.session!.session.absoluteExpiresAt;
    const relogin = (): Settled => ({ kind: 'intercept', onIntercept: () => this.#relogin(req, res, x, auth, creds, jarKey, jar, replay) });

    const loggingOut = auth.logoutUrl !== undefined && pathOnly(path) === pathOnly(auth.logoutUrl);
    const inspectResponse = (status: number, headers: string[]): ResponseHeadDecision => {
      const taken = takeSetCookies(headers);
      if (loggingOut) {
        // The app's own logout link: its session ends; the next request signs in afresh.
        this.#jars
          .update(jarKey, expiresAt, (s) => ({ cookies: taken ? applySetCookies(s.cookies, taken.setCookies, path, this.#now()) : s.cookies }))
          .catch((err: unknown) => this.opts.logger.warn({ err, route: x.route.id }, 'upstream cookies could not be stored in the jar'));
        return taken ? { kind: 'pass', headers: taken.rest } : PASS;
      }
      if (taken) {
        // The jar learns the cookies; the browser never sees them.
        this.#jars
          .update(jarKey, expiresAt, (s) => ({ ...s, cookies: applySetCookies(s.cookies, taken.setCookies, path, this.#now()) }))
          .catch((err: unknown) => this.opts.logger.warn({ err, route: x.route.id }, 'upstream cookies could not be stored in the jar'));
      }
      const pass: Settled = taken ? { kind: 'pass', headers: taken.rest } : PASS;
      if (this.#wantsLogin(auth, status, headers, path)) return relogin();
      if (markerCandidate && status >= 200 && status < 300 && isHtml(headers)) {
        const marker = Buffer.from(auth.detect.bodyMarker!, 'utf8');
        return {
          kind: 'inspect-body',
          maxBytes: MARKER_BODY_LIMIT,
          decide: (body) => (body.includes(marker) ? relogin() : this.#confirmed(jarKey, expiresAt, jar, pass)),
        };
      }
      return this.#confirmed(jarKey, expiresAt, jar, pass);
    };
    x.forwarder.forward(req, res, x.ctx, { upstreamHeaders, inspectResponse });
  }

  /** An answer passed after a sign-in: the upstream accepts the jar (the loop guard in #relogin relies on this). */
  #confirmed<T extends ResponseHeadDecision>(jarKey: JarKey, expiresAt: number, jar: JarState, decision: T): T {
    if (!jar.confirmed && jar.signedInAt !== undefined) {
      this.#jars.update(jarKey, expiresAt, (s) => (s.signedInAt === jar.signedInAt ? { ...s, confirmed: true } : s)).catch(() => undefined);
    }
    return decision;
  }

  #wantsLogin(auth: FormLoginConfig, status: number, headers: readonly string[], path: string): boolean {
    if (auth.detect.statuses.includes(status)) return true;
    if (auth.detect.redirectToLogin && isRedirect(status)) {
      const location = headerOf(headers, 'location');
      // The upstream names itself by whatever host it likes; the login path is what counts.
      if (location !== undefined && redirectsToLogin('http://upstream.invalid', path, location, auth.loginUrl)) return true;
    }
    return false;
  }

  #relogin(req: IncomingMessage, res: ServerResponse, x: SignInExchange, auth: FormLoginConfig, creds: ResolvedCredentials, jarKey: JarKey, used: JarState, replay: boolean): void {
    (async () => {
      // Signed in moments ago and still asked: the upstream does not take Kanmon's sign-in. No loop.
      if (replay || (used.signedInAt !== undefined && !used.confirmed)) {
        await this.opts.audit.record({
          type: 'upstream.signin',
          result: 'failure',
          reason: 'not-accepted',
          userId: x.session!.user.id,
          username: x.session!.user.username,
          context: this.#context(req, x.ctx),
          details: { route: x.route.id },
        });
        return this.#page(req, res, 502, 'upstream.signIn.notAccepted', x.ctx.requestId);
      }
      const result = await this.#signIn(req, x, auth, creds, jarKey, used.signedInAt);
      if (result !== 'signed-in') return this.#signInFailed(req, res, x, auth, result, creds);
      if (hasBody(req)) {
        // The body went upstream already and is gone; the browser still has it and sends it again.
        res.writeHead(307, { location: req.url ?? '/', 'cache-control': 'no-store', 'content-length': 0 });
        res.end();
        return;
      }
      this.#forwardWithJar(req, res, x, auth, creds, jarKey, await this.#jars.get(jarKey), true);
    })().catch((err: unknown) => this.#failed(req, res, x, err));
  }

  /**
   * Signs in once per jar at a time (parallel requests of one page share it). `staleSignIn` is
   * the sign-in the caller's jar had: when the jar now holds a newer one, that one is used.
   */
  #signIn(req: IncomingMessage, x: SignInExchange, auth: FormLoginConfig, creds: ResolvedCredentials, jarKey: JarKey, staleSignIn: number | undefined): Promise<SignInResult> {
    const inflightKey = JarStore.idOf(jarKey.sessionId, jarKey.routeId);
    const pending = this.#inflight.get(inflightKey);
    if (pending) return pending;
    const p = (async (): Promise<SignInResult> => {
      const current = await this.#jars.get(jarKey);
      if (current.signedInAt !== undefined && current.signedInAt !== staleSignIn) return 'signed-in';
      const active = x.session!;
      const started = this.#now();
      const outcome = await signInWithForm(this.#client(x), auth, { username: creds.username, password: creds.secret }, [], this.#now);
      await this.#jars.update(jarKey, active.session.absoluteExpiresAt, () => (outcome.kind === 'signed-in' ? { cookies: outcome.jar, signedInAt: started } : { cookies: outcome.jar }));
      const context = this.#context(req, x.ctx);
      if (outcome.kind === 'rejected') {
        await this.opts.credentials.markRejected(x.route, active.user, creds, outcome.detail, context);
        return 'rejected';
      }
      await this.opts.audit.record({
        type: 'upstream.signin',
        result: outcome.kind === 'signed-in' ? 'success' : 'failure',
        ...(outcome.kind === 'failed' ? { reason: 'upstream-failed' } : {}),
        userId: active.user.id,
        username: active.user.username,
        context,
        details: { route: x.route.id, owner: creds.owner.kind, ...(outcome.kind === 'failed' ? { detail: outcome.detail.slice(0, 200) } : {}) },
      });
      if (outcome.kind === 'failed') this.opts.logger.warn({ route: x.route.id, detail: outcome.detail, requestId: x.ctx.requestId }, 'upstream sign-in failed');
      return outcome.kind === 'signed-in' ? 'signed-in' : 'failed';
    })().finally(() => this.#inflight.delete(inflightKey));
    this.#inflight.set(inflightKey, p);
    return p;
  }

  #signInFailed(req: IncomingMessage, res: ServerResponse, x: SignInExchange, auth: UpstreamAuthConfig, result: SignInResult, creds: ResolvedCredentials): void {
    if (result === 'rejected' && creds.owner.kind === 'user') return this.#credentialsNeeded(req, res, x, auth, 'rejected');
    this.#page(req, res, 502, result === 'rejected' ? 'upstream.signIn.noShared' : 'upstream.signIn.unavailable', x.ctx.requestId);
  }

  /** No usable credentials: a page load goes to the credentials page (and comes back); anything else gets a page saying so. */
  #credentialsNeeded(req: IncomingMessage, res: ServerResponse, x: SignInExchange, auth: UpstreamAuthConfig, why: 'missing' | 'rejected'): void {
    const sharedOnly = auth.credentials === 'shared';
    if (sharedOnly) return this.#page(req, res, 503, why === 'missing' ? 'upstream.signIn.noShared' : 'upstream.signIn.unavailable', x.ctx.requestId);
    const href = `${APPS_PAGE}?route=${encodeURIComponent(x.route.id)}&return=${encodeURIComponent(req.url ?? '/')}`;
    if (isNavigation(req) && !res.headersSent) {
      drain(req);
      res.writeHead(303, { location: href, 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    this.#page(req, res, 403, why === 'missing' ? 'upstream.signIn.needsCredentials' : 'upstream.signIn.rejected', x.ctx.requestId, href);
  }

  /**
   * Signs out of every upstream this Kanmon session signed in to (where a logout URL is
   * configured) and forgets the jars. Called when the Kanmon session ends.
   */
  async signOut(sessionId: string, context: RequestContext): Promise<void> {
    const routes = this.#routesById();
    // No route signs in upstream (nor can have left a jar since start): nothing to read.
    if (routes.size === 0 && !this.#everSignedIn) return;
    // A jar of a route that lost its upstreamAuth no longer opens (its credential set is unknown): it is only deleted.
    const jars = await this.#jars.listForSession(sessionId, (routeId) => routes.get(routeId)?.upstreamAuth?.credentialSet);
    for (const jar of jars) {
      const route = routes.get(jar.routeId);
      const auth = route?.upstreamAuth;
      if (route && auth?.kind === 'form' && auth.logoutUrl && jar.state.signedInAt !== undefined) {
        const status = await signOutOfUpstream(this.#client({ route, ctx: { clientIp: context.ip, publicHost: '', identityHeaders: {}, requestId: context.requestId ?? '' } }), auth, jar.state.cookies, this.#now());
        await this.opts.audit.record({ type: 'upstream.signout', result: status !== undefined && status < 500 ? 'success' : 'failure', context, details: { route: route.id, ...(status !== undefined ? { status } : {}) } });
      }
      await this.#jars.delete(jar.id).catch((err: unknown) => this.opts.logger.warn({ err }, 'an upstream cookie jar could not be deleted'));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#dispatchers.values()].map((d) => d.dispatcher.close().catch(() => undefined)));
    this.#dispatchers.clear();
  }

  #client(x: { readonly route: RouteConfig; readonly ctx: ForwardContext }): SignInClient {
    this.#everSignedIn = true;
    const upstream = this.opts.upstreamOf(x.route);
    // A route whose upstream, TLS or timeouts changed in a new config version gets a new pool.
    const builtFor = JSON.stringify([x.route.upstream, x.route.upstreamTls ?? null, x.route.connection?.connectTimeoutMs ?? null, x.route.connection?.responseTimeoutMs ?? null]);
    let entry = this.#dispatchers.get(x.route.id);
    if (entry && entry.builtFor !== builtFor) {
      const stale = entry.dispatcher;
      // Sign-ins still using it finish first; close() waits for them.
      stale.close().catch(() => undefined);
      entry = undefined;
    }
    if (!entry) {
      entry = {
        builtFor,
        dispatcher: createSignInDispatcher({
          upstream: upstream.url,
          ...(upstream.tls ? { tls: upstream.tls } : {}),
          connectTimeoutMs: x.route.connection?.connectTimeoutMs,
          responseTimeoutMs: x.route.connection?.responseTimeoutMs,
        }),
      };
      this.#dispatchers.set(x.route.id, entry);
    }
    const dispatcher = entry.dispatcher;
    const extraHeaders: string[] = ['x-forwarded-proto', 'https'];
    if (x.ctx.clientIp) extraHeaders.push('x-forwarded-for', x.ctx.clientIp, 'x-real-ip', x.ctx.clientIp);
    if (x.ctx.publicHost) extraHeaders.push('x-forwarded-host', x.ctx.publicHost);
    for (const [name, value] of Object.entries(x.ctx.identityHeaders)) extraHeaders.push(name, value);
    return {
      origin: new URL(upstream.url).origin,
      dispatcher,
      ...(x.route.preserveHost && x.ctx.publicHost ? { hostHeader: x.ctx.publicHost } : {}),
      extraHeaders,
    };
  }

  #context(req: IncomingMessage, ctx: ForwardContext): RequestContext {
    return { ip: ctx.clientIp, userAgent: String(req.headers['user-agent'] ?? ''), requestId: ctx.requestId };
  }

  /** One of Kanmon's own pages in place of the upstream's answer, in the user's language. */
  #page(req: IncomingMessage, res: ServerResponse, status: number, key: MessageKey, requestId: string, href?: string): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    drain(req);
    const lang = pickLang(undefined, readCookie(req.headers.cookie, LANG_COOKIE), req.headers['accept-language']);
    const t = translator(lang);
    const linkKey: MessageKey = href === '/.kanmon/login' ? 'common.signIn' : 'upstream.credentials.title';
    const body = messagePage({ lang, t, currentUrl: req.url ?? '/', requestId, titleKey: 'upstream.signIn.failedTitle', bodyKey: key, ...(href ? { link: { href, labelKey: linkKey } } : {}) });
    res.writeHead(status, { ...PORTAL_SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/** The jar of one Kanmon session and route, sealed for the session's user and the route's credential set. */
function jarKeyOf(active: ActiveSession, route: RouteConfig): JarKey {
  return { sessionId: active.session.id, routeId: route.id, userId: active.user.id, credentialSet: route.upstreamAuth!.credentialSet };
}

/** A sign-in for an upgrade forwards nothing itself. */
const NO_FORWARDER: HookedForwarder = {
  forward() {
    throw new Error('an upgrade is not forwarded as a request');
  },
};

/** Ends an upgrade request with a bare status line (there is no page to show on a WebSocket). */
function refuseUpgrade(socket: Duplex, status: string): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** A decision made on the head or after the body: relay or intercept. */
type Settled = Exclude<ResponseHeadDecision, { kind: 'inspect-body' }>;
const PASS: Settled = { kind: 'pass' };

function pathOnly(target: string): string {
  const q = target.search(/[?#]/);
  return q === -1 ? target : target.slice(0, q);
}

/** Where a user who asked for the upstream's login page is sent once signed in: the route's own root. */
function homeOf(route: RouteConfig): string {
  const prefix = route.match.pathPrefix;
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length.trim() !== '0');
}

function acceptsHtml(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return !accept || accept.includes('text/html') || accept.includes('*/*');
}

function isHtml(headers: readonly string[]): boolean {
  const type = headerOf(headers, 'content-type');
  return type === undefined || /^\s*(text\/html|application\/xhtml\+xml)/i.test(type);
}

function headerOf(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) return headers[i + 1];
  return undefined;
}

/** A top-level page load (the browser can be sent elsewhere and back); fetches get a status they can act on. */
function isNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const mode = req.headers['sec-fetch-mode'];
  if (mode) return mode === 'navigate';
  const accept = req.headers.accept;
  return !accept || accept.includes('text/html');
}

function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}
