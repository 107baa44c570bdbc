/**
 * Real servers on 127.0.0.1 port 0 for the forwarder tests: an upstream, a gateway that
 * hands every request to a forwarder, and a client that keeps raw headers.
 */
import http, { type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { createForwarder, type ForwardContext, type Forwarder, type ForwarderOptions } from '../../../runtime/proxy/index.js';

export const CONTEXT: ForwardContext = Object.freeze({
  clientIp: '203.0.113.7',
  publicHost: 'groupware.example.jp',
  identityHeaders: Object.freeze({
    'X-Kanmon-User': 'alice',
    'X-Kanmon-User-Id': 'u-123',
    'X-Kanmon-Groups': 'staff,admins',
    'X-Kanmon-Auth': 'passkey',
    'X-Kanmon-Jwt': 'eyJhbGciOiJFUzI1NiJ9.e30.sig',
  }),
  requestId: 'req-test-1',
});

export async function listen(server: Server | net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export async function closeServer(server: Server | net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export interface Upstream {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startUpstream(handler: RequestListener): Promise<Upstream> {
  const server = http.createServer(handler);
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, port, server, close: () => closeServer(server) };
}

/** An upstream that answers every request with the headers it received, as raw pairs. */
export function echoHeaders(): RequestListener {
  return (req, res) => {
    const body = JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}

export interface Gateway {
  readonly url: string;
  readonly port: number;
  readonly forwarder: Forwarder;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startGateway(opts: ForwarderOptions, ctx: ForwardContext = CONTEXT): Promise<Gateway> {
  const forwarder = createForwarder(opts);
  const server = http.createServer((req, res) => forwarder.forward(req, res, ctx));
  server.on('upgrade', (req, socket, head) => forwarder.upgrade(req, socket, head, ctx));
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    forwarder,
    server,
    async close() {
      // Upgraded sockets still count as the server's connections: the forwarder cuts them.
      server.closeAllConnections();
      await forwarder.close();
      await closeServer(server);
    },
  };
}

export interface Reply {
  readonly status: number;
  readonly rawHeaders: string[];
  readonly body: Buffer;
}

/** A request on a fresh connection; `headers` is a flat name/value list so repeats and case survive. */
export function send(
  url: string,
  opts: { method?: string; headers?: string[]; body?: string | Buffer | Readable } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // With a header list Node adds no Host of its own, and servers refuse requests without one.
    const headers = opts.headers ?? [];
    if (!names(headers).includes('host')) headers.push('Host', new URL(url).host);
    const req = http.request(url, { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = opts.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** All values of a header in a flat raw list, case-insensitively. */
export function values(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  const lower = name.toLowerCase();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lower) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

export function names(rawHeaders: readonly string[]): string[] {
  return rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

/** The raw headers an echoHeaders() upstream reported. */
export function echoed(reply: Reply): string[] {
  return (JSON.parse(reply.body.toString('utf8')) as { rawHeaders: string[] }).rawHeaders;
}

/** A port that was just free and has nothing listening on it now. */
export async function deadPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}

export function once<T = void>(emitter: { once(event: string, fn: (arg: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

export type { IncomingMessage };
