/**
 * "Bare forwarder + rewriting" bench case: the bare forwarder case with a route whose body
 * rules rewrite an intranet app's hard-coded URLs, measured on a 100 KiB HTML page full of
 * them (REWRITE_BODIES, served by the upstream beside the plain bodies). The gap to the bare
 * forwarder on the same page is what body rewriting costs. Prints {"url":…,"expectBytes":…}
 * once listening: the rewritten page's size, so the runner can check the rewrite really ran.
 *
 * The bench's static upstream sends every file as application/octet-stream, so the rule lists
 * that type; on the plain bodies it still decodes and searches (and finds nothing).
 *
 * Usage: rewrite-case.ts <upstream-url> <cert.pem> <key.pem> [plain]
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { validateRoutes } from '../../runtime/config/routes.js';
import { createForwarder } from '../../runtime/proxy/index.js';
import { createRouteRewriter } from '../../runtime/rewrite/index.js';

const INTERNAL = 'http://intranet.corp.local';

/** A 100 KiB intranet page: links, images and scripts that name the app's internal host. */
function intranetPage(bytes: number): Buffer {
  const row = (i: number) =>
    `<tr><td><a href="${INTERNAL}/docs/${i}">文書 ${i}</a></td><td><img src="${INTERNAL}/icons/${i % 7}.png" alt=""></td><td>社内向けの説明文です。</td></tr>\n`;
  let html = `<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><link rel="stylesheet" href="${INTERNAL}/style.css"></head><body><table>\n`;
  for (let i = 0; Buffer.byteLength(html) < bytes - 200; i++) html += row(i);
  html += `</table><script src="${INTERNAL}/app.js"></script></body></html>\n`;
  const body = Buffer.from(html);
  return Buffer.concat([body, Buffer.alloc(Math.max(0, bytes - body.length), '\n')]);
}

export const REWRITE_BODIES: Readonly<Record<string, Buffer>> = { '/100k.html': intranetPage(100 * 1024) };

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const [upstream, certFile, keyFile, transport] = process.argv.slice(2);
  const plain = transport === 'plain';
  if (!upstream || !certFile || !keyFile) throw new Error('usage: rewrite-case.ts <upstream-url> <cert.pem> <key.pem> [plain]');

  const errors: string[] = [];
  const [route] = validateRoutes(
    [
      {
        id: 'bench',
        upstream,
        rewrite: {
          internalUrls: [INTERNAL],
          body: { contentTypes: ['application/octet-stream', 'text/html'], replace: [{ literal: INTERNAL, with: '{{publicOrigin}}' }] },
        },
      },
    ],
    errors,
  );
  if (errors.length) throw new Error(errors.join('\n'));
  const rewriter = createRouteRewriter(route!, {
    publicOrigin: 'https://localhost',
    upstreamOrigin: upstream,
    onRuleError: (ruleId, err) => process.stderr.write(`rule ${ruleId}: ${err.message}\n`),
    onWarning: (ruleId, message) => process.stderr.write(`rule ${ruleId}: ${message}\n`),
  });
  const forwarder = createForwarder({ upstream, preserveHost: false, ...(rewriter ? { rewriter } : {}) });
  const identityHeaders = Object.freeze({ 'X-Kanmon-User': 'bench', 'X-Kanmon-Groups': 'bench', 'X-Kanmon-Auth': 'passkey' });
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    forwarder.forward(req, res, { clientIp: req.socket.remoteAddress ?? '', publicHost: req.headers.host ?? '', identityHeaders, requestId: '-' });
  };
  const server = plain ? http.createServer(handler) : https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler);
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    const port = (server.address() as AddressInfo).port;
    // The forwarder names the public origin after the Host the client sent: https://127.0.0.1:port.
    const publicOrigin = `https://127.0.0.1:${port}`;
    const expectBytes = Object.fromEntries(
      Object.entries(REWRITE_BODIES).map(([path, body]) => [path, Buffer.byteLength(body.toString().split(INTERNAL).join(publicOrigin))]),
    );
    process.stdout.write(`${JSON.stringify({ url: `${plain ? 'http' : 'https'}://127.0.0.1:${port}`, expectBytes })}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => void forwarder.close().then(() => process.exit(0)));
  });
}
