/**
 * Routes in a running Kanmon (real TLS, real store): several public host names, exact and
 * wildcard, on one listener; Expect: 100-continue decided after sign-in and the body limit;
 * the branded 502 page and its metrics.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness } from '../../support/kanmon-harness.js';

let h: KanmonHarness;
let cookie: string;
const upstreams: http.Server[] = [];

/** An upstream that names itself, so the test sees which route answered. */
async function named(name: string): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`${name} ${req.method} ${req.url}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstreams.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  const dead = http.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  h = await KanmonHarness.start({
    routes: [
      { id: 'fallback', upstream: await named('fallback') },
      { id: 'mail', match: { host: 'mail.example.jp' }, upstream: await named('mail') },
      { id: 'any-example', match: { host: '*.example.jp' }, upstream: await named('wildcard') },
      { id: 'files', match: { host: '*.example.jp', pathPrefix: '/files' }, upstream: await named('files'), connection: { maxRequestBodyBytes: 1000 } },
      { id: 'down', match: { host: 'down.example.jp' }, upstream: `http://127.0.0.1:${deadPort}` },
    ],
  });
  const user = await h.app.services.users.addUser({ username: 'alice', actor: 'test' });
  cookie = await h.sessionCookie(user);
});

afterAll(async () => {
  await h?.close();
  for (const s of upstreams) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/** A GET with the given Host header over TLS to the listener (the development certificate names localhost). */
function get(host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: h.app.port, path, servername: 'localhost', ca: readFileSync(h.app.devCaCertPath!), agent: false, headers: { host, cookie, ...headers } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A raw TLS exchange: the head (and body, if `body` is given only after 100 Continue). */
function rawTls(head: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: h.app.port, servername: 'localhost', ca: readFileSync(h.app.devCaCertPath!) }, () => socket.write(head));
    let text = '';
    let sentBody = false;
    socket.on('data', (d) => {
      text += d.toString();
      if (body !== undefined && !sentBody && text.includes('100 Continue')) {
        sentBody = true;
        socket.write(body);
      }
      if (/\r\n\r\n[\s\S]*(<\/html>|(mail|wildcard|files|fallback) \w+ \S+)\s*$/.test(text.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ''))) socket.end();
    });
    socket.on('end', () => resolve(text));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('routes in a running Kanmon', () => {
  it('serves several public host names: exact beats wildcard, the wildcard covers the rest, other names fall back', async () => {
    expect((await get('mail.example.jp', '/inbox')).text).toBe('mail GET /inbox');
    expect((await get('MAIL.example.jp:8443', '/inbox')).text).toBe('mail GET /inbox');
    expect((await get('wiki.example.jp', '/page')).text).toBe('wildcard GET /page');
    expect((await get('a.b.example.jp', '/')).text).toBe('wildcard GET /');
    expect((await get('wiki.example.jp', '/files/report.pdf')).text).toBe('files GET /files/report.pdf');
    expect((await get('example.jp', '/')).text).toBe('fallback GET /');
    expect((await get('localhost', '/')).text).toBe('fallback GET /');
  });

  it('answers Expect: 100-continue only for a signed-in request whose body fits the route', async () => {
    const fits = await rawTls(`POST /files/upload HTTP/1.1\r\nHost: docs.example.jp\r\nCookie: ${cookie}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`, 'hello');
    expect(fits).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    expect(fits).toContain('files POST /files/upload');

    const tooLarge = await rawTls(`POST /files/upload HTTP/1.1\r\nHost: docs.example.jp\r\nCookie: ${cookie}\r\nExpect: 100-continue\r\nContent-Length: 5000\r\nAccept-Language: ja\r\n\r\n`);
    expect(tooLarge).not.toContain('100 Continue');
    expect(tooLarge).toMatch(/^HTTP\/1\.1 413 /);
    expect(tooLarge).toContain('アップロードするデータが大きすぎます');

    const signedOut = await rawTls('POST /files/upload HTTP/1.1\r\nHost: docs.example.jp\r\nExpect: 100-continue\r\nContent-Length: 5\r\nAccept: application/json\r\n\r\n');
    expect(signedOut).not.toContain('100 Continue');
    expect(signedOut).toMatch(/^HTTP\/1\.1 401 /);
  });

  it('gives the branded 502 page for a route whose upstream is down, counted for that route', async () => {
    const before = h.app.metrics.read('upstreamErrors', { Route: 'down' });
    const reply = await get('down.example.jp', '/app?x=1', { 'accept-language': 'ja' });
    expect(reply.status).toBe(502);
    expect(reply.text).toContain('アプリケーションに接続できません');
    expect(reply.text).toContain('href="/app?x=1"');
    expect(reply.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
    expect(h.app.metrics.read('upstreamErrors', { Route: 'down' })).toBe(before + 1);
    expect(h.app.metrics.read('requests', { Route: 'down', StatusClass: '5xx' })).toBeGreaterThanOrEqual(1);
  });
});
