import { createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import type { User } from '../../../runtime/store/types.js';

let h: KanmonHarness;
let alice: User;
let cookie: string;

beforeAll(async () => {
  h = await KanmonHarness.start({
    session: { cacheSeconds: 1 },
    routes: [
      { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' },
      { id: 'finance', match: { pathPrefix: '/finance' }, upstream: 'demo', policy: { allowGroups: ['経理'] } },
      { id: 'otp-only', match: { pathPrefix: '/strong' }, upstream: 'demo', policy: { factors: [['passkey', 'otp']] } },
      { id: 'elsewhere', match: { host: 'other.example', pathPrefix: '/' }, upstream: 'demo' },
    ],
  });
  alice = await h.app.services.users.addUser({ username: 'alice', displayName: 'Alice', groups: ['staff', '経理'] });
  cookie = await h.sessionCookie(alice);
});
afterAll(async () => h?.close());

function b64json(part: string) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

describe('the gateway', () => {
  it('redirects a page load without a session to the login page with the return path', async () => {
    const res = await h.get('/mail/inbox?id=7', { headers: { accept: 'text/html' } });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/.kanmon/login?return=%2Fmail%2Finbox%3Fid%3D7');
  });

  it('answers a script request without a session with 401 instead of a redirect', async () => {
    const res = await h.get('/api/items', { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
    expect(res.status).toBe(401);
  });

  it.each([
    ['an unknown session cookie', `__Host-kanmon-session=${'A'.repeat(43)}`],
    ['a tampered session cookie', 'tampered'],
    ['a malformed cookie header', '__Host-kanmon-session=;;;=;'],
    ['an over-long cookie', `__Host-kanmon-session=${'x'.repeat(4000)}`],
  ])('sends %s to the login page', async (_name, c) => {
    const actual = c === 'tampered' ? `${cookie.slice(0, -2)}${cookie.endsWith('A') ? 'BB' : 'AA'}` : c;
    const res = await h.get('/headers', { cookie: actual, headers: { accept: 'text/html' } });
    expect(res.status).toBe(302);
    expect(String(res.headers.location)).toMatch(/^\/\.kanmon\/login\?return=/);
  });

  it('passes the identity headers and a verifiable ES256 JWT to the backend', async () => {
    const headers = (await h.get('/headers', { cookie })).json().headers;
    expect(headers['x-kanmon-user']).toBe('alice');
    expect(headers['x-kanmon-user-id']).toBe(alice.id);
    expect(headers['x-kanmon-groups']).toBe(`staff,${encodeURIComponent('経理')}`);
    expect(headers['x-kanmon-auth']).toBe('passkey');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-forwarded-host']).toBe(`localhost:${h.app.port}`);

    const jwt: string = headers['x-kanmon-jwt'];
    const [head, payload, sig] = jwt.split('.') as [string, string, string];
    const header = b64json(head);
    expect(header.alg).toBe('ES256');
    const jwks = (await h.get('/.kanmon/jwks.json')).json();
    const jwk = jwks.keys.find((k: { kid: string }) => k.kid === header.kid);
    const ok = verify('sha256', Buffer.from(`${head}.${payload}`), { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
    expect(ok).toBe(true);
    const claims = b64json(payload);
    expect(claims).toMatchObject({ iss: h.origin, aud: 'demo', sub: alice.id, name: 'alice', groups: ['staff', '経理'], amr: ['passkey'] });
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(300);
  });

  it('reuses the JWT across requests instead of signing each one', async () => {
    const a = (await h.get('/headers', { cookie })).json().headers['x-kanmon-jwt'];
    const b = (await h.get('/headers', { cookie })).json().headers['x-kanmon-jwt'];
    expect(a).toBe(b);
  });

  it('strips identity headers sent by the client, in any case and repeated', async () => {
    const headers = (
      await h.get('/headers', {
        cookie,
        headers: { 'X-Kanmon-User': 'mallory', 'x-kanmon-groups': 'admins', 'X-KANMON-JWT': 'forged', 'X-Kanmon-Something-New': '1', 'x-forwarded-for': '6.6.6.6' },
      })
    ).json().headers;
    expect(headers['x-kanmon-user']).toBe('alice');
    expect(headers['x-kanmon-groups']).not.toContain('admins');
    expect(headers['x-kanmon-jwt']).not.toBe('forged');
    expect(headers['x-kanmon-something-new']).toBeUndefined();
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it("never hands Kanmon's session cookie (or its other cookies) to the backend, and keeps the application's", async () => {
    const sessionValue = cookie.slice(cookie.indexOf('=') + 1);
    const seen = (await h.get('/headers', { cookie: `theme=dark; ${cookie}; kanmon-lang=ja; JSESSIONID=app-1` })).json().headers;
    expect(seen.cookie).toBe('theme=dark; JSESSIONID=app-1');
    expect(JSON.stringify(seen)).not.toContain(sessionValue);
    // Only Kanmon's cookies: no Cookie header at all.
    expect((await h.get('/headers', { cookie })).json().headers.cookie).toBeUndefined();
  });

  it('strips identity headers from requests without a session too (they never reach the backend)', async () => {
    const res = await h.get('/headers', { headers: { 'x-kanmon-user': 'mallory', accept: 'text/html' } });
    expect(res.status).toBe(302);
  });

  it('allows members of the route groups and denies others with 403', async () => {
    // The demo backend has no /finance page: a 404 from it (not Kanmon's 403) proves the request went through.
    const allowed = await h.get('/finance/report', { cookie });
    expect(allowed.status).toBe(404);
    expect(allowed.text).toBe('Not Found\n');
    const bob = await h.app.services.users.addUser({ username: 'bob', groups: ['sales'] });
    const res = await h.get('/finance/report', { cookie: await h.sessionCookie(bob) });
    expect(res.status).toBe(403);
    expect(res.text).toContain('not allowed');
  });

  it('asks for step-up when the session lacks a factor the route needs', async () => {
    const res = await h.get('/strong', { cookie, headers: { 'accept-language': 'ja' } });
    expect(res.status).toBe(403);
    expect(res.text).toContain('追加の確認が必要です');
    expect(res.text).toContain('/.kanmon/login?return=%2Fstrong');
  });

  it('stops honouring a revoked session within the cache bound', async () => {
    const bobby = await h.app.services.users.addUser({ username: 'bobby' });
    const c = await h.sessionCookie(bobby);
    expect((await h.get('/headers', { cookie: c })).status).toBe(200);
    await h.app.services.sessions.revokeAll(bobby, 'test');
    // cacheSeconds is 1 here: poll for at most 3 s.
    let status = 200;
    for (let i = 0; i < 30 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await h.get('/headers', { cookie: c, headers: { accept: 'text/html' } })).status;
    }
    expect(status).toBe(302);
  });

  it('ends sessions of a disabled user', async () => {
    const eve = await h.app.services.users.addUser({ username: 'eve' });
    const c = await h.sessionCookie(eve);
    await h.app.services.users.setDisabled('eve', true);
    h.app.services.sessions.clearCache();
    expect((await h.get('/headers', { cookie: c, headers: { accept: 'text/html' } })).status).toBe(302);
  });

  it('refuses a WebSocket upgrade without a session and passes one with a session', async () => {
    const ca = readFileSync(h.app.devCaCertPath!);
    const url = `wss://localhost:${h.app.port}/ws`;
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, { ca });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => resolve(-1));
    });
    expect(refused).toBe(401);
    const echoed = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(url, { ca, headers: { cookie, origin: h.origin } });
      ws.on('open', () => ws.send('こんにちは'));
      ws.on('message', (data) => {
        resolve(data.toString());
        ws.close();
      });
      ws.on('error', reject);
    });
    expect(echoed).toBe('こんにちは');
  });
});

describe('a path with no route', () => {
  it('is denied with a clear page (404), even for a signed-in user, and never reaches a backend', async () => {
    const g = await KanmonHarness.start({ routes: [{ id: 'app', match: { pathPrefix: '/app' }, upstream: 'demo' }] });
    try {
      const user = await g.app.services.users.addUser({ username: 'zoe' });
      const c = await g.sessionCookie(user);
      expect((await g.get('/app/headers', { cookie: c })).status).toBe(404); // the backend's own 404 for /app/headers
      for (const path of ['/', '/apple', '/other/headers']) {
        const res = await g.get(path, { cookie: c, headers: { 'accept-language': 'en' } });
        expect(res.status, path).toBe(404);
        expect(res.text).toContain('No application is configured at this address.');
        expect(res.headers['content-security-policy']).toBeDefined();
      }
    } finally {
      await g.close();
    }
  });
});
