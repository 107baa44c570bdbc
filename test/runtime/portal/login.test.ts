import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor } from '../../support/kanmon-harness.js';
import type { SoftAuthenticator } from '../../support/soft-authenticator.js';
import { SESSION_COOKIE } from '../../../runtime/services/sessions.js';

let h: KanmonHarness;
let key: SoftAuthenticator;

beforeAll(async () => {
  h = await KanmonHarness.start();
  key = softAuthenticatorFor(h);
  await h.enrollAdmin(key);
});
afterAll(async () => h?.close());

async function loginOptions() {
  const res = await h.post('/.kanmon/api/login/options', {});
  expect(res.status).toBe(200);
  return res.json();
}

/** Signs in once with a counter well above anything used so far, so the next assertion is in sequence again. */
let counterFloor = 1000;
async function resyncCounter() {
  counterFloor += 100;
  const res = await h.post('/.kanmon/api/login/verify', { response: key.authenticate(await loginOptions(), { counter: counterFloor }) });
  expect(res.status).toBe(200);
}

async function lastAudit() {
  return (await h.app.services.audit.tail({ limit: 1 }))[0]!;
}

describe('passkey login over HTTP', () => {
  it('signs in usernameless and sets a __Host- session cookie (Secure, HttpOnly, SameSite=Lax)', async () => {
    const options = await loginOptions();
    expect(options.allowCredentials ?? []).toEqual([]);
    expect(options.userVerification).toBe('required');
    const res = await h.post('/.kanmon/api/login/verify', { response: key.authenticate(options), returnTo: '/headers?x=1' });
    expect(res.status).toBe(200);
    expect(res.json().redirect).toBe('/headers?x=1');
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Path=/; Secure; HttpOnly; SameSite=Lax$`));
    expect((await lastAudit()).type).toBe('login');
  });

  it('regenerates the session at login: the session the browser had before stops working', async () => {
    const first = sessionCookieFrom(await h.post('/.kanmon/api/login/verify', { response: key.authenticate(await loginOptions()) }))!;
    expect((await h.get('/headers', { cookie: first })).status).toBe(200);
    const second = sessionCookieFrom(await h.post('/.kanmon/api/login/verify', { response: key.authenticate(await loginOptions()) }, { cookie: first }))!;
    expect(second).not.toBe(first);
    expect((await h.get('/headers', { cookie: first, headers: { accept: 'text/html' } })).status).toBe(302);
    expect((await h.get('/headers', { cookie: second })).status).toBe(200);
  });

  it('refuses a replayed assertion (challenge single-use) with 400 and audits it', async () => {
    const response = key.authenticate(await loginOptions());
    expect((await h.post('/.kanmon/api/login/verify', { response })).status).toBe(200);
    const replay = await h.post('/.kanmon/api/login/verify', { response });
    expect(replay.status).toBe(400);
    expect(replay.json()).toMatchObject({ error: 'ceremony-failed' });
    expect(replay.text).not.toMatch(/challenge/i);
    expect(await lastAudit()).toMatchObject({ type: 'login', result: 'failure', reason: 'challenge-unknown', method: 'passkey' });
  });

  it('refuses an expired challenge', async () => {
    const options = await loginOptions();
    const stored = (await h.app.store.challenges.consume(options.challenge))!;
    await h.app.store.challenges.put({ ...stored, expiresAt: Date.now() - 1 });
    const res = await h.post('/.kanmon/api/login/verify', { response: key.authenticate(options) });
    expect(res.status).toBe(400);
    expect((await lastAudit()).reason).toBe('challenge-expired');
  });

  it('refuses a challenge issued for another ceremony (registration challenge used to log in)', async () => {
    const admin = (await h.app.services.users.require('admin'))!;
    const cookie = await h.sessionCookie(admin);
    const regOptions = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    const loginOpts = await loginOptions();
    const response = key.authenticate({ ...loginOpts, challenge: regOptions.challenge });
    const res = await h.post('/.kanmon/api/login/verify', { response });
    expect(res.status).toBe(400);
    expect((await lastAudit()).reason).toBe('challenge-wrong-ceremony');
  });

  it.each([
    ['a wrong origin', { origin: 'https://evil.example' }, 'origin-mismatch'],
    ['a wrong RP ID hash', { rpIdHashOf: 'evil.example' }, 'rp-id-mismatch'],
    ['UV missing while required', { uv: false }, 'user-verification-missing'],
    ['a counter regression', { counter: 0 }, 'counter-regression'],
    ['a tampered signature', { flipSignatureByte: true }, 'signature-invalid'],
  ] as const)('refuses %s with 400 and audits the reason', async (_name, knobs, reason) => {
    // Start each case in sequence, so that counter 0 is a regression and nothing else is.
    await resyncCounter();
    const res = await h.post('/.kanmon/api/login/verify', { response: key.authenticate(await loginOptions(), knobs) });
    expect(res.status).toBe(400);
    expect(sessionCookieFrom(res)).toBeUndefined();
    expect(await lastAudit()).toMatchObject({ result: 'failure', reason });
    await resyncCounter();
  });

  it('refuses an unknown credential', async () => {
    const stranger = softAuthenticatorFor(h);
    const options = await loginOptions();
    // The stranger registers with itself only (never with Kanmon), then answers the login challenge.
    stranger.register({ rp: { id: 'localhost', name: 'x' }, user: { id: 'AAAA', name: 'x', displayName: 'x' }, challenge: 'AAAA', pubKeyCredParams: [{ alg: -7, type: 'public-key' }] });
    const res = await h.post('/.kanmon/api/login/verify', { response: stranger.authenticate(options) });
    expect(res.status).toBe(400);
    expect((await lastAudit()).reason).toBe('credential-unknown');
  });
});

describe('hostile request bodies on the portal API', () => {
  it('answers malformed JSON with 400, never 5xx', async () => {
    const res = await h.post('/.kanmon/api/login/verify', undefined, { raw: '{"response": ' });
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('bad-request');
  });

  it('answers a non-object JSON body with 400', async () => {
    expect((await h.post('/.kanmon/api/login/verify', undefined, { raw: '[1,2,3]' })).status).toBe(400);
    expect((await h.post('/.kanmon/api/login/verify', undefined, { raw: '"text"' })).status).toBe(400);
  });

  it('answers garbage base64url and wrong shapes with 400', async () => {
    for (const response of [null, 42, 'x', {}, { id: '!!!', rawId: '!!!', type: 'public-key', response: {} }, { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: '%%%', authenticatorData: 'AA', signature: 'AA' } }]) {
      const res = await h.post('/.kanmon/api/login/verify', { response });
      expect(res.status, JSON.stringify(response)).toBe(400);
    }
  });

  it('answers a body over the limit with 413', async () => {
    const res = await h.post('/.kanmon/api/login/verify', undefined, { raw: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) });
    expect(res.status).toBe(413);
  });

  it('answers an unsupported content type with 415', async () => {
    const res = await h.post('/.kanmon/api/login/verify', undefined, { raw: 'a=b', contentType: 'text/plain' });
    expect(res.status).toBe(415);
  });
});

describe('cross-site requests to the portal', () => {
  it('refuses a POST from another origin with 403 and audits it', async () => {
    const res = await h.post('/.kanmon/api/login/options', {}, { origin: 'https://evil.example' });
    expect(res.status).toBe(403);
    expect(res.json().error).toBe('cross-site');
    expect(await lastAudit()).toMatchObject({ type: 'portal.cross-site', result: 'failure' });
  });

  it('refuses a POST without an Origin header', async () => {
    expect((await h.post('/.kanmon/api/login/options', {}, { origin: null })).status).toBe(403);
  });

  it('refuses a POST the browser marks cross-site even with a matching Origin', async () => {
    expect((await h.post('/.kanmon/api/login/options', {}, { headers: { 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
  });

  it('refuses a cross-site sign-out form post (the session survives)', async () => {
    const admin = (await h.app.services.users.require('admin'))!;
    const cookie = await h.sessionCookie(admin);
    const res = await h.post('/.kanmon/logout', undefined, { cookie, origin: 'https://evil.example', raw: '', contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(403);
    expect((await h.get('/headers', { cookie })).status).toBe(200);
  });
});

describe('return paths (no open redirect)', () => {
  it.each(['https://evil.example/', '//evil.example/x', '/\\evil.example', '\\\\evil.example', '/\t/evil.example', 'javascript:alert(1)', '', 'relative/path'])(
    'sends %j to / after login',
    async (returnTo) => {
      const res = await h.post('/.kanmon/api/login/verify', { response: key.authenticate(await loginOptions()), returnTo });
      expect(res.status).toBe(200);
      expect(res.json().redirect).toBe('/');
    },
  );

  it('puts only a safe return path into the login page', async () => {
    const page = await h.get('/.kanmon/login?return=%2F%2Fevil.example');
    expect(page.text).toContain('"returnTo":"/"');
    const ok = await h.get('/.kanmon/login?return=%2Fmail%2Finbox%3Fid%3D3');
    expect(ok.text).toContain('"returnTo":"/mail/inbox?id=3"');
  });
});

describe('portal pages', () => {
  it('send a CSP without inline script, frame-ancestors none, HSTS and no-store', async () => {
    for (const path of ['/.kanmon/login', '/.kanmon/signed-out', '/.kanmon/enroll?token=x']) {
      const res = await h.get(path);
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.text).not.toMatch(/<script(?![^>]*\b(src=|type="application\/json"))/);
    }
  });

  it('is in Japanese for Accept-Language ja, and the switch sticks through a cookie', async () => {
    const ja = await h.get('/.kanmon/login', { headers: { 'accept-language': 'ja,en;q=0.8' } });
    expect(ja.text).toContain('<html lang="ja">');
    expect(ja.text).toContain('パスキーでサインイン');
    const switched = await h.get('/.kanmon/login?lang=en', { headers: { 'accept-language': 'ja' } });
    expect(switched.text).toContain('Sign in with a passkey');
    expect(String(switched.headers['set-cookie'])).toContain('kanmon-lang=en');
    const after = await h.get('/.kanmon/login', { headers: { 'accept-language': 'ja', cookie: 'kanmon-lang=en' } });
    expect(after.text).toContain('<html lang="en">');
  });

  it('answers an unknown portal path with a 404 page, not the backend', async () => {
    const res = await h.get('/.kanmon/nothing-here');
    expect(res.status).toBe(404);
  });
});
