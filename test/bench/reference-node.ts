/**
 * The two reference proxies the foundation issue's target was set against, as bench cases, so a
 * run shows whether its frame reproduces the figures that target was calibrated on
 * (fastify + @fastify/http-proxy at about 0.38× nginx, node:http + an undici Pool at about 0.63×):
 *
 *   fastify   Fastify with @fastify/http-proxy in front of the upstream; no authentication
 *   undici    node:http(s) handing each request to an undici Pool's request() and piping the
 *             answer back: the textbook lean Node proxy; no authentication
 *
 * Neither strips hop-by-hop headers beyond what it needs to work: they are yardsticks, not proxies
 * to deploy. Prints {"url":…} once listening.
 *
 * Usage: reference-node.ts fastify|undici <upstream-url> <cert.pem> <key.pem> [plain|tls]
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';
import { Pool } from 'undici';

const [kind, upstream, certFile, keyFile, transport] = process.argv.slice(2);
if ((kind !== 'fastify' && kind !== 'undici') || !upstream || !certFile || !keyFile) {
  throw new Error('usage: reference-node.ts fastify|undici <upstream-url> <cert.pem> <key.pem> [plain|tls]');
}
const plain = transport === 'plain';
const tls = plain ? undefined : { cert: readFileSync(certFile), key: readFileSync(keyFile) };
const scheme = plain ? 'http' : 'https';
const announce = (port: number) => process.stdout.write(`${JSON.stringify({ url: `${scheme}://127.0.0.1:${port}` })}\n`);

/** Hop-by-hop fields (RFC 9110 §7.6.1) a proxy must not pass on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

if (kind === 'fastify') {
  const app = Fastify({ logger: false, ...(tls ? { https: tls } : {}) });
  await app.register(httpProxy, { upstream });
  await app.listen({ port: 0, host: '127.0.0.1' });
  announce((app.server.address() as AddressInfo).port);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
} else {
  const pool = new Pool(upstream, { connections: 128 });
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.request({ path: req.url ?? '/', method: (req.method ?? 'GET') as 'GET', headers, body: hasBody ? req : null }).then(
      (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
        res.writeHead(answer.statusCode, out);
        answer.body.pipe(res);
      },
      () => {
        res.writeHead(502, { 'content-length': 0 });
        res.end();
      },
    );
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => announce((server.address() as AddressInfo).port));
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => void pool.close().then(() => process.exit(0)));
  });
}
