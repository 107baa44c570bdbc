/**
 * Login protection against a real node, over HTTP: guessing beyond the lock is refused even
 * with the right code, the lock covers every factor of the account, the administrator's
 * unlock (the CLI command, through the service) restores access, the lockout is audited,
 * counted and notified once, an address lock stops usernameless passkey sign-in too, and an
 * unknown username is answered and locked exactly like a known one.
 *
 * No assertion here is about time: the delay step is 0, and "alike" means the same statuses,
 * bodies and lock behaviour, step by step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../../runtime/cli/commands.js';
import type { Notification } from '../../../runtime/notify/notifier.js';
import type { AuditEvent, User } from '../../../runtime/store/types.js';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor, type HttpAnswer } from '../../support/kanmon-harness.js';
import { recordNotifications } from '../../support/notifications.js';
import type { SoftAuthenticator } from '../../support/soft-authenticator.js';
import { appCode, wrongCode } from '../../support/totp-app.js';

const MAX_PER_USER = 3;

function withoutRequestId(res: HttpAnswer): unknown {
  const { requestId: _ignored, ...rest } = res.json<Record<string, unknown>>();
  return rest;
}

async function cli(h: KanmonHarness, ...argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const exit = await runCommand(argv, h.app.services, h.app.config, { out: (l) => lines.push(l) });
  expect(exit).toBe(0);
  return lines;
}

describe('the user lock', () => {
  let h: KanmonHarness;
  let notifications: Notification[];

  /** A user with a confirmed authenticator app, recovery codes and a passkey; signed out. */
  async function enrolledUser(username: string): Promise<{ user: User; secret: string; codes: string[]; key: SoftAuthenticator }> {
    const user = await h.app.services.users.addUser({ username });
    const cookie = await h.sessionCookie(user);
    expect((await h.post('/.kanmon/api/account/totp/enroll', {}, { cookie })).status).toBe(200);
    const page = await h.get('/.kanmon/account/totp', { cookie });
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(page.text)![1]!.replace(/ /g, '');
    expect((await h.post('/.kanmon/api/account/totp/confirm', { code: await appCode(secret) }, { cookie })).status).toBe(200);
    const codes = (await h.post('/.kanmon/api/account/recovery-codes/generate', {}, { cookie })).json().codes as string[];
    const key = softAuthenticatorFor(h);
    const options = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    expect((await h.post('/.kanmon/api/account/passkeys/verify', { response: key.register(options), name: 'laptop' }, { cookie })).status).toBe(200);
    return { user, secret, codes, key };
  }

  async function events(type: string, userId?: string): Promise<AuditEvent[]> {
    return (await h.app.store.audit.list({ limit: 200, ...(userId ? { userId } : {}) })).filter((e) => e.type === type);
  }

  beforeAll(async () => {
    h = await KanmonHarness.start({
      routes: [{ id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } }],
      // The address limit stays out of the way here: every request comes from 127.0.0.1.
      loginProtection: { maxFailuresPerUser: MAX_PER_USER, maxFailuresPerAddress: 1000, delayStepMs: 0 },
    });
    notifications = recordNotifications(h.app);
  });
  afterAll(async () => h?.close());

  it('refuses guesses beyond the lock even with the right code, with the answer a wrong code gets', async () => {
    const { user, secret } = await enrolledUser('guessed');
    const wrong = await wrongCode(secret);
    const failuresBefore = h.app.metrics.read('loginFailure', { Method: 'otp' });
    const answers: HttpAnswer[] = [];
    for (let i = 0; i < MAX_PER_USER; i++) answers.push(await h.post('/.kanmon/api/login/totp', { username: 'guessed', code: wrong }));
    const right = await h.post('/.kanmon/api/login/totp', { username: 'guessed', code: await appCode(secret, 1) });
    for (const res of [...answers, right]) {
      expect(res.status).toBe(401);
      expect(withoutRequestId(res)).toEqual(withoutRequestId(answers[0]!));
      expect(sessionCookieFrom(res)).toBeUndefined();
    }
    expect(withoutRequestId(right)).toEqual({ error: 'login-failed', message: 'The username or code is not correct, or the code was already used. Please try again.' });

    // The audit log tells what the client is not told; the metric keeps the method.
    const logins = (await events('login', user.id)).filter((e) => e.result === 'failure');
    expect(logins.map((e) => e.reason)).toEqual(['locked', 'wrong-code', 'wrong-code', 'wrong-code']);
    expect(logins.every((e) => e.method === 'otp')).toBe(true);
    expect(h.app.metrics.read('loginFailure', { Method: 'otp' }) - failuresBefore).toBe(MAX_PER_USER + 1);
  });

  it('audits and notifies a lockout once, however many attempts follow', async () => {
    const { user, secret } = await enrolledUser('noisy');
    const before = notifications.length;
    const wrong = await wrongCode(secret);
    for (let i = 0; i < MAX_PER_USER + 4; i++) expect((await h.post('/.kanmon/api/login/totp', { username: 'noisy', code: wrong })).status).toBe(401);
    const lockouts = await events('login.lockout', user.id);
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]).toMatchObject({ result: 'failure', username: 'noisy', ip: '127.0.0.1', details: { key: 'user', failures: MAX_PER_USER, knownUser: true } });
    const told = notifications.slice(before).filter((n) => n.event === 'login.lockout');
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ severity: 'warning', details: { key: 'user', username: 'noisy', until: lockouts[0]!.details!.until } });
    expect(told[0]!.subject).toBe('Kanmon: sign-in locked for user noisy');
    expect(told[0]!.subject).toMatch(/^[\x20-\x7e]+$/); // ASCII, for e-mail subjects
    expect(told[0]!.message).toContain('kanmon user unlock noisy');
  });

  it('locks the account, not a factor: recovery codes and the passkey are refused too', async () => {
    const { user, secret, codes, key } = await enrolledUser('allfactors');
    const wrong = await wrongCode(secret);
    for (let i = 0; i < MAX_PER_USER; i++) await h.post('/.kanmon/api/login/totp', { username: 'allfactors', code: wrong });

    const recovery = await h.post('/.kanmon/api/login/recovery', { username: 'allfactors', code: codes[0] });
    expect(recovery.status).toBe(401);
    expect(recovery.json().error).toBe('login-failed');

    const passkey = await h.post('/.kanmon/api/login/verify', { response: key.authenticate((await h.post('/.kanmon/api/login/options', {})).json()) });
    expect(passkey.status).toBe(400);
    expect(withoutRequestId(passkey)).toEqual({ error: 'ceremony-failed', message: 'That did not work. Please try again.' });
    expect(sessionCookieFrom(passkey)).toBeUndefined();
    const refused = (await events('login', user.id)).filter((e) => e.reason === 'locked').map((e) => e.method);
    expect(refused.sort()).toEqual(['passkey', 'recovery']);

    // Neither the recovery code nor the passkey was used up by the refusals: after an unlock, both work.
    await cli(h, 'user', 'unlock', 'allfactors');
    expect((await h.post('/.kanmon/api/login/recovery', { username: 'allfactors', code: codes[0] })).status).toBe(200);
    expect((await h.post('/.kanmon/api/login/verify', { response: key.authenticate((await h.post('/.kanmon/api/login/options', {})).json()) })).status).toBe(200);
  });

  it('`kanmon user unlock` restores access at once; `user list` shows the lock until then', async () => {
    const { user, secret } = await enrolledUser('unlockme');
    const wrong = await wrongCode(secret);
    for (let i = 0; i < MAX_PER_USER; i++) await h.post('/.kanmon/api/login/totp', { username: 'unlockme', code: wrong });
    const right = await appCode(secret, 1);
    expect((await h.post('/.kanmon/api/login/totp', { username: 'unlockme', code: right })).status).toBe(401);

    const listed = await cli(h, 'user', 'list');
    expect(listed[0]).toMatch(/^USERNAME\s+DISPLAY NAME\s+GROUPS\s+ADMIN\s+STATUS\s+CREATED$/);
    expect(listed.find((l) => l.startsWith('unlockme '))).toMatch(/ LOCKED until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /);
    expect(listed.find((l) => l.startsWith('guessed '))).toMatch(/ LOCKED until /);
    expect(listed.find((l) => l.startsWith('allfactors '))).toMatch(/ active /);
    const json = JSON.parse((await cli(h, 'user', 'list', '--json')).join('\n')) as Array<{ username: string; lockedUntil?: number }>;
    expect(json.find((u) => u.username === 'unlockme')?.lockedUntil).toBeGreaterThan(0);
    expect(json.find((u) => u.username === 'allfactors')).not.toHaveProperty('lockedUntil');

    expect(await cli(h, 'user', 'unlock', 'unlockme')).toEqual(['unlocked unlockme; their failed attempts are forgotten on every node']);
    // The right code refused while locked was never verified, so its step is still unclaimed.
    const res = await h.post('/.kanmon/api/login/totp', { username: 'unlockme', code: right });
    expect(res.status).toBe(200);
    expect(sessionCookieFrom(res)).toBeDefined();
    expect((await cli(h, 'user', 'list')).find((l) => l.startsWith('unlockme '))).toMatch(/ active /);

    const [unlock] = await events('user.unlock', user.id);
    expect(unlock).toMatchObject({ result: 'success', actor: 'cli', username: 'unlockme', ip: 'cli', details: { wasLocked: true } });
    expect(await cli(h, 'user', 'unlock', 'unlockme')).toEqual(['unlockme was not locked; their failed attempts are forgotten']);
    await expect(runCommand(['user', 'unlock', 'nobody-by-that-name'], h.app.services, h.app.config, { out: () => undefined })).rejects.toThrow(/no user named/);
    await expect(runCommand(['user', 'unlock'], h.app.services, h.app.config, { out: () => undefined })).rejects.toThrow(/exactly one user name/);
  });

  it('a success before the limit clears the count', async () => {
    const { secret } = await enrolledUser('typo');
    const wrong = await wrongCode(secret);
    for (let i = 0; i < MAX_PER_USER - 1; i++) await h.post('/.kanmon/api/login/totp', { username: 'typo', code: wrong });
    expect((await h.post('/.kanmon/api/login/totp', { username: 'typo', code: await appCode(secret, 1) })).status).toBe(200);
    for (let i = 0; i < MAX_PER_USER - 1; i++) await h.post('/.kanmon/api/login/totp', { username: 'typo', code: wrong });
    expect(await h.app.services.loginGuard.lockedUntil('typo')).toBeUndefined();
  });

  it('treats an unknown username like a known one: the same answers, step by step, and the same lock', async () => {
    const { secret } = await enrolledUser('present');
    await h.app.services.users.addUser({ username: 'noapp' });
    const wrong = await wrongCode(secret);
    const sequence = async (username: string, endpoint: string, codeText: string) => {
      const seen: unknown[] = [];
      for (let i = 0; i < MAX_PER_USER + 2; i++) {
        const res = await h.post(endpoint, { username, code: codeText });
        seen.push({ status: res.status, body: withoutRequestId(res), cookie: sessionCookieFrom(res) ?? null });
      }
      return seen;
    };
    const known = await sequence('present', '/.kanmon/api/login/totp', wrong);
    expect(await sequence('absent', '/.kanmon/api/login/totp', wrong)).toEqual(known);
    expect(await sequence('noapp', '/.kanmon/api/login/totp', wrong)).toEqual(known);
    const knownLock = await h.app.services.loginGuard.lockedUntil('present');
    expect(knownLock).toBeDefined();
    expect(await h.app.services.loginGuard.lockedUntil('absent')).toBeDefined();
    expect(await h.app.services.loginGuard.lockedUntil('noapp')).toBeDefined();

    // Recovery codes likewise.
    await enrolledUser('keeper');
    const knownRecovery = await sequence('keeper', '/.kanmon/api/login/recovery', 'zzzzz-zzzzz');
    expect(await sequence('absent2', '/.kanmon/api/login/recovery', 'zzzzz-zzzzz')).toEqual(knownRecovery);

    // Only the audit log tells them apart.
    const lockouts = (await h.app.store.audit.list({ limit: 200 })).filter((e) => e.type === 'login.lockout' && ['present', 'absent'].includes(e.username!));
    expect(lockouts.map((e) => [e.username, e.details?.knownUser]).sort()).toEqual([
      ['absent', false],
      ['present', true],
    ]);
  });
});

describe('the address lock', () => {
  let h: KanmonHarness;
  let notifications: Notification[];

  beforeAll(async () => {
    h = await KanmonHarness.start({ loginProtection: { maxFailuresPerUser: 100, maxFailuresPerAddress: 3, delayStepMs: 0 } });
    notifications = recordNotifications(h.app);
  });
  afterAll(async () => h?.close());

  it('stops usernameless passkey sign-in from an address that failed too often, and is reported once', async () => {
    const key = softAuthenticatorFor(h);
    const { user } = await h.enrollAdmin(key, 'admin');

    // A passkey nobody registered: the credential names no user, so only the address counts.
    const stranger = softAuthenticatorFor(h);
    stranger.register({ rp: { id: 'localhost', name: 'x' }, user: { id: 'AAAA', name: 'x', displayName: 'x' }, challenge: 'AAAA', pubKeyCredParams: [{ alg: -7, type: 'public-key' }] });
    const failures: HttpAnswer[] = [];
    for (let i = 0; i < 3; i++) {
      failures.push(await h.post('/.kanmon/api/login/verify', { response: stranger.authenticate((await h.post('/.kanmon/api/login/options', {})).json()) }));
    }
    expect(await h.app.services.loginGuard.lockedUsers()).toEqual([]);

    const refused = await h.post('/.kanmon/api/login/verify', { response: key.authenticate((await h.post('/.kanmon/api/login/options', {})).json()) });
    for (const res of [...failures, refused]) {
      expect(res.status).toBe(400);
      expect(withoutRequestId(res)).toEqual({ error: 'ceremony-failed', message: 'That did not work. Please try again.' });
    }
    const [last] = await h.app.store.audit.list({ limit: 1 });
    expect(last).toMatchObject({ type: 'login', result: 'failure', method: 'passkey', reason: 'locked', userId: user.id });

    const lockouts = (await h.app.store.audit.list({ limit: 50 })).filter((e) => e.type === 'login.lockout');
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]).toMatchObject({ ip: '127.0.0.1', details: { key: 'address', address: '127.0.0.1', failures: 3 } });
    const told = notifications.filter((n) => n.event === 'login.lockout');
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ severity: 'warning', subject: 'Kanmon: sign-in locked for address 127.0.0.1', details: { key: 'address', address: '127.0.0.1' } });

    // A code sign-in from the same address is refused as well, unverified.
    const totp = await h.post('/.kanmon/api/login/totp', { username: 'admin', code: '123456' });
    expect(totp.status).toBe(401);
    expect(totp.json().error).toBe('login-failed');
  });
});
