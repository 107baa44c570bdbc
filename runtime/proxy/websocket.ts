/**
 * Upgrade requests (WebSocket in practice): after the caller has authenticated the request,
 * open a dedicated TCP or TLS connection to the upstream, replay the handshake with the same
 * header rules as any forwarded request, and splice the two sockets together.
 *
 * Upgraded connections never come from the pool: they are long-lived and leave HTTP behind.
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { downstreamResponseHeaders, downstreamUpgradeHeaders, responseHead, upstreamRequestHeaders, type ForwardContext } from './headers.js';
import { classifyUpstreamError, statusFor, type ErrorPage, type UpstreamErrorKind } from './upstream-errors.js';

export interface UpstreamTarget {
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  readonly port: number;
  /** Path prefix from the upstream URL; '' for none. */
  readonly basePath: string;
  /** Handshake deadline once connected. */
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly tls: { readonly ca?: string | Buffer | (string | Buffer)[]; readonly rejectUnauthorized?: boolean; readonly servername?: string };
}

export interface UpgradeTunnelOptions {
  /** Host header to send upstream. */
  readonly host: string;
  readonly errorPage: ErrorPage;
  readonly onError?: (kind: UpstreamErrorKind, req: IncomingMessage, err: Error) => void;
  /** Live sockets, so the forwarder can cut them all on close; entries remove themselves. */
  readonly tunnels: Set<Duplex>;
  /** The request target to send (before the upstream's base path). @default the client's */
  readonly path?: string;
  /** Last changes to the upstream request headers (a route's rewriter, sign-in hooks). */
  readonly prepareHeaders?: (headers: string[]) => string[];
}

class HandshakeTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(what: string) {
    super(`upstream ${what} timed out`);
    this.name = 'HandshakeTimeoutError';
  }
}

export function openUpgradeTunnel(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  ctx: ForwardContext,
  target: UpstreamTarget,
  opts: UpgradeTunnelOptions,
): void {
  const upgrade = headerValue(req.rawHeaders, 'upgrade') ?? 'websocket';
  const built = upstreamRequestHeaders(req.rawHeaders, ctx, { host: opts.host, upgrade }).headers;
  const headers = opts.prepareHeaders ? opts.prepareHeaders(built) : built;
  const transport = target.protocol === 'https:' ? https : http;
  let settled = false;
  let upstreamSocket: Duplex | undefined;

  opts.tunnels.add(client);
  const cleanup = (): void => {
    opts.tunnels.delete(client);
    client.destroy();
    upstreamSocket?.destroy();
    upstreamReq.destroy();
  };
  client.on('error', cleanup);
  client.on('close', cleanup);

  const upstreamReq: ClientRequest = transport.request({
    host: target.hostname,
    port: target.port,
    method: req.method ?? 'GET',
    path: target.basePath + (opts.path ?? (req.url?.startsWith('/') ? req.url : '/')),
    headers,
    setHost: false,
    agent: false,
    ...(target.protocol === 'https:' ? target.tls : {}),
  });

  const fail = (err: Error): void => {
    if (settled) return;
    settled = true;
    const kind = classifyUpstreamError(err);
    opts.onError?.(kind, req, err);
    const status = statusFor(kind);
    if (client.writable) {
      const page = opts.errorPage(status, ctx, req);
      const body = Buffer.from(page.body);
      client.end(
        responseHead(status, status === 504 ? 'Gateway Timeout' : 'Bad Gateway', [
          ...Object.entries(page.headers ?? {}).flat(),
          'Content-Type', page.contentType,
          'Content-Length', String(body.length),
          'Cache-Control', 'no-store',
          'Connection', 'close',
        ]) + page.body,
      );
    }
    upstreamReq.destroy();
  };

  // Connecting and the handshake answer each get their own deadline; a connect that
  // never completes is a timeout (504), a refused one a bad gateway (502).
  const connectTimer = setTimeout(() => fail(new HandshakeTimeoutError('connect')), target.connectTimeoutMs);
  let answerTimer: NodeJS.Timeout | undefined;
  upstreamReq.once('socket', (socket) => {
    socket.setNoDelay(true);
    const onConnected = (): void => {
      clearTimeout(connectTimer);
      answerTimer = setTimeout(() => fail(new HandshakeTimeoutError('handshake')), target.timeoutMs);
    };
    if (target.protocol === 'https:') socket.once('secureConnect', onConnected);
    else socket.once('connect', onConnected);
  });
  const stopTimers = (): void => {
    clearTimeout(connectTimer);
    clearTimeout(answerTimer);
  };
  upstreamReq.on('close', stopTimers);
  upstreamReq.on('error', (err) => {
    stopTimers();
    fail(err);
  });

  upstreamReq.on('upgrade', (res: IncomingMessage, socket: Duplex, upstreamHead: Buffer) => {
    stopTimers();
    if (settled || client.destroyed) {
      socket.destroy();
      return;
    }
    settled = true;
    upstreamSocket = socket;
    socket.on('error', cleanup);
    socket.on('close', cleanup);
    const accepted = headerValue(res.rawHeaders, 'upgrade') ?? upgrade;
    client.write(responseHead(res.statusCode ?? 101, res.statusMessage || 'Switching Protocols', downstreamUpgradeHeaders(res.rawHeaders, accepted)));
    if (upstreamHead.length > 0) client.write(upstreamHead);
    if (head.length > 0) socket.write(head);
    setNoDelay(client);
    socket.pipe(client);
    client.pipe(socket);
  });

  // The upstream declined the upgrade (401, 404, 426 …): relay its answer and close, since
  // the client's connection is no longer a clean HTTP/1.1 stream we could keep using.
  upstreamReq.on('response', (res: IncomingMessage) => {
    stopTimers();
    if (settled) {
      res.destroy();
      return;
    }
    settled = true;
    // Node hands us the body de-chunked, so it is framed by closing the connection instead.
    const headers = withoutHeader(downstreamResponseHeaders(res.rawHeaders), 'content-length');
    client.write(responseHead(res.statusCode ?? 502, res.statusMessage || '', [...headers, 'Connection', 'close']));
    res.on('error', cleanup);
    res.pipe(client);
  });

  upstreamReq.end();
}

function headerValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lowerName) return rawHeaders[i + 1];
  }
  return undefined;
}

function withoutHeader(headers: readonly string[], lowerName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== lowerName) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

function setNoDelay(socket: Duplex): void {
  const maybe = socket as Duplex & { setNoDelay?: (on: boolean) => void };
  maybe.setNoDelay?.(true);
}
