/**
 * Real servers on 127.0.0.1 port 0 for the rewrite tests: an upstream whose answers each test
 * sets per path, and a gateway (node http + the real forwarder) whose route has the rewrite
 * rules under test. Rule errors and warnings are collected for the assertions.
 */
import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { validateRoutes } from '../../../runtime/config/routes.js';
import { createForwarder, type Forwarder } from '../../../runtime/proxy/index.js';
import { createRouteRewriter } from '../../../runtime/rewrite/index.js';

export const PUBLIC_HOST = 'gate.example.jp';
export const PUBLIC_ORIGIN = `https://${PUBLIC_HOST}`;

export interface Reported {
  readonly ruleId: string;
  readonly message: string;
}

export interface Setup {
  readonly upstreamUrl: string;
  readonly proxyUrl: string;
  /** Answers of the upstream, by path (without query). */
  readonly answers: Map<string, RequestListener>;
  /** What the upstream received, in order. */
  readonly received: IncomingMessage[];
  readonly errors: Reported[];
  readonly warnings: Reported[];
  close(): Promise<void>;
}

export async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Starts an upstream and a gateway whose single route has `rewrite` (raw config, validated like the real one). */
export async function setup(rewrite: unknown, opts: { upstreamPath?: string } = {}): Promise<Setup> {
  const answers = new Map<string, RequestListener>();
  const received: IncomingMessage[] = [];
  const upstream = http.createServer((req, res) => {
    received.push(req);
    const answer = answers.get((req.url ?? '/').split('?')[0]!);
    if (answer) answer(req, res);
    else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no answer set for this path');
    }
  });
  const upstreamPort = await listen(upstream);
  const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
  const upstreamUrl = upstreamOrigin + (opts.upstreamPath ?? '');
  const configErrors: string[] = [];
  const [route] = validateRoutes([{ id: 'app', match: { pathPrefix: '/' }, upstream: upstreamUrl, rewrite }], configErrors);
  if (configErrors.length) throw new Error(`config errors: ${configErrors.join('; ')}`);
  const errors: Reported[] = [];
  const warnings: Reported[] = [];
  const rewriter = createRouteRewriter(route!, {
    publicOrigin: PUBLIC_ORIGIN,
    upstreamOrigin,
    onRuleError: (ruleId, err) => errors.push({ ruleId, message: err.message }),
    onWarning: (ruleId, message) => warnings.push({ ruleId, message }),
  });
  const forwarder: Forwarder = createForwarder({ upstream: upstreamUrl, preserveHost: false, ...(rewriter ? { rewriter } : {}) });
  const gateway = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    forwarder.forward(req, res, { clientIp: '127.0.0.1', publicHost: PUBLIC_HOST, identityHeaders: { 'X-Kanmon-User': 'alice' }, requestId: 'req-rw-1' });
  });
  const proxyPort = await listen(gateway);
  return {
    upstreamUrl,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    answers,
    received,
    errors,
    warnings,
    async close() {
      await close(gateway);
      await forwarder.close();
      await close(upstream);
    },
  };
}

export interface Answer {
  readonly status: number;
  /** Raw header pairs as received. */
  readonly rawHeaders: string[];
  readonly body: Buffer;
  header(name: string): string | undefined;
  all(name: string): string[];
}

export function get(url: string, opts: { method?: string; headers?: Record<string, string>; onFirstData?: () => void } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let first = true;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (first) {
          first = false;
          opts.onFirstData?.();
        }
      });
      res.on('error', reject);
      res.on('end', () => {
        const raw = res.rawHeaders;
        const all = (name: string) => raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name ? [raw[i + 1]!] : []));
        resolve({ status: res.statusCode ?? 0, rawHeaders: raw, body: Buffer.concat(chunks), header: (n) => all(n.toLowerCase())[0], all: (n) => all(n.toLowerCase()) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** An upstream answer: status, headers and a body written in pieces of `chunk` bytes (to cross chunk boundaries). */
export function answer(status: number, headers: Record<string, string | string[]>, body: Buffer | string = '', chunk = 0): RequestListener {
  return (_req, res) => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, headers);
    if (chunk <= 0) {
      res.end(bytes);
      return;
    }
    let at = 0;
    const next = () => {
      if (at >= bytes.length) {
        res.end();
        return;
      }
      res.write(bytes.subarray(at, at + chunk));
      at += chunk;
      setImmediate(next);
    };
    next();
  };
}
