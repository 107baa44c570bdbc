import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as otplib from 'otplib';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { openLocalSecretBox } from '../../../runtime/secrets/index.js';
import type { SecretBox } from '../../../runtime/secrets/secret-box.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { ServiceError } from '../../../runtime/services/errors.js';
import {
  groupSecret,
  parseTotpCode,
  TOTP_ENROLLMENT_TTL_MS,
  TotpService,
  totpStepAt,
} from '../../../runtime/services/totp.js';
import { UserService } from '../../../runtime/services/users.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store, User } from '../../../runtime/store/types.js';

// Counts otplib verifications, so tests can compare the work done on different paths.
vi.mock('otplib', async (importOriginal) => {
  const actual = await importOriginal<typeof import('otplib')>();
  return { ...actual, verify: vi.fn(actual.verify) };
});

const ctx = { ip: '192.0.2.7', userAgent: 'unit' };
// Mid-step, so that "one step earlier/later" is unambiguous: 1_800_000_000 s is a step boundary plus 0 s.
let clock = 1_800_000_015_000;
const now = () => clock;

let dir: string;
let store: Store;
let secrets: SecretBox;
let opens = 0;
let totp: TotpService;
let users: UserService;
let alice: User;
let bob: User;
let carol: User;
let aliceSecret: string;
let bobSecret: string;

/** The code an app holding `secret` shows `steps` steps away from the clock. */
function codeAt(secret: string, steps = 0): Promise<string> {
  return otplib.generate({ secret, epoch: Math.floor(clock / 1000) + steps * 30 });
}

async function enroll(user: User): Promise<string> {
  await totp.beginEnrollment(user, ctx);
  const view = (await totp.pendingEnrollment(user))!;
  const secret = view.secretText.replace(/ /g, '');
  await totp.confirmEnrollment(user, await codeAt(secret), ctx);
  // The confirming code's step is now claimed; tests start from the next step.
  clock += 30_000;
  return secret;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-totp-'));
  store = await openSqliteStore({ file: join(dir, 'k.db') });
  const box = await openLocalSecretBox(dir);
  secrets = {
    seal: (p, c) => box.seal(p, c),
    open: (s, c) => {
      opens++;
      return box.open(s, c);
    },
  };
  const audit = new AuditLog(store, pino({ level: 'silent' }), now);
  users = new UserService(store, audit, now);
  totp = new TotpService({ store, secrets, audit, config: parseConfig({ webauthn: { rpName: 'Example Co' } }).totp, now });
  alice = await users.addUser({ username: 'alice' });
  bob = await users.addUser({ username: 'bob' });
  carol = await users.addUser({ username: 'carol' });
  aliceSecret = await enroll(alice);
  bobSecret = await enroll(bob);
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  // A fresh step for every test: no claim left over from the previous one.
  clock += 10 * 30_000;
});

describe('parseTotpCode', () => {
  it.each(['123456', '000000', '123 456', ' 123456 '])('accepts %j', (code) => {
    expect(parseTotpCode(code)).toMatch(/^\d{6}$/);
  });

  it.each([
    ['letters', 'abcdef'],
    ['digits and a letter', '12345a'],
    ['5 digits', '12345'],
    ['7 digits', '1234567'],
    ['full-width digits', '１２３４５６'],
    ['Arabic-Indic digits', '١٢٣٤٥٦'],
    ['Devanagari digits', '१२३४५६'],
    ['a hyphen', '123-456'],
    ['a newline', '123456\n'],
    ['a tab', '123\t456'],
    ['empty', ''],
    ['100 000 digits', '1'.repeat(100_000)],
    ['six digits padded past the limit', `${' '.repeat(40)}123456`],
  ])('refuses %s', (_what, code) => {
    expect(parseTotpCode(code)).toBeUndefined();
  });

  it.each([123456, null, undefined, ['123456'], { code: '123456' }, true])('refuses the non-string %j', (value) => {
    expect(parseTotpCode(value)).toBeUndefined();
  });
});

describe('enrollment', () => {
  it('shows a QR code and the secret in groups of four, with issuer and label for the apps', async () => {
    await totp.beginEnrollment(carol, ctx);
    const view = (await totp.pendingEnrollment(carol))!;
    expect(view.secretText).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/); // 160 bits = 32 Base32 characters
    const uri = new URL(view.uri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/Example Co:carol'); // label issuer:account (Key URI Format)
    expect(uri.searchParams.get('issuer')).toBe('Example Co');
    expect(uri.searchParams.get('secret')).toBe(view.secretText.replace(/ /g, ''));
    expect(view.qrSvg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*viewBox=/);
    expect(view.qrSvg).not.toMatch(/<script|style=|on\w+=/i);
    expect(groupSecret('ABCDEFGHIJ')).toBe('ABCD EFGH IJ');
  });

  it('stores the secret sealed for this user only', async () => {
    const record = (await store.totp.get(carol.id))!;
    const secret = (await totp.pendingEnrollment(carol))!.secretText.replace(/ /g, '');
    expect(record.confirmed).toBe(false);
    expect(record.sealedSecret).not.toContain(secret);
    await expect(secrets.open(record.sealedSecret, `totp:${carol.id}`)).resolves.toHaveLength(20);
    await expect(secrets.open(record.sealedSecret, `totp:${alice.id}`)).rejects.toThrow(/failed authentication/);
  });

  it('does not count until confirmed: an unconfirmed secret signs nobody in', async () => {
    const secret = (await totp.pendingEnrollment(carol))!.secretText.replace(/ /g, '');
    expect(await totp.verifyForLogin(carol.id, await codeAt(secret))).toEqual({ ok: false, reason: 'not-enrolled' });
    expect(await totp.status(carol)).toEqual({ enabled: false, pending: true });
  });

  it('refuses a wrong confirmation code, then confirms with a right one', async () => {
    const secret = (await totp.pendingEnrollment(carol))!.secretText.replace(/ /g, '');
    await expect(totp.confirmEnrollment(carol, await codeAt(secret, 5), ctx)).rejects.toBeInstanceOf(ServiceError);
    await expect(totp.confirmEnrollment(carol, 'abcdef', ctx)).rejects.toBeInstanceOf(ServiceError);
    await totp.confirmEnrollment(carol, await codeAt(secret), ctx);
    expect((await totp.status(carol)).enabled).toBe(true);
    expect(await totp.pendingEnrollment(carol)).toBeUndefined();
    const events = await store.audit.list({ userId: carol.id, limit: 10 });
    expect(events.filter((e) => e.type === 'totp.confirm').map((e) => `${e.result}:${e.reason ?? ''}`).sort()).toEqual([
      'failure:malformed-code',
      'failure:wrong-code',
      'success:',
    ]);
  });

  it('claims the confirming code, so it cannot then be used to sign in', async () => {
    const dave = await users.addUser({ username: 'dave' });
    await totp.beginEnrollment(dave, ctx);
    const secret = (await totp.pendingEnrollment(dave))!.secretText.replace(/ /g, '');
    const code = await codeAt(secret);
    await totp.confirmEnrollment(dave, code, ctx);
    expect(await totp.verifyForLogin(dave.id, code)).toEqual({ ok: false, reason: 'replayed-code' });
  });

  it('never replaces a confirmed secret by starting again', async () => {
    await expect(totp.beginEnrollment(alice, ctx)).rejects.toMatchObject({ code: 'conflict' });
  });

  it('lets a setup expire unconfirmed', async () => {
    const erin = await users.addUser({ username: 'erin' });
    await totp.beginEnrollment(erin, ctx);
    const secret = (await totp.pendingEnrollment(erin))!.secretText.replace(/ /g, '');
    clock += TOTP_ENROLLMENT_TTL_MS;
    expect(await totp.pendingEnrollment(erin)).toBeUndefined();
    expect(await totp.status(erin)).toEqual({ enabled: false, pending: false });
    await expect(totp.confirmEnrollment(erin, await codeAt(secret), ctx)).rejects.toBeInstanceOf(ServiceError);
  });
});

describe('verification at sign-in', () => {
  it('accepts the current code once: the same code again is refused (RFC 6238 §5.2)', async () => {
    const code = await codeAt(aliceSecret);
    expect(await totp.verifyForLogin(alice.id, code)).toEqual({ ok: true, step: totpStepAt(clock) });
    expect(await totp.verifyForLogin(alice.id, code)).toEqual({ ok: false, reason: 'replayed-code' });
    clock += 5_000; // still the same step
    expect(await totp.verifyForLogin(alice.id, code)).toEqual({ ok: false, reason: 'replayed-code' });
  });

  it('refuses a replay at the next step too, while the old code is still inside the window', async () => {
    const code = await codeAt(aliceSecret);
    expect((await totp.verifyForLogin(alice.id, code)).ok).toBe(true);
    clock += 30_000;
    expect(await totp.verifyForLogin(alice.id, code)).toEqual({ ok: false, reason: 'replayed-code' });
  });

  it('accepts exactly one step behind and one step ahead (the default tolerance)', async () => {
    const step = totpStepAt(clock);
    expect(await totp.verifyForLogin(alice.id, await codeAt(aliceSecret, -1))).toEqual({ ok: true, step: step - 1 });
    expect(await totp.verifyForLogin(alice.id, await codeAt(aliceSecret, +1))).toEqual({ ok: true, step: step + 1 });
  });

  it('refuses two steps behind and two steps ahead', async () => {
    expect(await totp.verifyForLogin(alice.id, await codeAt(aliceSecret, -2))).toEqual({ ok: false, reason: 'wrong-code' });
    expect(await totp.verifyForLogin(alice.id, await codeAt(aliceSecret, +2))).toEqual({ ok: false, reason: 'wrong-code' });
  });

  it('places the window edges by step, not by seconds: first and last second of a step', async () => {
    clock = Math.floor(clock / 30_000) * 30_000; // the first millisecond of a step
    const behind = await codeAt(aliceSecret, -1);
    expect((await totp.verifyForLogin(alice.id, behind)).ok).toBe(true);
    clock += 29_999; // the last millisecond of the same step
    const ahead = await codeAt(aliceSecret, +1);
    expect((await totp.verifyForLogin(alice.id, ahead)).ok).toBe(true);
    expect(await totp.verifyForLogin(alice.id, await otplib.generate({ secret: aliceSecret, epoch: Math.floor(clock / 1000) - 60 }))).toEqual({
      ok: false,
      reason: 'wrong-code',
    });
  });

  it('honours a configured tolerance of zero steps', async () => {
    const strict = new TotpService({ store, secrets, audit: new AuditLog(store, pino({ level: 'silent' }), now), config: { issuer: 'X', toleranceSteps: 0 }, now });
    expect(await strict.verifyForLogin(alice.id, await codeAt(aliceSecret, -1))).toEqual({ ok: false, reason: 'wrong-code' });
    expect((await strict.verifyForLogin(alice.id, await codeAt(aliceSecret))).ok).toBe(true);
  });

  it.each([
    ['letters', 'abcdef'],
    ['5 digits', '12345'],
    ['7 digits', '1234567'],
    ['full-width digits', '１２３４５６'],
    ['Arabic-Indic digits', '١٢٣٤٥٦'],
    ['a megabyte of text', 'x'.repeat(1_000_000)],
    ['an empty string', ''],
    ['a number', 123456],
    ['null', null],
    ['an object', { $gt: '' }],
  ])('refuses %s as a code without claiming a step', async (_what, code) => {
      expect(await totp.verifyForLogin(alice.id, code)).toEqual({ ok: false, reason: 'malformed-code' });
      // The current code still works afterwards: nothing was claimed.
      expect((await totp.verifyForLogin(alice.id, await codeAt(aliceSecret))).ok).toBe(true);
  });

  it("refuses another user's code", async () => {
    const bobsCode = await codeAt(bobSecret);
    expect(await totp.verifyForLogin(alice.id, bobsCode)).toEqual({ ok: false, reason: 'wrong-code' });
    // And Bob's code stays usable for Bob: Alice's failed attempt claimed nothing of his.
    expect((await totp.verifyForLogin(bob.id, bobsCode)).ok).toBe(true);
  });

  it('refuses unknown and unenrolled users after the same work as an enrolled one', async () => {
    const verify = vi.mocked(otplib.verify);
    const work = async (userId: string | undefined, code: string) => {
      const [v0, o0] = [verify.mock.calls.length, opens];
      const result = await totp.verifyForLogin(userId, code);
      const calls = verify.mock.calls.slice(v0).map(([options]) => ({
        epochTolerance: options.epochTolerance,
        digits: options.digits,
        period: options.period,
        algorithm: options.algorithm,
        secretBytes: (options.secret as Uint8Array).length,
      }));
      return { result, calls, opens: opens - o0 };
    };
    const known = await work(alice.id, '000000');
    const unknown = await work(undefined, '000000');
    const unenrolled = await work((await users.addUser({ username: 'frank' })).id, '000000');
    const malformed = await work(alice.id, 'abc');
    expect(known.result).toEqual({ ok: false, reason: 'wrong-code' });
    expect(unknown.result).toEqual({ ok: false, reason: 'not-enrolled' });
    expect(unenrolled.result).toEqual({ ok: false, reason: 'not-enrolled' });
    expect(malformed.result).toEqual({ ok: false, reason: 'malformed-code' });
    expect(known.calls).toEqual([{ epochTolerance: 30, digits: 6, period: 30, algorithm: 'sha1', secretBytes: 20 }]);
    for (const other of [unknown, unenrolled, malformed]) {
      expect(other.calls).toEqual(known.calls);
      expect(other.opens).toBe(known.opens);
    }
    expect(known.opens).toBe(1);
  });
});

describe('reset', () => {
  it('refuses to remove the only way in from the account page, but an administrator may', async () => {
    // Alice has no passkey in this test store: TOTP is her only factor.
    await expect(totp.reset(alice, { context: ctx, keepLastFactor: true })).rejects.toMatchObject({ code: 'last-factor' });
    expect(await totp.isEnabled(alice.id)).toBe(true);
    clock += 1_000; // audit events list newest first by time
    expect(await totp.reset(alice, { actor: 'cli' })).toBe(true);
    expect(await totp.isEnabled(alice.id)).toBe(false);
    expect(await totp.verifyForLogin(alice.id, await codeAt(aliceSecret))).toEqual({ ok: false, reason: 'not-enrolled' });
    clock += 1_000;
    expect(await totp.reset(alice, { actor: 'cli' })).toBe(false);
    const resets = (await store.audit.list({ userId: alice.id, limit: 20 })).filter((e) => e.type === 'totp.reset');
    expect(resets.map((e) => [e.result, e.reason, e.actor])).toEqual([
      ['success', undefined, 'cli'],
      ['success', undefined, 'cli'],
      ['failure', 'last-factor', undefined],
    ]);
  });
});
