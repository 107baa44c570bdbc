/**
 * The sign-in engine and the jar on their own: form reading, cookies, and server-side sign-in
 * against real upstreams on port 0 (including a hostile one whose form posts elsewhere).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { validateUpstreamAuth, type FormLoginConfig } from '../../../runtime/config/upstream-auth.js';
import { applySetCookies, JAR_LIMITS, takeSetCookies, upstreamCookieHeader } from '../../../runtime/upstream-auth/cookie-jar.js';
import { findLoginForm } from '../../../runtime/upstream-auth/login-form.js';
import { signInWithForm, type SignInClient } from '../../../runtime/upstream-auth/sign-in.js';

function formConfig(extra: Record<string, unknown> = {}): FormLoginConfig {
  const errors: string[] = [];
  const c = validateUpstreamAuth({ kind: 'form', loginUrl: '/login', ...extra }, 'routes[0]', errors, 'app');
  expect(errors).toEqual([]);
  return c as FormLoginConfig;
}

const servers: Server[] = [];
const pools: Pool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
});

async function upstream(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ origin: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url} ${body}`);
      handler(req, res, body);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

function clientFor(origin: string): SignInClient {
  const pool = new Pool(origin);
  pools.push(pool);
  return { origin, dispatcher: pool, extraHeaders: [] };
}

describe('reading the login form', () => {
  it('finds the form with the password field and the fields a browser would send', () => {
    const html = `<form action="/search"><input name="q"></form>
<FORM method=POST action='/auth?x=1&amp;y=2'>
  <input type="hidden" name="csrf" value="t&#x41;k&quot;en">
  <input name="username" value="">
  <input type="password" name="password">
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="spam">
  <input type="text" name="locked" value="x" disabled>
  <button type="submit" name="op" value="login">Sign in</button>
  <button type="submit" name="op2" value="other">Other</button>
</FORM>`;
    const form = findLoginForm(html, 'password')!;
    expect(form.method).toBe('POST');
    expect(form.action).toBe('/auth?x=1&y=2');
    expect(form.fields).toEqual([
      ['csrf', 'tAk"en'],
      ['username', ''],
      ['remember', 'on'],
      ['op', 'login'],
    ]);
  });

  it('finds nothing in a page without a password input', () => {
    expect(findLoginForm('<form><input name="q"></form>', 'password')).toBeUndefined();
  });
});

describe('the cookie jar', () => {
  const now = 1_700_000_000_000;
  it('keeps, replaces and deletes cookies by name and path, with expiry', () => {
    let jar = applySetCookies([], ['SID=1; Path=/app; HttpOnly', 'pref=a', 'old=x; Max-Age=60'], '/app/login', now);
    expect(upstreamCookieHeader(undefined, jar, '/app/page', now)).toBe('SID=1; pref=a; old=x');
    expect(upstreamCookieHeader(undefined, jar, '/other', now)).toBeUndefined();
    jar = applySetCookies(jar, ['SID=2; Path=/app', 'old=; Max-Age=0'], '/app/x', now);
    expect(upstreamCookieHeader(undefined, jar, '/app/', now)).toBe('pref=a; SID=2');
    expect(upstreamCookieHeader(undefined, applySetCookies([], ['t=1; Max-Age=1'], '/', now), '/', now + 2000)).toBeUndefined();
  });

  it("never sends Kanmon's own cookies upstream, and a jar cookie wins over the browser's", () => {
    const jar = applySetCookies([], ['SID=server; Path=/'], '/', now);
    const header = upstreamCookieHeader('__Host-kanmon-session=secret; kanmon-lang=ja; SID=planted; theme=dark', jar, '/', now);
    expect(header).toBe('theme=dark; SID=server');
  });

  it('drops malformed and oversized cookies and bounds the jar', () => {
    const jar = applySetCookies([], ['no-equals', '=v', 'bad name=v', `big=${'x'.repeat(JAR_LIMITS.maxCookieBytes)}`, 'ok=1'], '/', now);
    expect(jar.map((c) => c.name)).toEqual(['ok']);
    const many = applySetCookies([], Array.from({ length: 200 }, (_, i) => `c${i}=v`), '/', now);
    expect(many).toHaveLength(JAR_LIMITS.maxCookies);
    expect(many.at(-1)!.name).toBe('c199');
  });

  it('takes Set-Cookie out of a header list', () => {
    expect(takeSetCookies(['Content-Type', 'text/html', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2'])).toEqual({ setCookies: ['a=1', 'b=2'], rest: ['Content-Type', 'text/html'] });
    expect(takeSetCookies(['Content-Type', 'text/html'])).toBeUndefined();
  });
});

describe('server-side form sign-in', () => {
  /** A login page with a CSRF token bound to a pre-session cookie, as many old apps do. */
  const loginApp = () =>
    upstream((req, res, body) => {
      if (req.method === 'GET' && req.url === '/login') {
        res.writeHead(200, { 'set-cookie': 'pre=p1; Path=/', 'content-type': 'text/html' });
        return res.end(`<form method="post" action="/do-login"><input type="hidden" name="csrf" value="c-123"><input name="username"><input type="password" name="password"></form>`);
      }
      if (req.method === 'POST' && req.url === '/do-login') {
        const f = new URLSearchParams(body);
        const ok = req.headers.cookie === 'pre=p1' && f.get('csrf') === 'c-123' && f.get('username') === 'u' && f.get('password') === 'pw' && f.get('domain') === 'CORP';
        if (ok) {
          res.writeHead(302, { location: '/home', 'set-cookie': 'SID=s1; Path=/; HttpOnly' });
          return res.end();
        }
        res.writeHead(302, { location: '/login?error=1' });
        return res.end();
      }
      res.writeHead(404).end();
    });

  it('carries the pre-session cookie and CSRF token, adds the fixed fields, and keeps the session cookie', async () => {
    const app = await loginApp();
    const out = await signInWithForm(clientFor(app.origin), formConfig({ extraFields: { domain: 'CORP' } }), { username: 'u', password: 'pw' }, [], Date.now);
    expect(out.kind).toBe('signed-in');
    expect(out.jar.map((c) => `${c.name}=${c.value}`).sort()).toEqual(['SID=s1', 'pre=p1']);
    const posted = app.requests.find((r) => r.startsWith('POST /do-login '))!;
    expect(Object.fromEntries(new URLSearchParams(posted.split(' ')[2]))).toEqual({ csrf: 'c-123', domain: 'CORP', username: 'u', password: 'pw' });
  });

  it('reports a redirect back to the login page as refused credentials', async () => {
    const app = await loginApp();
    const out = await signInWithForm(clientFor(app.origin), formConfig({ extraFields: { domain: 'CORP' } }), { username: 'u', password: 'wrong' }, [], Date.now);
    expect(out.kind).toBe('rejected');
  });

  it('checks success by cookie when told to', async () => {
    const app = await loginApp();
    const out = await signInWithForm(clientFor(app.origin), formConfig({ extraFields: { domain: 'CORP' }, success: { cookie: 'JSESSIONID' } }), { username: 'u', password: 'pw' }, [], Date.now);
    expect(out.kind).toBe('rejected');
  });

  it('never posts credentials to another host a hostile login page names', async () => {
    const elsewhere = await upstream((_req, res) => res.writeHead(200).end('thanks'));
    const app = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form method="post" action="${elsewhere.origin}/steal"><input type="password" name="password"></form>`);
    });
    const out = await signInWithForm(clientFor(app.origin), formConfig(), { username: 'u', password: 'pw' }, [], Date.now);
    expect(out.kind).toBe('failed');
    expect(elsewhere.requests).toEqual([]);
    expect(app.requests.every((r) => !r.includes('pw'))).toBe(true);
  });

  it('reports a broken or absent upstream as failed, not as refused credentials', async () => {
    const broken = await upstream((_req, res) => res.writeHead(500).end());
    expect((await signInWithForm(clientFor(broken.origin), formConfig(), { username: 'u', password: 'pw' }, [], Date.now)).kind).toBe('failed');
    const down = await upstream((_req, res) => res.end());
    const origin = down.origin;
    await Promise.all(servers.splice(servers.length - 1).map((s) => new Promise((r) => s.close(r))));
    expect((await signInWithForm(clientFor(origin), formConfig(), { username: 'u', password: 'pw' }, [], Date.now)).kind).toBe('failed');
  });

  it('reads only so much of a hostile, endless login page', async () => {
    const app = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      let sent = 0;
      const pump = () => {
        while (sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => (sent = Infinity));
      pump();
    });
    const out = await signInWithForm(clientFor(app.origin), formConfig(), { username: 'u', password: 'pw' }, [], Date.now);
    expect(['rejected', 'failed', 'signed-in']).toContain(out.kind);
    expect(app.requests.filter((r) => r.startsWith('POST'))).toHaveLength(1);
  });
});
