/**
 * The demo groupware: a small stand-in for the kind of application Kanmon protects.
 *
 * It is the first thing an evaluator sees behind the gateway, so each page shows one thing
 * the gateway does: who the backend thinks you are (/), exactly which headers reached it
 * (/headers), a form post going through (/form), a large download streaming through
 * (/download/10mb) and a WebSocket being relayed (/ws-test). It trusts X-Kanmon-* headers
 * blindly, as a real backend behind Kanmon would; that is only safe because it listens on
 * 127.0.0.1 by default and Kanmon strips those headers from clients.
 */
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { readFormBody } from './form-body.js';
import { LegacyArea, type LegacyAreaOptions, type LegacyStats } from './legacy.js';

export interface DemoGroupwareOptions {
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** @default 0 (any free port) */
  readonly port?: number;
  /** The legacy area under /legacy/ (its own login, see legacy.ts). */
  readonly legacy?: LegacyAreaOptions;
}

export interface DemoGroupware {
  /** `http://host:port`, ready to be a route's upstream. */
  readonly url: string;
  readonly port: number;
  /** Counters of the legacy area's own sign-ins. */
  readonly legacy: { readonly stats: LegacyStats; endAllSessions(): void };
  close(): Promise<void>;
}

/** Size of /download/10mb. */
export const DOWNLOAD_BYTES = 10 * 1024 * 1024;
const FORM_LIMIT_BYTES = 64 * 1024;

/**
 * One 64 KiB block repeated: byte i of the download is `i % 251` (a prime, so the pattern
 * does not line up with block or buffer boundaries and a misplaced chunk is caught).
 */
const DOWNLOAD_BLOCK = (() => {
  const size = 251 * 256; // a multiple of 251 so consecutive blocks continue the pattern
  const block = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) block[i] = i % 251;
  return block;
})();

let downloadDigest: string | undefined;

/** The SHA-256 of /download/10mb, for tests and for the page that offers it. */
export function downloadSha256(): string {
  if (downloadDigest) return downloadDigest;
  const hash = createHash('sha256');
  let left = DOWNLOAD_BYTES;
  while (left > 0) {
    const n = Math.min(left, DOWNLOAD_BLOCK.length);
    hash.update(n === DOWNLOAD_BLOCK.length ? DOWNLOAD_BLOCK : DOWNLOAD_BLOCK.subarray(0, n));
    left -= n;
  }
  downloadDigest = hash.digest('hex');
  return downloadDigest;
}

export async function startDemoGroupware(opts: DemoGroupwareOptions = {}): Promise<DemoGroupware> {
  const host = opts.host ?? '127.0.0.1';
  const legacy = new LegacyArea(opts.legacy);
  const server = http.createServer((req, res) => {
    try {
      if (!legacy.handle(req, res, pathOf(req))) route(req, res);
    } catch {
      if (!res.headersSent) sendText(res, 500, 'Internal Server Error\n');
      else res.destroy();
    }
  });
  const sockets = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  sockets.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(req) !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => sockets.emit('connection', ws, req));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    legacy,
    async close() {
      for (const client of sockets.clients) client.terminate();
      await new Promise<void>((resolve) => sockets.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function route(req: IncomingMessage, res: ServerResponse): void {
  const path = pathOf(req);
  const method = req.method ?? 'GET';
  const readOnly = method === 'GET' || method === 'HEAD';
  if (path === '/' && readOnly) return sendHtml(res, homePage(req));
  if (path === '/headers' && readOnly) return sendJson(res, { method, url: req.url, headers: req.headers });
  if (path === '/form' && readOnly) return sendHtml(res, formPage());
  if (path === '/form' && method === 'POST') return receiveForm(req, res);
  if (path === '/download/10mb' && readOnly) return sendDownload(req, res);
  if (path === '/ws-test' && readOnly) return sendHtml(res, webSocketPage());
  if (path === '/ws-test.js' && readOnly) return sendAsset(res, 'text/javascript; charset=utf-8', WS_TEST_SCRIPT);
  if (path === '/style.css' && readOnly) return sendAsset(res, 'text/css; charset=utf-8', STYLE);
  if (['/', '/headers', '/form', '/download/10mb', '/ws-test'].includes(path)) {
    res.setHeader('allow', path === '/form' ? 'GET, HEAD, POST' : 'GET, HEAD');
    return sendText(res, 405, 'Method Not Allowed\n');
  }
  sendText(res, 404, 'Not Found\n');
}

// ---------------------------------------------------------------------------
// pages

function homePage(req: IncomingMessage): string {
  const user = identity(req, 'x-kanmon-user');
  const rows = Object.entries(req.headers)
    .filter(([name]) => name.startsWith('x-kanmon-'))
    .map(([name, value]) => {
      const text = Array.isArray(value) ? value.join(', ') : (value ?? '');
      const shown =
        name === 'x-kanmon-jwt' && text.length > 48 ? `${text.slice(0, 48)}…` : name === 'x-kanmon-groups' ? decodeGroups(text) : text;
      return `<tr><th>${escapeHtml(name)}</th><td><code>${escapeHtml(shown)}</code></td></tr>`;
    })
    .join('\n');
  const greeting = user
    ? `<p class="greeting">ようこそ、<strong>${escapeHtml(user)}</strong> さん / Welcome, <strong>${escapeHtml(user)}</strong></p>`
    : `<p class="greeting warn">No X-Kanmon-User header arrived: this page was reached without the gateway.<br>X-Kanmon-User ヘッダーがありません（ゲートウェイを経由していません）。</p>`;
  return layout(
    'Demo groupware',
    `${greeting}
<p>This application trusts the identity Kanmon asserts. What it received:</p>
<table>${rows || '<tr><td>(none)</td></tr>'}</table>
<h2>Try / お試し</h2>
<ul>
  <li><a href="headers">Request headers</a> — every header that reached this backend, as JSON</li>
  <li><a href="form">Form</a> — a POST through the gateway</li>
  <li><a href="download/10mb">10 MiB download</a> — streamed, SHA-256 <code>${downloadSha256()}</code></li>
  <li><a href="ws-test">WebSocket echo</a> — a relayed WebSocket</li>
  <li><a href="legacy/">Legacy app</a> — its own login form, signed in to by Kanmon / 独自ログインのアプリ（Kanmon が代理サインイン）</li>
</ul>`,
  );
}

function formPage(): string {
  return layout(
    'Form',
    `<form method="post" action="form">
  <label>Subject / 件名 <input name="subject" maxlength="200"></label>
  <label>Message / 本文 <textarea name="message" rows="4" maxlength="2000"></textarea></label>
  <button type="submit">Send / 送信</button>
</form>`,
  );
}

function webSocketPage(): string {
  return layout(
    'WebSocket echo',
    `<p>Status: <output id="status">connecting…</output></p>
<form id="send">
  <label>Message <input id="message" value="hello, 関門"></label>
  <button type="submit">Send</button>
</form>
<ol id="log"></ol>
<script src="ws-test.js" defer></script>`,
  );
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title === 'Demo groupware' ? '' : `${escapeHtml(title)} — `}Demo groupware</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<header><a href="./">Demo groupware / デモ グループウェア</a></header>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

/** Kept in its own file (served from /ws-test.js) so the pages work under a script-src 'self' policy. */
const WS_TEST_SCRIPT = `'use strict';
(function () {
  var status = document.getElementById('status');
  var log = document.getElementById('log');
  var url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  var socket = new WebSocket(url);
  function add(text) {
    var item = document.createElement('li');
    item.textContent = text;
    log.appendChild(item);
  }
  socket.addEventListener('open', function () { status.textContent = 'open'; });
  socket.addEventListener('close', function () { status.textContent = 'closed'; });
  socket.addEventListener('error', function () { status.textContent = 'error'; });
  socket.addEventListener('message', function (event) { add('echo: ' + event.data); });
  document.getElementById('send').addEventListener('submit', function (event) {
    event.preventDefault();
    var text = document.getElementById('message').value;
    add('sent: ' + text);
    socket.send(text);
  });
})();
`;

const STYLE = `body { font-family: system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; margin: 0; color: #1d2430; }
header { background: #23395d; padding: .75rem 1.5rem; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { max-width: 48rem; padding: 1rem 1.5rem; }
.greeting { font-size: 1.25rem; }
.warn { color: #9a3412; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .25rem .75rem .25rem 0; vertical-align: top; }
code { word-break: break-all; }
label { display: block; margin: .5rem 0; }
input, textarea { display: block; width: 100%; max-width: 32rem; }
`;

// ---------------------------------------------------------------------------
// handlers

function receiveForm(req: IncomingMessage, res: ServerResponse): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    req.resume();
    return sendText(res, 415, 'Send the form as application/x-www-form-urlencoded\n');
  }
  readFormBody(req, res, FORM_LIMIT_BYTES, () => sendText(res, 413, 'Form too large\n'), (fields) => {
    const rows = [...fields].map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v).replace(/\n/g, '<br>')}</td></tr>`).join('\n');
    const user = identity(req, 'x-kanmon-user');
    sendHtml(
      res,
      layout(
        'Form received',
        `<p>Received from ${user ? `<strong>${escapeHtml(user)}</strong>` : 'an anonymous user'}:</p>
<table>${rows || '<tr><td>(no fields)</td></tr>'}</table>
<p><a href="form">Send another / もう一度</a></p>`,
      ),
    );
  });
}

function sendDownload(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': DOWNLOAD_BYTES,
    'content-disposition': 'attachment; filename="demo-10mb.bin"',
    'cache-control': 'no-store',
  });
  if (req.method === 'HEAD') return void res.end();
  let left = DOWNLOAD_BYTES;
  // Written block by block, waiting for 'drain', so a slow client never makes us buffer the file.
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, DOWNLOAD_BLOCK.length);
      left -= n;
      const more = res.write(n === DOWNLOAD_BLOCK.length ? DOWNLOAD_BLOCK : DOWNLOAD_BLOCK.subarray(0, n));
      if (!more && left > 0) return void res.once('drain', pump);
    }
    res.end();
  };
  res.on('close', () => {
    left = 0;
  });
  pump();
}

// ---------------------------------------------------------------------------
// small helpers

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function identity(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** X-Kanmon-Groups is a comma-separated list of percent-encoded names (経理部 travels as %E7%B5%8C…). */
function decodeGroups(value: string): string {
  return value
    .split(',')
    .map((g) => {
      try {
        return decodeURIComponent(g);
      } catch {
        return g;
      }
    })
    .join(', ');
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

function sendHtml(res: ServerResponse, html: string): void {
  const body = Buffer.from(html);
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, value: unknown): void {
  const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendAsset(res: ServerResponse, contentType: string, text: string): void {
  const body = Buffer.from(text);
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': contentType, 'content-length': body.length, 'cache-control': 'max-age=300' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  const body = Buffer.from(text);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
