/**
 * Authenticator-app (TOTP) endpoints against a real node: setup from the account page,
 * sign-in alone and as a step-up, the policy that admits or steps up a TOTP session, the CLI
 * reset, and hostile input for every endpoint.
 */
import * as otplib from 'otplib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCommand } from '../../../runtime/cli/commands.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import type { User } from '../../../runtime/store/types.js';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor, type HttpAnswer } from '../../support/kanmon-harness.js';
import { appCode } from '../../support/totp-app.js';

// Counts otplib verifications, so the unknown-user path can be compared with the known one.
vi.mock('otplib', async (importOriginal) => {
  const actual = await importOriginal<typeof import('otplib')>();
  return { ...actual, verify: vi.fn(actual.verify) };
});

let h: KanmonHarness;
let adminCookie: string;
let admin: User;

/** Sets up TOTP for the session's user the way the pages do; returns the Base32 secret. */
async function enrollTotp(cookie: string): Promise<string> {
  expect((await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie })).status).toBe(200);
  const page = await h.get('/.kanmon/account/totp', { cookie });
  expect(page.status).toBe(200);
  const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(page.text)![1]!.replace(/ /g, '');
  const confirm = await h.post('/.kanmon/api/account/totp/confirm', { code: await appCode(secret) }, { cookie });
  expect(confirm.status).toBe(200);
  return secret;
}

async function userWithTotp(username: string): Promise<{ user: User; cookie: string; secret: string }> {
  const user = await h.app.services.users.addUser({ username });
  const cookie = await h.sessionCookie(user);
  return { user, cookie, secret: await enrollTotp(cookie) };
}

async function sessionMethods(res: HttpAnswer): Promise<readonly string[] | undefined> {
  const cookie = sessionCookieFrom(res);
  if (!cookie) return undefined;
  return (await h.app.store.sessions.get(sessionIdFromToken(cookie.split('=')[1]!)))?.authMethods;
}

function withoutRequestId(res: HttpAnswer): unknown {
  const { requestId: _ignored, ...rest } = res.json<Record<string, unknown>>();
  return rest;
}

beforeAll(async () => {
  h = await KanmonHarness.start({
    webauthn: { rpName: 'Example Co' },
    routes: [
      // The groupware takes a passkey or an authenticator app code; its /headers page a passkey only.
      { id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } },
      { id: 'strict', match: { pathPrefix: '/headers' }, upstream: 'demo', policy: { factors: [['passkey']] } },
    ],
  });
  ({ cookie: adminCookie, user: admin } = await h.enrollAdmin(softAuthenticatorFor(h)));
});
afterAll(async () => h?.close());

describe('authenticator app setup', () => {
  it('shows the QR code as inline SVG, the secret as text in groups of four and the otpauth link', async () => {
    const user = await h.app.services.users.addUser({ username: 'qr' });
    const cookie = await h.sessionCookie(user);
    const before = await h.get('/.kanmon/account/totp', { cookie });
    expect(before.text).toContain('id="totp-start"'); // nothing started yet
    expect((await h.get('/.kanmon/api/account/totp', { cookie })).json()).toEqual({ enabled: false, pending: false });

    expect((await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie })).json()).toEqual({ ok: true, next: '/.kanmon/account/totp' });
    const page = await h.get('/.kanmon/account/totp', { cookie });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.text).toMatch(/<figure id="totp-qr" role="img" aria-label="[^"]+"><svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(page.text).not.toMatch(/<script(?![^>]*(src=|type="application\/json"))/); // no inline script
    const text = /<code id="totp-secret">([^<]+)<\/code>/.exec(page.text)![1]!;
    expect(text).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
    const uri = new URL(/<a id="totp-uri" href="([^"]+)"/.exec(page.text)![1]!.replace(/&amp;/g, '&'));
    expect(uri.protocol).toBe('otpauth:');
    expect(decodeURIComponent(uri.pathname)).toBe('/Example Co:qr');
    expect(uri.searchParams.get('secret')).toBe(text.replace(/ /g, ''));
    expect(page.text).toContain('<strong id="totp-label">Example Co:qr</strong>');
    // The same pending secret on reload: a scanned code keeps working.
    expect((await h.get('/.kanmon/account/totp', { cookie })).text).toContain(text);
    expect((await h.get('/.kanmon/api/account/totp', { cookie })).json()).toEqual({ enabled: false, pending: true });
  });

  it('counts only after a valid code confirms it, and then cannot be started over without a reset', async () => {
    const user = await h.app.services.users.addUser({ username: 'confirmer' });
    const cookie = await h.sessionCookie(user);
    await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie });
    const page = await h.get('/.kanmon/account/totp', { cookie });
    const secret = /<code id="totp-secret">([^<]+)<\/code>/.exec(page.text)![1]!.replace(/ /g, '');
    const wrong = await h.post('/.kanmon/api/account/totp/confirm', { code: await appCode(secret, 3) }, { cookie });
    expect(wrong.status).toBe(400);
    expect(await h.app.services.totp.isEnabled(user.id)).toBe(false);
    expect((await h.post('/.kanmon/api/account/totp/confirm', { code: await appCode(secret) }, { cookie })).status).toBe(200);
    expect((await h.get('/.kanmon/api/account/totp', { cookie })).json()).toMatchObject({ enabled: true, pending: false });
    expect((await h.get('/.kanmon/account/totp', { cookie })).text).toContain('id="totp-already"');
    expect((await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie })).status).toBe(409);
    const audit = await h.app.store.audit.list({ userId: user.id, limit: 10 });
    expect(audit.map((e) => `${e.type}:${e.result}`)).toEqual(expect.arrayContaining(['totp.enroll:success', 'totp.confirm:failure', 'totp.confirm:success']));
  });

  it('removes the app from the account page while a passkey remains', async () => {
    const { user, cookie } = await userWithTotp('remover');
    // This user has no passkey: the app is the only way in, so it stays.
    const refused = await h.post('/.kanmon/api/account/totp/reset', {}, { cookie });
    expect(refused.status).toBe(409);
    expect(refused.json().error).toBe('last-factor');
    const key = softAuthenticatorFor(h);
    const options = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    expect((await h.post('/.kanmon/api/account/passkeys/verify', { response: key.register(options), name: 'key' }, { cookie })).status).toBe(200);
    expect((await h.post('/.kanmon/api/account/totp/reset', {}, { cookie })).status).toBe(200);
    expect(await h.app.services.totp.isEnabled(user.id)).toBe(false);
  });
});

describe('signing in with an authenticator app code', () => {
  it('offers the page from the login page, keeping the return path', async () => {
    const login = await h.get('/.kanmon/login?return=%2Fform');
    expect(login.text).toContain('<a id="totp-login-link" href="/.kanmon/login/totp?return=%2Fform">');
    expect(login.text).toContain('<a id="recovery-login-link" href="/.kanmon/login/recovery">');
    const page = await h.get('/.kanmon/login/totp?return=%2Fform');
    expect(page.status).toBe(200);
    expect(page.text).toContain('"endpoint":"/.kanmon/api/login/totp"');
    expect(page.text).toContain('"returnTo":"/form"');
    expect(page.text).toContain('autocomplete="one-time-code"');
    // An open redirect is not kept.
    expect((await h.get('/.kanmon/login/totp?return=https%3A%2F%2Fevil.example%2F')).text).toContain('"returnTo":"/"');
  });

  it('signs in with username and code; the session proves otp, and the policy admits it where otp is allowed', async () => {
    const { secret } = await userWithTotp('taro');
    const res = await h.post('/.kanmon/api/login/totp', { username: 'Taro', code: await appCode(secret, 1), returnTo: '/form' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ redirect: '/form' });
    expect(await sessionMethods(res)).toEqual(['otp']);
    const cookie = sessionCookieFrom(res)!;
    // factors [["passkey"],["otp"]]: allowed.
    expect((await h.get('/', { cookie })).status).toBe(200);
    // factors [["passkey"]]: step-up, with the session kept.
    const strict = await h.get('/headers', { cookie, headers: { accept: 'text/html' } });
    expect(strict.status).toBe(403);
    expect(strict.text).toContain('id="step-up-sign-in" class="button primary" href="/.kanmon/login?return=%2Fheaders"');
    expect(strict.text).not.toContain('id="step-up-totp"');
    expect((await h.get('/.kanmon/api/account/totp', { cookie })).status).toBe(200);
  });

  it('offers the authenticator app on the step-up page of a route that takes it', async () => {
    const res = await h.get('/form', { cookie: await h.sessionCookie(admin, ['recovery']), headers: { accept: 'text/html' } });
    expect(res.status).toBe(403);
    expect(res.text).toContain('id="step-up-totp" class="button" href="/.kanmon/login/totp?return=%2Fform"');
  });

  it('refuses the same code twice (replay), for the same user', async () => {
    const { secret } = await userWithTotp('replayer');
    const c = await appCode(secret, 1);
    expect((await h.post('/.kanmon/api/login/totp', { username: 'replayer', code: c })).status).toBe(200);
    const again = await h.post('/.kanmon/api/login/totp', { username: 'replayer', code: c });
    expect(again.status).toBe(401);
    expect(again.json().error).toBe('login-failed');
    expect(sessionCookieFrom(again)).toBeUndefined();
    const [last] = await h.app.store.audit.list({ limit: 1 });
    expect(last).toMatchObject({ type: 'login', result: 'failure', method: 'otp', reason: 'replayed-code', username: 'replayer' });
  });

  it("refuses one user's code for another user", async () => {
    const a = await userWithTotp('ichiro');
    await userWithTotp('jiro');
    const res = await h.post('/.kanmon/api/login/totp', { username: 'jiro', code: await appCode(a.secret, 1) });
    expect(res.status).toBe(401);
    // Ichiro's code is still his to use.
    expect((await h.post('/.kanmon/api/login/totp', { username: 'ichiro', code: await appCode(a.secret, 1) })).status).toBe(200);
  });

  it('steps up a passkey session: the new session carries both methods and has a new id', async () => {
    const secret = await enrollTotp(adminCookie);
    const res = await h.post('/.kanmon/api/login/totp', { username: 'admin', code: await appCode(secret, 1) }, { cookie: adminCookie });
    expect(res.status).toBe(200);
    // The administrator's passkey is device-bound (BE = 0), so its evidence and RFC 8176 'hwk' carry over too.
    expect(await sessionMethods(res)).toEqual(['passkey', 'otp', 'hwk']);
    const fresh = sessionCookieFrom(res)!;
    expect(fresh).not.toBe(adminCookie);
    h.app.services.sessions.clearCache();
    expect(await h.app.store.sessions.get(sessionIdFromToken(adminCookie.split('=')[1]!))).toBeUndefined();
    expect((await h.get('/headers', { cookie: fresh })).status).toBe(200);
    adminCookie = fresh;
  });

  it('does not carry another user’s methods into the new session', async () => {
    const { secret } = await userWithTotp('hanako');
    const res = await h.post('/.kanmon/api/login/totp', { username: 'hanako', code: await appCode(secret, 1) }, { cookie: await h.sessionCookie(admin) });
    expect(res.status).toBe(200);
    expect(await sessionMethods(res)).toEqual(['otp']);
  });
});

describe('both languages', () => {
  it('serves the setup and sign-in pages in Japanese from Accept-Language', async () => {
    const ja = { headers: { 'accept-language': 'ja-JP,ja;q=0.9' } };
    const login = await h.get('/.kanmon/login/totp', ja);
    expect(login.text).toContain('<html lang="ja">');
    expect(login.text).toContain('<h1>認証アプリでサインイン</h1>');
    expect((await h.get('/.kanmon/login/recovery', ja)).text).toContain('<h1>リカバリーコードでサインイン</h1>');
    const user = await h.app.services.users.addUser({ username: 'nihongo' });
    const cookie = await h.sessionCookie(user);
    await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie });
    const setup = await h.get('/.kanmon/account/totp', { cookie, ...ja });
    expect(setup.text).toContain('<h1>認証アプリの設定</h1>');
    expect(setup.text).toContain('時間ベースのアカウントを追加して次のキーを入力してください');
    const failed = await h.post('/.kanmon/api/login/totp', { username: 'nihongo', code: '000000' }, ja);
    expect(failed.json().message).toBe('ユーザー名またはコードが正しくないか、そのコードはすでに使われています。もう一度お試しください。');
  });
});

describe('unknown and known users are treated alike', () => {
  it('gives the same status and body, after the same verification work', async () => {
    await userWithTotp('known');
    await h.app.services.users.addUser({ username: 'no-app' });
    const verify = vi.mocked(otplib.verify);
    const attempt = async (username: string) => {
      const before = verify.mock.calls.length;
      const res = await h.post('/.kanmon/api/login/totp', { username, code: '000000' });
      const calls = verify.mock.calls.slice(before).map(([o]) => ({ tolerance: o.epochTolerance, digits: o.digits, period: o.period, bytes: (o.secret as Uint8Array).length }));
      return { status: res.status, body: withoutRequestId(res), calls, cookie: sessionCookieFrom(res) };
    };
    const known = await attempt('known');
    const unknown = await attempt('nobody-here');
    const unenrolled = await attempt('no-app');
    const invalidName = await attempt('Not A Valid Name!');
    expect(known.status).toBe(401);
    expect(known.body).toEqual({ error: 'login-failed', message: 'The username or code is not correct, or the code was already used. Please try again.' });
    expect(known.calls).toEqual([{ tolerance: 30, digits: 6, period: 30, bytes: 20 }]);
    for (const other of [unknown, unenrolled, invalidName]) {
      expect(other).toEqual(known);
    }
    const failures = (await h.app.store.audit.list({ limit: 4 })).map((e) => e.reason).sort();
    // Only the audit log tells the cases apart.
    expect(failures).toEqual(['not-enrolled', 'unknown-user', 'unknown-user', 'wrong-code']);
  });
});

describe('hostile input', () => {
  const endpoints = ['/.kanmon/api/login/totp', '/.kanmon/api/account/totp/enroll', '/.kanmon/api/account/totp/confirm', '/.kanmon/api/account/totp/reset'];

  it.each(endpoints)('%s refuses a cross-site POST, and one without Origin', async (path) => {
    const evil = await h.post(path, { username: 'admin', code: '123456' }, { cookie: adminCookie, origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(evil.json().error).toBe('cross-site');
    const sameSiteOtherOrigin = await h.post(path, {}, { cookie: adminCookie, headers: { 'sec-fetch-site': 'same-site' } });
    expect(sameSiteOtherOrigin.status).toBe(403);
    expect((await h.post(path, {}, { cookie: adminCookie, origin: null })).status).toBe(403);
  });

  it.each(endpoints)('%s answers malformed JSON, a JSON array and an oversized body with a 4xx', async (path) => {
    const bad = await h.post(path, undefined, { cookie: adminCookie, raw: '{"username": "admin", "code": ' });
    expect(bad.status).toBe(400);
    const array = await h.post(path, undefined, { cookie: adminCookie, raw: '["admin","123456"]' });
    expect(array.status).toBe(400);
    const huge = await h.post(path, { username: 'admin', code: '1'.repeat(70_000) }, { cookie: adminCookie });
    expect(huge.status).toBe(413);
    const plain = await h.post(path, undefined, { cookie: adminCookie, raw: 'code=123456', contentType: 'text/plain' });
    expect(plain.status).toBe(415);
  });

  it.each(['/.kanmon/api/account/totp/enroll', '/.kanmon/api/account/totp/confirm', '/.kanmon/api/account/totp/reset'])(
    '%s needs a session',
    async (path) => {
      expect((await h.post(path, { code: '123456' })).status).toBe(401);
      expect((await h.post(path, { code: '123456' }, { cookie: '__Host-kanmon-session=forged' })).status).toBe(401);
    },
  );

  it('answers wrong types and malformed codes at sign-in with the generic 401', async () => {
    for (const body of [
      { username: 'known', code: 123456 },
      { username: 'known', code: ['123456'] },
      { username: 'known', code: { $gt: '' } },
      { username: 'known', code: '12345' },
      { username: 'known', code: '1234567' },
      { username: 'known', code: '１２３４５６' },
      { username: 'known', code: 'abcdef' },
      { username: 'known', code: '9'.repeat(60_000) },
      { username: ['known'], code: '123456' },
      { username: { $ne: null }, code: '123456' },
      { username: 'x'.repeat(60_000), code: '123456' },
      {},
    ]) {
      const res = await h.post('/.kanmon/api/login/totp', body);
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(401);
      expect(res.json().error).toBe('login-failed');
    }
  });

  it('answers wrong types and malformed codes at confirmation with a 400', async () => {
    const user = await h.app.services.users.addUser({ username: 'typist' });
    const cookie = await h.sessionCookie(user);
    await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie });
    for (const body of [{ code: 123456 }, { code: null }, { code: 'abcdef' }, { code: '1'.repeat(60_000) }, {}]) {
      expect((await h.post('/.kanmon/api/account/totp/confirm', body, { cookie })).status).toBe(400);
    }
    expect(await h.app.services.totp.isEnabled(user.id)).toBe(false);
  });

  it('refuses confirmation when nothing was started', async () => {
    const user = await h.app.services.users.addUser({ username: 'starter' });
    expect((await h.post('/.kanmon/api/account/totp/confirm', { code: '123456' }, { cookie: await h.sessionCookie(user) })).status).toBe(400);
  });
});

describe('the last passkey and the administrator', () => {
  it('lets the last passkey go once the authenticator app is confirmed', async () => {
    const user = await h.app.services.users.addUser({ username: 'lastkey' });
    const cookie = await h.sessionCookie(user);
    const key = softAuthenticatorFor(h);
    const options = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    await h.post('/.kanmon/api/account/passkeys/verify', { response: key.register(options), name: 'only key' }, { cookie });
    const [cred] = await h.app.store.credentials.listByUser(user.id);
    expect((await h.post('/.kanmon/api/account/passkeys/delete', { id: cred!.id }, { cookie })).status).toBe(409);
    await enrollTotp(cookie);
    expect((await h.post('/.kanmon/api/account/passkeys/delete', { id: cred!.id }, { cookie })).status).toBe(200);
    expect(await h.app.store.credentials.listByUser(user.id)).toEqual([]);
  });

  it('`kanmon user totp reset` removes the app, audited, and says what happened', async () => {
    const { user, secret } = await userWithTotp('forgetful');
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l) };
    expect(await runCommand(['user', 'totp', 'reset', 'forgetful'], h.app.services, h.app.config, io)).toBe(0);
    expect(lines).toEqual(['removed the authenticator app of forgetful; they can set one up again on the account page']);
    expect((await h.post('/.kanmon/api/login/totp', { username: 'forgetful', code: await appCode(secret, 1) })).status).toBe(401);
    expect(await runCommand(['user', 'totp', 'reset', 'forgetful'], h.app.services, h.app.config, io)).toBe(0);
    expect(lines[1]).toBe('forgetful had no authenticator app; nothing to remove');
    const [event] = await h.app.store.audit.list({ userId: user.id, limit: 1 });
    expect(event).toMatchObject({ type: 'totp.reset', result: 'success', actor: 'cli', ip: 'cli' });
    await expect(runCommand(['user', 'totp', 'rotate', 'forgetful'], h.app.services, h.app.config, io)).rejects.toThrow(/user totp reset <name>/);
    await expect(runCommand(['user', 'totp', 'reset', 'nobody'], h.app.services, h.app.config, io)).rejects.toThrow(/no user named/);
  });
});
