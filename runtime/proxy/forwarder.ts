/**
 * The forwarding path: one upstream, one pooled set of keep-alive connections, bodies
 * streamed both ways.
 *
 * Built on Node's own request/response objects and undici's `Pool.dispatch`, the lowest
 * undici layer that still streams: no framework per request, no body buffering, no header
 * objects beyond the flat lists the wire already gives us. The request pipeline calls
 * `forward` after session and policy have allowed the request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { downstreamResponseHeaders, upstreamRequestHeaders, type ForwardContext } from './headers.js';
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
export type { ErrorPage, UpstreamErrorKind } from './upstream-errors.js';

export interface UpstreamTlsOptions {
  /** Trust anchors for an https upstream with a private CA. @default Node's bundled roots */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** @default true */
  readonly rejectUnauthorized?: boolean;
  /** SNI and certificate name to check. @default the upstream's host name (none for an IP address) */
  readonly servername?: string;
}

export interface ForwarderOptions {
  /** `http(s)://host:port`, no path. */
  readonly upstream: string;
  /** Send the client's Host upstream instead of the upstream's own host:port. */
  readonly preserveHost: boolean;
  /** Upper bound on pooled upstream connections. @default 128 */
  readonly connections?: number;
  /**
   * How long the upstream may take to start answering, and may stay silent mid-body, before
   * the client gets 504 (or, once the answer has begun, a cut connection). @default 60000
   */
  readonly timeoutMs?: number;
  /** How long opening a connection to the upstream may take; past it the client gets 504. @default 10000 */
  readonly connectTimeoutMs?: number;
  readonly tls?: UpstreamTlsOptions;
  /** How long close() lets in-flight exchanges finish before cutting them. @default 5000 */
  readonly closeGraceMs?: number;
  /** Told about every failure to reach or hear from the upstream; the place to log the detail. */
  readonly onError?: (kind: UpstreamErrorKind, req: IncomingMessage, err: Error) => void;
  /** Told the upstream's final status and how long its headers took (ms), for metrics. */
  readonly onUpstreamResponse?: (statusCode: number, latencyMs: number) => void;
  /** Renders the 502/504 page. @default a fixed plain-text message */
  readonly errorPage?: ErrorPage;
}

export interface Forwarder {
  forward(req: IncomingMessage, res: ServerResponse, ctx: ForwardContext): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ForwardContext): void;
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
  readonly onError: ForwarderOptions['onError'];
  readonly onUpstreamResponse: ForwarderOptions['onUpstreamResponse'];
  readonly errorPage: ErrorPage;
}

export function createForwarder(opts: ForwarderOptions): Forwarder {
  const target = parseUpstream(opts.upstream);
  const connections = opts.connections ?? 128;
  if (!Number.isInteger(connections) || connections < 1) {
    throw new TypeError(`createForwarder: option 'connections' must be a positive integer, got ${String(opts.connections)}`);
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const closeGraceMs = opts.closeGraceMs ?? 5_000;
  const servername = opts.tls?.servername ?? (isIP(target.hostname) ? undefined : target.hostname);
  const tlsConnect =
    target.protocol === 'https:'
      ? {
          ...(opts.tls?.ca !== undefined ? { ca: opts.tls.ca as string | Buffer | (string | Buffer)[] } : {}),
          rejectUnauthorized: opts.tls?.rejectUnauthorized ?? true,
          ...(servername ? { servername } : {}),
        }
      : {};
  const pool = new Pool(target.origin, {
    connections,
    pipelining: 1,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: connectTimeoutMs, noDelay: true, ...tlsConnect },
  });
  const state: ForwarderState = {
    pool,
    hostHeader: target.host,
    basePath: target.basePath,
    preserveHost: opts.preserveHost,
    onError: opts.onError,
    onUpstreamResponse: opts.onUpstreamResponse,
    errorPage: opts.errorPage ?? genericErrorPage,
  };
  const upgradeTarget: UpstreamTarget = {
    protocol: target.protocol,
    hostname: target.hostname,
    port: target.port,
    basePath: target.basePath,
    timeoutMs,
    connectTimeoutMs,
    tls: { ...tlsConnect },
  };
  const tunnels = new Set<Duplex>();
  let closing: Promise<void> | undefined;

  return {
    forward(req, res, ctx) {
      const host = state.preserveHost ? ctx.publicHost : state.hostHeader;
      const { headers, hasBody } = upstreamRequestHeaders(req.rawHeaders, ctx, { host });
      const path = originFormPath(req.url ?? '/');
      new ForwardExchange(state, req, res, ctx, state.basePath && path !== '*' ? state.basePath + path : path, headers, hasBody).start();
    },
    upgrade(req, socket, head, ctx) {
      openUpgradeTunnel(req, socket, head, ctx, upgradeTarget, {
        host: state.preserveHost ? ctx.publicHost : state.hostHeader,
        errorPage: state.errorPage,
        onError: state.onError,
        tunnels,
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
  private startedAt = 0;
  private readonly dispatchOptions: Dispatcher.DispatchOptions;

  constructor(
    private readonly state: ForwarderState,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly ctx: ForwardContext,
    path: string,
    headers: string[],
    private readonly hasBody: boolean,
  ) {
    this.dispatchOptions = {
      path,
      method: req.method ?? 'GET',
      headers,
      body: hasBody ? req : null,
      // Only requests that cannot have had side effects may be replayed by undici itself.
      idempotent: false,
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
    const raw = (controller.rawHeaders ?? []) as (string | Buffer)[];
    try {
      this.res.writeHead(statusCode, statusMessage || undefined, downstreamResponseHeaders(raw));
    } catch (err) {
      // Node refuses header bytes it would not put on the wire itself; treat it as a broken upstream.
      this.responseStarted = false;
      controller.abort(err as Error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.finished = true;
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.clientGone || err instanceof ClientGoneError) {
      this.finished = true;
      return;
    }
    if (isRefusedRequest(err) && !this.responseStarted) {
      this.finished = true;
      sendPlain(this.res, 400, 'text/plain; charset=utf-8', 'Bad Request\n');
      return;
    }
    const kind = classifyUpstreamError(err);
    // A pooled keep-alive connection the upstream closed just as we reused it: a fresh
    // connection will do, as long as nothing can have reached the application twice.
    if (kind === 'reset' && !this.responseStarted && this.attempt === 0 && !this.hasBody && isSafeMethod(this.dispatchOptions.method)) {
      this.attempt++;
      this.controller = undefined;
      this.state.pool.dispatch(this.dispatchOptions, this);
      return;
    }
    this.finished = true;
    this.state.onError?.(kind, this.req, err);
    if (this.res.headersSent) {
      // Mid-body: the only honest signal left is to cut the client's response short.
      this.res.destroy();
      return;
    }
    const status = statusFor(kind);
    const page = this.state.errorPage(status, this.ctx);
    sendPlain(this.res, status, page.contentType, page.body);
  }
}

function sendPlain(res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

function isSafeMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
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
