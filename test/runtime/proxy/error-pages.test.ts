/**
 * The pages a client gets when the upstream is down (502) or too slow (504): branded, in
 * Japanese or English as the existing pages choose, with a retry link and the request id,
 * counted in metrics, and never naming the upstream's address, host name or error.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { CONTEXT, closeServer, deadPort, listen, send, values, type Reply } from './harness.js';
import { routeGatewaysPerTest } from './route-harness.js';

const { cleanups, gateway } = routeGatewaysPerTest();

/** Accepts connections and never answers. */
async function silentUpstream(): Promise<number> {
  const held: net.Socket[] = [];
  const server = net.createServer((s) => held.push(s));
  const port = await listen(server);
  cleanups.push(async () => {
    held.forEach((s) => s.destroy());
    await closeServer(server);
  });
  return port;
}

function expectNothingAboutTheUpstream(reply: Reply, ...secrets: string[]): void {
  const everything = `${reply.rawHeaders.join('\n')}\n${reply.body.toString()}`;
  for (const s of secrets) expect(everything).not.toContain(s);
  expect(everything).not.toMatch(/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|UND_ERR|ETIMEDOUT|connect |socket/i);
}

describe('upstream error pages', () => {
  it('502 when the upstream is down: branded HTML in English, a retry link to the same URL, the request id', async () => {
    const port = await deadPort();
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}` });
    const reply = await send(`${gw.url}/mail/inbox?folder=2`, { headers: ['Accept-Language', 'en-GB,en;q=0.8'] });
    expect(reply.status).toBe(502);
    expect(values(reply.rawHeaders, 'content-type')).toEqual(['text/html; charset=utf-8']);
    expect(values(reply.rawHeaders, 'cache-control')).toEqual(['no-store']);
    expect(values(reply.rawHeaders, 'content-security-policy')[0]).toContain("script-src 'self'");
    const page = reply.body.toString();
    expect(page).toContain('<html lang="en">');
    expect(page).toContain('The application is not reachable');
    expect(page).toContain('関門');
    expect(page).toContain('<a id="upstream-error-retry" class="button primary" href="/mail/inbox?folder=2">Try again</a>');
    expect(page).toContain(CONTEXT.requestId);
    expectNothingAboutTheUpstream(reply, '127.0.0.1', String(port));
  });

  it('504 when the upstream is too slow, in Japanese from Accept-Language', async () => {
    const port = await silentUpstream();
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}`, connection: { responseTimeoutMs: 150 } });
    const reply = await send(`${gw.url}/report`, { headers: ['Accept-Language', 'ja,en;q=0.5'] });
    expect(reply.status).toBe(504);
    const page = reply.body.toString();
    expect(page).toContain('<html lang="ja">');
    expect(page).toContain('アプリケーションが時間内に応答しませんでした');
    expect(page).toContain('もう一度試す');
    expect(page).toContain(CONTEXT.requestId);
    expectNothingAboutTheUpstream(reply, '127.0.0.1', String(port));
  });

  it('picks the language from ?lang first, then the kanmon-lang cookie, then Accept-Language', async () => {
    const port = await deadPort();
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}` });
    const lang = async (path: string, headers: string[]) => /<html lang="(\w+)">/.exec((await send(`${gw.url}${path}`, { headers })).body.toString())?.[1];
    expect(await lang('/?lang=ja', ['Accept-Language', 'en', 'Cookie', 'kanmon-lang=en'])).toBe('ja');
    expect(await lang('/', ['Accept-Language', 'en', 'Cookie', 'kanmon-lang=ja'])).toBe('ja');
    expect(await lang('/', ['Accept-Language', 'ja'])).toBe('ja');
    expect(await lang('/', [])).toBe('en');
  });

  it('never names an internal host name, even when the name itself is what failed', async () => {
    const gw = await gateway({ upstream: 'http://groupware-db01.corp.invalid:8080' });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(502);
    expectNothingAboutTheUpstream(reply, 'groupware-db01', 'corp.invalid', '8080');
    // The operator gets the detail in the log, tied to the request id.
    expect(gw.logs.find((l) => l.msg === 'upstream error')).toMatchObject({ route: 'app', kind: 'connect', requestId: CONTEXT.requestId });
  });

  it('keeps a hostile request URL harmless: escaped, and a retry link that stays on this site', async () => {
    const port = await deadPort();
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}` });
    const rawGet = (target: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(gw.port, '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n`));
        let text = '';
        socket.on('data', (d) => (text += d));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    // Sent as raw bytes: a browser would percent-encode, an attacker's client need not.
    const hostile = await rawGet('/x?q="><script>alert(1)</script>');
    expect(hostile).toMatch(/^HTTP\/1\.1 502 /);
    expect(hostile).not.toContain('<script>alert');
    expect(hostile).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    // An absolute-form or protocol-relative target must not become an off-site link.
    for (const target of ['//evil.example/path', 'http://evil.example/other?x=1']) {
      const answer = await rawGet(target);
      expect(answer).toMatch(/^HTTP\/1\.1 502 /);
      const href = /id="upstream-error-retry" class="button primary" href="([^"]*)"/.exec(answer)?.[1];
      expect(href).toBeDefined();
      expect(href!.startsWith('/')).toBe(true);
      expect(href!.startsWith('//')).toBe(false);
      expect(answer).not.toContain('href="//evil');
      expect(answer).not.toContain('href="http://evil');
    }
  });

  it('counts 502s as upstream errors and 504s as upstream errors and timeouts, per route', async () => {
    const dead = await gateway({ upstream: `http://127.0.0.1:${await deadPort()}` });
    await send(`${dead.url}/`);
    await send(`${dead.url}/`);
    expect(dead.metrics.read('upstreamErrors', { Route: 'app' })).toBe(2);
    expect(dead.metrics.read('upstreamTimeouts', { Route: 'app' })).toBe(0);

    const slow = await gateway({ upstream: `http://127.0.0.1:${await silentUpstream()}`, connection: { responseTimeoutMs: 100 } });
    await send(`${slow.url}/`);
    expect(slow.metrics.read('upstreamErrors', { Route: 'app' })).toBe(1);
    expect(slow.metrics.read('upstreamTimeouts', { Route: 'app' })).toBe(1);
  });

  it('answers HEAD with the status and no body', async () => {
    const gw = await gateway({ upstream: `http://127.0.0.1:${await deadPort()}` });
    const reply = await send(`${gw.url}/`, { method: 'HEAD' });
    expect(reply.status).toBe(502);
    expect(reply.body.length).toBe(0);
  });

  it('gives a WebSocket handshake to a dead upstream the same page', async () => {
    const port = await deadPort();
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}` });
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(gw.port, '127.0.0.1', () =>
        socket.write('GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAccept-Language: ja\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 502 /);
    expect(answer).toContain('アプリケーションに接続できません');
    expect(answer).not.toContain(String(port));
  });
});
