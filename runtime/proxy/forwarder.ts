/**
 * The forwarding path: one upstream, one pooled set of connections, bodies streamed both ways.
 *
 * Built on Node's own request/response objects and undici's `Pool.dispatch`, the lowest
 * undici layer that still streams: no framework per request, no body buffering, no header
 * objects beyond the flat lists the wire already gives us. The request pipeline calls
 * `forward` after session and policy have allowed the request.
 *
 * A route's RouteRewriter and a request's ExchangeHooks (./hooks.ts) are applied here, in this
 * order: request target (rewriter) → Kanmon's header rules → request headers (rewriter) →
 * upstream headers (hooks, which win) → upstream → response head seen by the hooks → response
 * head and body (rewriter) → client. A route with neither takes the plain path unchanged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Duplex, Transform } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { downstreamResponseHeaders, upstreamRequestHeaders, type ForwardContext } from './headers.js';
import type { ExchangeHooks, ResponseHeadDecision, RouteRewriter } from './hooks.js';
import { RequestBodyLimit, RequestBodyTooLargeError, declaredLengthExceeds } from './body-limit.js';
import {
  classifyUpstreamError,
  genericErrorPage,
  isRefusedRequest,
  statusFor,
  type ErrorPage,
  type UpstreamErrorKind,
} from './upstream-errors.js';
import { openUpgradeTunnel, type UpstreamTarget } from './websocket.js';

export type { ForwardContext } from './headers.js';
export type { ErrorPage, GatewayErrorStatus, UpstreamErrorKind } from './upstream-errors.js';

export interface UpstreamTlsOptions {
  /** Trust anchors for an https upstream with a private CA. @default Node's bundled roots */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** @default true */
  readonly rejectUnauthorized?: boolean;
  /** SNI and certificate name to check. @default the upstream's host name (none for an IP address) */
  readonly servername?: string;
  /** PEM client certificate presented to the upstream (with `key`). @default none */
  readonly cert?: string | Buffer;
  /** PEM private key of `cert`. */
  readonly key?: string | Buffer;
}

export interface ForwarderOptions {
  /** `http(s)://host:port`, optionally with a path that every request path is put under. */
  readonly upstream: string;
  /** Send the client's Host upstream instead of the upstream's own host:port. */
  readonly preserveHost: boolean;
  /** Upper bound on connections to the upstream. @default 128 */
  readonly connections?: number;
  /** Reuse connections (keep-alive pool); false opens a new connection per request. @default true */
  readonly keepAlive?: boolean;
  /** The default for `responseTimeoutMs` and `idleTimeoutMs`. @default 60000 */
  readonly timeoutMs?: number;
  /** How long the upstream may take to send the response head; past it the client gets 504. 0: no limit. @default timeoutMs */
  readonly responseTimeoutMs?: number;
  /** How long the response body may stay silent; past it the client's response is cut. 0: no limit. @default timeoutMs */
  readonly idleTimeoutMs?: number;
  /** How long opening a connection to the upstream may take; past it the client gets 504. @default 10000 */
  readonly connectTimeoutMs?: number;
  /**
   * Retries of a request with an idempotent method and no body, after a connection error
   * (refused, or broken before any answer). Never after an answer began or a timeout. @default 1
   */
  readonly retries?: number;
  /** Largest request body passed on; larger ones get 413. 0: no limit. @default 0 */
  readonly maxRequestBodyBytes?: number;
  readonly tls?: UpstreamTlsOptions;
  /** The route's compiled rewrite rules. @default none */
  readonly rewriter?: RouteRewriter;
  /** How long close() lets in-flight exchanges finish before cutting them. @default 5000 */
  readonly closeGraceMs?: number;
  /** Told about every failure to reach or hear from the upstream; the place to log the detail. */
  readonly onError?: (kind: UpstreamErrorKind, req: IncomingMessage, err: Error, ctx: ForwardContext) => void;
  /** Told about a request refused with 413 because its body is larger than `maxRequestBodyBytes`. */
  readonly onRequestTooLarge?: (req: IncomingMessage, ctx: ForwardContext) => void;
  /** Told the upstream's final status and how long its headers took (ms), for metrics. */
  readonly onUpstreamResponse?: (statusCode: number, latencyMs: number) => void;
  /** Renders the 413/502/504 page. @default a fixed plain-text message */
  readonly errorPage?: ErrorPage;
}

export interface Forwarder {
  /** Forwards one request; `hooks` are this request's upstream sign-in additions. */
  forward(req: IncomingMessage, res: ServerResponse, ctx: ForwardContext, hooks?: ExchangeHooks): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ForwardContext, hooks?: ExchangeHooks): void;
  close(): Promise<void>;
}

/** Used to abort an upstream exchange the client has walked away from; never reported. */
class ClientGoneError extends Error {
  constructor() {
    super('client closed the connection');
    this.name = 'ClientGoneError';
  }
}

interface ForwarderState {
  readonly pool: Pool;
  readonly hostHeader: string;
  /** Path the upstream URL carried, without trailing slash; '' for none. */
  readonly basePath: string;
  readonly preserveHost: boolean;
  readonly keepAlive: boolean;
  readonly retries: number;
  readonly maxRequestBodyBytes: number;
  readonly rewriter: RouteRewriter | undefined;
  readonly onError: ForwarderOptions['onError'];
  readonly onRequestTooLarge: ForwarderOptions['onRequestTooLarge'];
  readonly onUpstreamResponse: ForwarderOptions['onUpstreamResponse'];
  readonly errorPage: ErrorPage;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`createForwarder: option '${name}' must be a non-negative integer, got ${String(value)}`);
  return value;
}

export function createForwarder(opts: ForwarderOptions): Forwarder {
  const target = parseUpstream(opts.upstream);
  const connections = opts.connections ?? 128;
  if (!Number.isInteger(connections) || connections < 1) {
    throw new TypeError(`createForwarder: option 'connections' must be a positive integer, got ${String(opts.connections)}`);
  }
  const timeoutMs = nonNegativeInteger('timeoutMs', opts.timeoutMs ?? 60_000);
  const responseTimeoutMs = nonNegativeInteger('responseTimeoutMs', opts.responseTimeoutMs ?? timeoutMs);
  const idleTimeoutMs = nonNegativeInteger('idleTimeoutMs', opts.idleTimeoutMs ?? timeoutMs);
  const connectTimeoutMs = nonNegativeInteger('connectTimeoutMs', opts.connectTimeoutMs ?? 10_000);
  const retries = nonNegativeInteger('retries', opts.retries ?? 1);
  const maxRequestBodyBytes = nonNegativeInteger('maxRequestBodyBytes', opts.maxRequestBodyBytes ?? 0);
  const closeGraceMs = opts.closeGraceMs ?? 5_000;
  const keepAlive = opts.keepAlive ?? true;
  const servername = opts.tls?.servername ?? (isIP(target.hostname) ? undefined : target.hostname);
  const tlsConnect =
    target.protocol === 'https:'
      ? {
          ...(opts.tls?.ca !== undefined ? { ca: opts.tls.ca as string | Buffer | (string | Buffer)[] } : {}),
          rejectUnauthorized: opts.tls?.rejectUnauthorized ?? true,
          ...(servername ? { servername } : {}),
          ...(opts.tls?.cert !== undefined && opts.tls.key !== undefined ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
        }
      : {};
  const pool = new Pool(target.origin, {
    connections,
    // pipelining 0 is undici's "no keep-alive": every request gets its own connection, closed after it.
    pipelining: keepAlive ? 1 : 0,
    headersTimeout: responseTimeoutMs,
    bodyTimeout: idleTimeoutMs,
    connect: { timeout: connectTimeoutMs, noDelay: true, ...tlsConnect },
  });
  const state: ForwarderState = {
    pool,
    hostHeader: target.host,
    basePath: target.basePath,
    preserveHost: opts.preserveHost,
    keepAlive,
    retries,
    maxRequestBodyBytes,
    rewriter: opts.rewriter,
    onError: opts.onError,
    onRequestTooLarge: opts.onRequestTooLarge,
    onUpstreamResponse: opts.onUpstreamResponse,
    errorPage: opts.errorPage ?? genericErrorPage,
  };
  const upgradeTarget: UpstreamTarget = {
    protocol: target.protocol,
    hostname: target.hostname,
    port: target.port,
    basePath: target.basePath,
    timeoutMs: responseTimeoutMs,
    connectTimeoutMs,
    tls: { ...tlsConnect },
  };
  const tunnels = new Set<Duplex>();
  let closing: Promise<void> | undefined;

  return {
    forward(req, res, ctx, hooks) {
      const host = state.preserveHost ? ctx.publicHost : state.hostHeader;
      const built = upstreamRequestHeaders(req.rawHeaders, ctx, { host });
      const hasBody = built.hasBody;
      if (hasBody && state.maxRequestBodyBytes > 0 && declaredLengthExceeds(req, state.maxRequestBodyBytes)) {
        refuseTooLarge(state, req, res, ctx);
        return;
      }
      // Expect: 100-continue is answered only now that the request will go upstream, so a
      // client whose body would be refused (or is not signed in) never sends it.
      if (hasBody && (res as ContinueAware)._expect_continue && !(res as ContinueAware)._sent100) res.writeContinue();
      const clientTarget = originFormPath(req.url ?? '/');
      let path = clientTarget;
      let headers = built.headers;
      const rewriter = state.rewriter;
      if (rewriter) {
        path = rewriter.requestTarget(path);
        headers = rewriter.requestHeaders(headers);
      }
      if (hooks?.upstreamHeaders) headers = withHeadersSet(headers, hooks.upstreamHeaders);
      if (state.basePath && path !== '*') path = state.basePath + path;
      new ForwardExchange(state, req, res, ctx, path, clientTarget, headers, hasBody, hooks).start();
    },
    upgrade(req, socket, head, ctx, hooks) {
      const rewriter = state.rewriter;
      const prepare =
        rewriter || hooks?.upstreamHeaders
          ? (headers: string[]) => {
              let out = rewriter ? rewriter.requestHeaders(headers) : headers;
              if (hooks?.upstreamHeaders) out = withHeadersSet(out, hooks.upstreamHeaders);
              return out;
            }
          : undefined;
      const clientTarget = originFormPath(req.url ?? '/');
      openUpgradeTunnel(req, socket, head, ctx, upgradeTarget, {
        host: state.preserveHost ? ctx.publicHost : state.hostHeader,
        errorPage: state.errorPage,
        ...(state.onError ? { onError: (kind: UpstreamErrorKind, r: IncomingMessage, err: Error) => state.onError!(kind, r, err, ctx) } : {}),
        tunnels,
        path: rewriter ? rewriter.requestTarget(clientTarget) : clientTarget,
        ...(prepare ? { prepareHeaders: prepare } : {}),
      });
    },
    close() {
      // Idempotent: shutdown paths tend to call close more than once.
      closing ??= (async () => {
        for (const socket of tunnels) socket.destroy();
        tunnels.clear();
        // In-flight exchanges get a moment to finish; a long poll must not hold shutdown hostage.
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), closeGraceMs);
          timer.unref();
        });
        const outcome = await Promise.race([pool.close().then(() => 'closed' as const), graceOver]);
        clearTimeout(timer);
        if (outcome === 'timeout') await pool.destroy();
      })();
      return closing;
    },
  };
}

/** Node's own bookkeeping of Expect: 100-continue on a server response. */
type ContinueAware = ServerResponse & { _expect_continue?: boolean; _sent100?: boolean };

/** What happens to the upstream's response: relayed, held back for the hooks' body check, or discarded. */
const enum Mode {
  Relay,
  Collect,
  Intercept,
}

/**
 * One request's trip upstream and back, as an undici dispatch handler.
 * A class rather than closures because the hot path creates one per request.
 */
class ForwardExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private responseStarted = false;
  private finished = false;
  private clientGone = false;
  private attempt = 0;
  /** Cleared when the upstream's answer itself was unusable: asking again would not help. */
  private retryable = true;
  private startedAt = 0;
  private mode = Mode.Relay;
  /** The rewriter's body transform, when it rewrites this response's body. */
  private transform: Transform | undefined;
  /** Intercept: who answers the client instead. Collect: the held head and body. */
  private onIntercept: (() => void) | undefined;
  private held: { status: number; statusMessage: string | undefined; headers: string[]; maxBytes: number; decide: (body: Buffer) => Exclude<ResponseHeadDecision, { kind: 'inspect-body' }>; chunks: Buffer[]; bytes: number } | undefined;
  private bodyLimit: RequestBodyLimit | undefined;
  private readonly dispatchOptions: Dispatcher.DispatchOptions;

  constructor(
    private readonly state: ForwarderState,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly ctx: ForwardContext,
    path: string,
    private readonly clientTarget: string,
    headers: string[],
    private readonly hasBody: boolean,
    private readonly hooks: ExchangeHooks | undefined,
  ) {
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (hasBody) {
      // A body without a declared length is counted as it streams; one with a length was checked already.
      if (state.maxRequestBodyBytes > 0 && req.headers['content-length'] === undefined) {
        this.bodyLimit = new RequestBodyLimit(state.maxRequestBodyBytes);
        body = req.pipe(this.bodyLimit);
      } else {
        body = req;
      }
    }
    this.dispatchOptions = {
      path,
      method: req.method ?? 'GET',
      headers,
      body,
      // Only requests that cannot have had side effects may be replayed by undici itself.
      idempotent: false,
      // Without keep-alive the request asks for the connection to close after it.
      reset: !state.keepAlive,
    };
  }

  start(): void {
    if (this.state.onUpstreamResponse) this.startedAt = performance.now();
    this.res.once('close', this.onClientClose);
    this.state.pool.dispatch(this.dispatchOptions, this);
  }

  private readonly onClientClose = (): void => {
    if (this.finished) return;
    this.clientGone = true;
    const controller = this.controller;
    if (controller && !controller.aborted) controller.abort(new ClientGoneError());
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new ClientGoneError());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusMessage?: string): void {
    // 1xx interim answers (103 Early Hints and the like) are not relayed; the final one follows.
    if (statusCode < 200) return;
    this.responseStarted = true;
    this.state.onUpstreamResponse?.(statusCode, performance.now() - this.startedAt);
    let headers = downstreamResponseHeaders((controller.rawHeaders ?? []) as (string | Buffer)[]);
    const inspect = this.hooks?.inspectResponse;
    if (inspect) {
      const decision = inspect(statusCode, headers);
      if (decision.kind === 'intercept') {
        this.mode = Mode.Intercept;
        this.onIntercept = decision.onIntercept;
        return;
      }
      if (decision.kind === 'inspect-body') {
        this.mode = Mode.Collect;
        this.held = { status: statusCode, statusMessage, headers, maxBytes: decision.maxBytes, decide: decision.decide, chunks: [], bytes: 0 };
        return;
      }
      if (decision.headers) headers = decision.headers;
    }
    if (!this.writeHead(statusCode, statusMessage, headers)) this.abortUnusable(controller);
  }

  private abortUnusable(controller: Dispatcher.DispatchController): void {
    this.retryable = false;
    controller.abort(new Error('response head refused'));
  }

  /** Writes the client's response head, through the rewriter when the route has one. False when Node refused it. */
  private writeHead(statusCode: number, statusMessage: string | undefined, headers: string[]): boolean {
    const rewriter = this.state.rewriter;
    let transform: Transform | undefined;
    if (rewriter) {
      const rewritten = rewriter.responseHead(statusCode, headers, {
        method: this.dispatchOptions.method,
        target: this.clientTarget,
        publicOrigin: `https://${this.ctx.publicHost}`,
        requestId: this.ctx.requestId,
      });
      headers = rewritten.headers;
      transform = rewritten.body;
    }
    try {
      this.res.writeHead(statusCode, statusMessage || undefined, headers);
    } catch {
      // Node refuses header bytes it would not put on the wire itself; treat it as a broken upstream.
      this.responseStarted = false;
      transform?.destroy();
      return false;
    }
    if (transform) {
      this.transform = transform;
      transform.on('error', this.onTransformError);
      transform.pipe(this.res);
    }
    return true;
  }

  /** The rewriter has logged the rule that failed; the response can only be cut now. */
  private readonly onTransformError = (): void => {
    this.finished = true;
    const controller = this.controller;
    if (controller && !controller.aborted) controller.abort(new ClientGoneError());
    this.res.destroy();
  };

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.mode === Mode.Intercept) return;
    if (this.mode === Mode.Collect) {
      const held = this.held!;
      held.chunks.push(chunk);
      held.bytes += chunk.length;
      if (held.bytes <= held.maxBytes) return;
      // Too large to decide on: relay what was held back, then stream the rest.
      this.mode = Mode.Relay;
      this.held = undefined;
      if (!this.writeHead(held.status, held.statusMessage, held.headers)) {
        this.abortUnusable(controller);
        return;
      }
      chunk = held.chunks.length === 1 ? chunk : Buffer.concat(held.chunks, held.bytes);
    }
    const sink = this.transform ?? this.res;
    if (!sink.write(chunk)) {
      controller.pause();
      sink.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (this.mode === Mode.Intercept) {
      this.finished = true;
      this.onIntercept!();
      return;
    }
    if (this.mode === Mode.Collect) {
      const held = this.held!;
      this.held = undefined;
      const body = Buffer.concat(held.chunks, held.bytes);
      const decision = held.decide(body);
      if (decision.kind === 'intercept') {
        this.finished = true;
        decision.onIntercept();
        return;
      }
      this.mode = Mode.Relay;
      if (!this.writeHead(held.status, held.statusMessage, decision.headers ?? held.headers)) {
        this.finished = true;
        const status = statusFor('reset');
        sendPage(this.res, status, this.state.errorPage(status, this.ctx, this.req));
        return;
      }
      (this.transform ?? this.res).write(body);
    }
    this.finished = true;
    if (this.transform) this.transform.end();
    else this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.clientGone || err instanceof ClientGoneError) {
      this.finished = true;
      return;
    }
    if (this.bodyLimit?.exceeded || err instanceof RequestBodyTooLargeError) {
      this.finished = true;
      if (this.res.headersSent) this.res.destroy();
      else refuseTooLarge(this.state, this.req, this.res, this.ctx);
      return;
    }
    if (isRefusedRequest(err) && !this.responseStarted) {
      this.finished = true;
      sendPage(this.res, 400, { contentType: 'text/plain; charset=utf-8', body: 'Bad Request\n' });
      return;
    }
    const kind = classifyUpstreamError(err);
    // Refused, or a connection (often a pooled keep-alive one the upstream closed just as we
    // reused it) that broke before any answer: a new attempt is safe when the method is
    // idempotent and there is no body that was already consumed.
    if (
      kind !== 'timeout' &&
      this.retryable &&
      !this.responseStarted &&
      this.attempt < this.state.retries &&
      !this.hasBody &&
      this.mode === Mode.Relay &&
      isIdempotentMethod(this.dispatchOptions.method)
    ) {
      this.attempt++;
      this.controller = undefined;
      this.state.pool.dispatch(this.dispatchOptions, this);
      return;
    }
    if (this.mode === Mode.Intercept) {
      // The discarded answer broke off while draining; whoever intercepted still answers.
      this.finished = true;
      this.onIntercept!();
      return;
    }
    this.finished = true;
    this.state.onError?.(kind, this.req, err, this.ctx);
    if (this.res.headersSent) {
      // Mid-body: the only honest signal left is to cut the client's response short.
      this.res.destroy();
      return;
    }
    const status = statusFor(kind);
    sendPage(this.res, status, this.state.errorPage(status, this.ctx, this.req));
  }
}

function refuseTooLarge(state: ForwarderState, req: IncomingMessage, res: ServerResponse, ctx: ForwardContext): void {
  state.onRequestTooLarge?.(req, ctx);
  // The unread rest of the body is not worth reading: the connection closes after the answer.
  res.shouldKeepAlive = false;
  sendPage(res, 413, state.errorPage(413, ctx, req));
}

function sendPage(res: ServerResponse, status: number, page: { contentType: string; body: string; headers?: Readonly<Record<string, string>> }): void {
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(status, {
    ...page.headers,
    'content-type': page.contentType,
    'content-length': Buffer.byteLength(page.body),
    'cache-control': 'no-store',
  });
  res.end(res.req?.method === 'HEAD' ? undefined : page.body);
}

/** RFC 9110 §9.2.2. */
function isIdempotentMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || method === 'PUT' || method === 'DELETE' || method === 'TRACE';
}

/** `headers` with every header named in `set` replaced by the value given there. */
function withHeadersSet(headers: string[], set: readonly string[]): string[] {
  const names = new Set<string>();
  for (let i = 0; i < set.length; i += 2) names.add(set[i]!.toLowerCase());
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!names.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  for (let i = 0; i < set.length; i += 2) out.push(set[i]!, set[i + 1]!);
  return out;
}

/** Upstreams get origin-form targets; a client's absolute-form request line is reduced to path and query. */
function originFormPath(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  if (url === '*') return url;
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return '/';
  }
}

function parseUpstream(upstream: string): {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number;
  host: string;
  origin: string;
  basePath: string;
} {
  let u: URL;
  try {
    u = new URL(upstream);
  } catch {
    throw new TypeError(`createForwarder: option 'upstream' must be an http(s)://host:port URL, got ${JSON.stringify(upstream)}`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || u.search || u.hash || u.username || u.password) {
    throw new TypeError(`createForwarder: option 'upstream' must be an http(s)://host:port URL without query or credentials, got ${JSON.stringify(upstream)}`);
  }
  const protocol = u.protocol;
  const port = u.port ? Number(u.port) : protocol === 'https:' ? 443 : 80;
  // URL keeps IPv6 literals bracketed in hostname; sockets want them bare.
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  // An upstream given with a path (http://app:8080/portal) has every request path put under it.
  const basePath = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  return { protocol, hostname, port, host: u.host, origin: u.origin, basePath };
}
