/**
 * Recovery-code endpoints against a real node: generating a set on the account page (shown
 * once), signing in with a code (audited, notified, and sent on to register a new passkey),
 * the CLI reset, and hostile input for every endpoint.
 */
import { scrypt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCommand } from '../../../runtime/cli/commands.js';
import type { Notification } from '../../../runtime/notify/notifier.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import type { User } from '../../../runtime/store/types.js';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor, type HttpAnswer } from '../../support/kanmon-harness.js';
import { recordNotifications } from '../../support/notifications.js';

// Counts scrypt runs, so the unknown-user path can be compared with the known one.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, scrypt: vi.fn(actual.scrypt) };
});

let h: KanmonHarness;
let adminCookie: string;
let notifications: Notification[];

async function userWithCodes(username: string): Promise<{ user: User; cookie: string; codes: string[] }> {
  const user = await h.app.services.users.addUser({ username });
  const cookie = await h.sessionCookie(user);
  const res = await h.post('/.kanmon/api/account/recovery-codes/generate', {}, { cookie });
  expect(res.status).toBe(200);
  return { user, cookie, codes: res.json().codes };
}

function withoutRequestId(res: HttpAnswer): unknown {
  const { requestId: _ignored, ...rest } = res.json<Record<string, unknown>>();
  return rest;
}

beforeAll(async () => {
  h = await KanmonHarness.start({
    routes: [{ id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } }],
  });
  // Listen to what administrators are told, next to the configured (log) notifier.
  notifications = recordNotifications(h.app);
  ({ cookie: adminCookie } = await h.enrollAdmin(softAuthenticatorFor(h)));
});
afterAll(async () => h?.close());

describe('recovery codes on the account page', () => {
  it('generates ten codes, shown only in the answer to the request that made them', async () => {
    const { cookie, codes } = await userWithCodes('keeper');
    expect(codes).toHaveLength(10);
    for (const c of codes) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
    const status = await h.get('/.kanmon/api/account/recovery-codes', { cookie });
    expect(status.json()).toMatchObject({ exists: true, total: 10, unused: 10 });
    expect(status.text).not.toContain(codes[0]!);
    const page = await h.get('/.kanmon/account', { cookie });
    expect(page.text).toContain('id="recovery-generate"');
    for (const c of codes) expect(page.text).not.toContain(c);
  });

  it('reports no codes before any were generated', async () => {
    const user = await h.app.services.users.addUser({ username: 'fresh' });
    expect((await h.get('/.kanmon/api/account/recovery-codes', { cookie: await h.sessionCookie(user) })).json()).toEqual({ exists: false, total: 0, unused: 0 });
  });

  it('regenerating invalidates the old set', async () => {
    const { cookie, codes: old } = await userWithCodes('regenerator');
    const fresh = (await h.post('/.kanmon/api/account/recovery-codes/generate', {}, { cookie })).json().codes as string[];
    expect(fresh.some((c) => old.includes(c))).toBe(false);
    expect((await h.post('/.kanmon/api/login/recovery', { username: 'regenerator', code: old[0] })).status).toBe(401);
    expect((await h.post('/.kanmon/api/login/recovery', { username: 'regenerator', code: fresh[0] })).status).toBe(200);
  });
});

describe('signing in with a recovery code', () => {
  it('is offered from the login page and has its own page', async () => {
    const page = await h.get('/.kanmon/login/recovery');
    expect(page.status).toBe(200);
    expect(page.text).toContain('"endpoint":"/.kanmon/api/login/recovery"');
    expect(page.text).toContain('id="code-login-form" class="card" data-kind="recovery"');
  });

  it('signs in with only the recovery factor, audits and notifies, and leads to registering a passkey', async () => {
    const { user, codes } = await userWithCodes('lostphone');
    const before = notifications.length;
    const res = await h.post('/.kanmon/api/login/recovery', { username: 'lostphone', code: codes[4]!.toUpperCase() });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ redirect: '/.kanmon/account?step=add-passkey', remaining: 9 });
    const cookie = sessionCookieFrom(res)!;
    const session = await h.app.store.sessions.get(sessionIdFromToken(cookie.split('=')[1]!));
    expect(session?.authMethods).toEqual(['recovery']);

    const [event] = await h.app.store.audit.list({ userId: user.id, limit: 1 });
    expect(event).toMatchObject({ type: 'login', result: 'success', method: 'recovery', details: { remainingCodes: 9 } });
    const told = notifications.slice(before);
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ event: 'login.recovery', severity: 'warning', details: { username: 'lostphone', remainingCodes: 9 } });
    expect(told[0]!.subject).toMatch(/^[\x20-\x7e]+$/); // ASCII, for e-mail subjects

    // The session reaches the account page (to add a passkey), not the application.
    const account = await h.get('/.kanmon/account?step=add-passkey', { cookie });
    expect(account.status).toBe(200);
    expect(account.text).toContain('id="add-passkey-step"');
    expect((await h.get('/', { cookie, headers: { accept: 'text/html' } })).status).toBe(403);

    // Registering the new passkey works from this session, and that passkey then signs in.
    const key = softAuthenticatorFor(h);
    const options = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    expect((await h.post('/.kanmon/api/account/passkeys/verify', { response: key.register(options), name: 'new phone' }, { cookie })).status).toBe(200);
    const login = await h.post('/.kanmon/api/login/verify', { response: key.authenticate((await h.post('/.kanmon/api/login/options', {})).json()) });
    expect(login.status).toBe(200);
    expect((await h.get('/', { cookie: sessionCookieFrom(login)! })).status).toBe(200);
  });

  it('refuses a code used twice', async () => {
    const { codes } = await userWithCodes('twice');
    expect((await h.post('/.kanmon/api/login/recovery', { username: 'twice', code: codes[0] })).status).toBe(200);
    const again = await h.post('/.kanmon/api/login/recovery', { username: 'twice', code: codes[0] });
    expect(again.status).toBe(401);
    expect(again.json().error).toBe('login-failed');
    const [event] = await h.app.store.audit.list({ limit: 1 });
    expect(event).toMatchObject({ type: 'login', result: 'failure', method: 'recovery', reason: 'used-code' });
  });

  it("refuses another user's code", async () => {
    const a = await userWithCodes('owner');
    await userWithCodes('thief');
    expect((await h.post('/.kanmon/api/login/recovery', { username: 'thief', code: a.codes[0] })).status).toBe(401);
  });

  it('refuses a disabled user with the same answer', async () => {
    const { codes } = await userWithCodes('leaver');
    await h.app.services.users.setDisabled('leaver', true);
    const res = await h.post('/.kanmon/api/login/recovery', { username: 'leaver', code: codes[0] });
    expect(res.status).toBe(401);
    expect(res.json().error).toBe('login-failed');
  });
});

describe('unknown and known users are treated alike', () => {
  it('gives the same status and body, after the same scrypt work', async () => {
    await userWithCodes('someone');
    await h.app.services.users.addUser({ username: 'codeless' });
    const runs = vi.mocked(scrypt);
    const attempt = async (username: string) => {
      const before = runs.mock.calls.length;
      const res = await h.post('/.kanmon/api/login/recovery', { username, code: 'zzzzz-zzzzz' });
      const params = runs.mock.calls.slice(before).map((c) => JSON.stringify(c[3]));
      return { status: res.status, body: withoutRequestId(res), runs: params.length, params: [...new Set(params)], cookie: sessionCookieFrom(res) };
    };
    const known = await attempt('someone');
    expect(known.status).toBe(401);
    expect(known.runs).toBe(10);
    expect(known.params).toHaveLength(1);
    expect(await attempt('nobody-at-all')).toEqual(known);
    expect(await attempt('codeless')).toEqual(known);
  });
});

describe('hostile input', () => {
  const endpoints = ['/.kanmon/api/login/recovery', '/.kanmon/api/account/recovery-codes/generate'];

  it.each(endpoints)('%s refuses a cross-site POST, and one without Origin', async (path) => {
    const evil = await h.post(path, { username: 'admin', code: 'aaaaa-aaaaa' }, { cookie: adminCookie, origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(evil.json().error).toBe('cross-site');
    expect((await h.post(path, {}, { cookie: adminCookie, origin: null })).status).toBe(403);
    expect((await h.post(path, {}, { cookie: adminCookie, headers: { 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
    // Nothing was generated for the administrator by the refused requests.
    expect((await h.get('/.kanmon/api/account/recovery-codes', { cookie: adminCookie })).json().exists).toBe(false);
  });

  it.each(endpoints)('%s answers malformed JSON, a JSON array, an oversized body and the wrong content type with a 4xx', async (path) => {
    expect((await h.post(path, undefined, { cookie: adminCookie, raw: '{"code":' })).status).toBe(400);
    expect((await h.post(path, undefined, { cookie: adminCookie, raw: '[1,2]' })).status).toBe(400);
    expect((await h.post(path, { code: 'a'.repeat(70_000) }, { cookie: adminCookie })).status).toBe(413);
    expect((await h.post(path, undefined, { cookie: adminCookie, raw: 'x', contentType: 'text/plain' })).status).toBe(415);
  });

  it('needs a session to generate codes', async () => {
    expect((await h.post('/.kanmon/api/account/recovery-codes/generate', {})).status).toBe(401);
    expect((await h.get('/.kanmon/api/account/recovery-codes')).status).toBe(401);
  });

  it('answers wrong types and malformed codes at sign-in with the generic 401', async () => {
    await userWithCodes('target');
    for (const body of [
      { username: 'target', code: 1234567890 },
      { username: 'target', code: ['aaaaa-aaaaa'] },
      { username: 'target', code: null },
      { username: 'target', code: 'aaaaa' },
      { username: 'target', code: 'b'.repeat(60_000) },
      { username: 'target', code: 'ｱｱｱｱｱ-ｱｱｱｱｱ' },
      { username: 7, code: 'aaaaa-aaaaa' },
      { username: 'x'.repeat(60_000), code: 'aaaaa-aaaaa' },
      {},
    ]) {
      const res = await h.post('/.kanmon/api/login/recovery', body);
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(401);
      expect(res.json().error).toBe('login-failed');
    }
  });
});

describe('the administrator', () => {
  it('`kanmon user recovery-codes reset` deletes the codes, audited, and says what happened', async () => {
    const { user, codes } = await userWithCodes('resetme');
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l) };
    expect(await runCommand(['user', 'recovery-codes', 'reset', 'resetme'], h.app.services, h.app.config, io)).toBe(0);
    expect(lines).toEqual(['deleted the recovery codes of resetme; they can generate new ones on the account page']);
    expect((await h.post('/.kanmon/api/login/recovery', { username: 'resetme', code: codes[0] })).status).toBe(401);
    expect(await runCommand(['user', 'recovery-codes', 'reset', 'resetme'], h.app.services, h.app.config, io)).toBe(0);
    expect(lines[1]).toBe('resetme had no recovery codes; nothing to delete');
    const events = await h.app.store.audit.list({ userId: user.id, limit: 5 });
    expect(events.filter((e) => e.type === 'recovery.reset').every((e) => e.actor === 'cli')).toBe(true);
  });
});
