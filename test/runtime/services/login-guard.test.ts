/**
 * The login guard on the real SQLite store, with an injected clock and an injected sleep that
 * only records how long it was asked to wait: growing delay and its cap, the lock at N, its
 * expiry, success clearing the user's count, the address lock, usernames nobody has, two
 * nodes sharing one count, parallel guesses, and the administrator's unlock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig, type LoginProtectionConfig } from '../../../runtime/config/schema.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { addressKeyOf, LoginGuard, loginDelayMs, MAX_LOGIN_DELAY_MS, userKeyOf, type Verdict } from '../../../runtime/services/login-guard.js';
import { UserService } from '../../../runtime/services/users.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { AuditEvent, Store, User } from '../../../runtime/store/types.js';

const DEFAULTS = parseConfig({}).loginProtection;
const WRONG: Verdict<never> = { ok: false, reason: 'wrong-code' };
const RIGHT: Verdict<string> = { ok: true, value: 'signed in' };

let dir: string;
let stores: Store[] = [];
let clock: number;
let sleeps: number[];
let events: AuditEvent[];

interface Node {
  readonly guard: LoginGuard;
  readonly store: Store;
  readonly users: UserService;
}

/** A node: its own connection to the shared SQLite file, its own audit log and guard. */
async function node(config: Partial<LoginProtectionConfig> = {}): Promise<Node> {
  const store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  stores.push(store);
  const audit = new AuditLog(store, pino({ level: 'silent' }), () => clock);
  audit.onEvent((e) => events.push(e));
  const guard = new LoginGuard({
    store,
    config: { ...DEFAULTS, ...config },
    audit,
    now: () => clock,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { guard, store, users: new UserService(store, audit, () => clock) };
}

function from(ip: string) {
  return { ip, userAgent: 'unit' };
}

/** One attempt by `username` from `ip` whose verification gives `verdict`; returns what the guard said and whether it verified. */
async function attempt<T>(n: Node, username: string | undefined, ip: string, verdict: Verdict<T>, user?: User) {
  const verify = vi.fn(async () => verdict);
  const result = await n.guard.protect({ ...(username !== undefined ? { username } : {}), ...(user ? { user } : {}), context: from(ip) }, verify);
  return { result, verified: verify.mock.calls.length === 1 };
}

function lockouts(): AuditEvent[] {
  return events.filter((e) => e.type === 'login.lockout');
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-guard-'));
  clock = 1_800_000_000_000;
  sleeps = [];
  events = [];
});

afterEach(async () => {
  for (const s of stores) await s.close();
  stores = [];
  rmSync(dir, { recursive: true, force: true });
});

describe('growing delay', () => {
  it('waits delayStepMs per failure so far, before verifying', async () => {
    const n = await node({ delayStepMs: 250 });
    for (let i = 0; i < 4; i++) await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect(sleeps).toEqual([0, 250, 500, 750]);
  });

  it('is capped at 10 s', async () => {
    const n = await node({ delayStepMs: 3000, maxFailuresPerUser: 10, maxFailuresPerAddress: 1000 });
    for (let i = 0; i < 6; i++) await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect(sleeps).toEqual([0, 3000, 6000, 9000, MAX_LOGIN_DELAY_MS, MAX_LOGIN_DELAY_MS]);
    expect(loginDelayMs(1_000, 5000)).toBe(10_000);
    expect(loginDelayMs(0, 5000)).toBe(0);
  });

  it('is not waited by an attempt refused because of a lock', async () => {
    const n = await node({ maxFailuresPerUser: 2 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    sleeps = [];
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toMatchObject({ ok: false, reason: 'locked' });
    expect(sleeps).toEqual([]);
  });

  it('starts from nothing again after a success', async () => {
    const n = await node({ delayStepMs: 100 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', RIGHT);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect(sleeps).toEqual([0, 100, 200, 0]);
  });
});

describe('lock per user', () => {
  it('locks at maxFailuresPerUser: then even the right code is refused, unverified', async () => {
    const n = await node({ maxFailuresPerUser: 3 });
    for (let i = 0; i < 3; i++) {
      const { result, verified } = await attempt(n, 'alice', '192.0.2.1', WRONG);
      expect(result).toEqual(WRONG);
      expect(verified).toBe(true);
    }
    const locked = await attempt(n, 'alice', '192.0.2.1', RIGHT);
    expect(locked.result).toEqual({ ok: false, reason: 'locked', lockedBy: 'user' });
    expect(locked.verified).toBe(false);
    // From another address too: the lock is on the account.
    expect((await attempt(n, 'alice', '198.51.100.9', RIGHT)).verified).toBe(false);
    expect(await n.guard.lockedUntil('alice')).toBe(clock + DEFAULTS.lockoutSeconds * 1000);
  });

  it('is audited once per lockout, with the key kind and the end, not once per attempt', async () => {
    const n = await node({ maxFailuresPerUser: 3 });
    const alice = await n.users.addUser({ username: 'alice' });
    for (let i = 0; i < 6; i++) await attempt(n, 'alice', '192.0.2.1', WRONG, alice);
    expect(lockouts()).toHaveLength(1);
    expect(lockouts()[0]).toMatchObject({
      type: 'login.lockout',
      result: 'failure',
      userId: alice.id,
      username: 'alice',
      ip: '192.0.2.1',
      details: { key: 'user', until: clock + DEFAULTS.lockoutSeconds * 1000, failures: 3, knownUser: true },
    });
  });

  it('expires after lockoutSeconds, and the user then has a fresh set of attempts', async () => {
    const n = await node({ maxFailuresPerUser: 3, lockoutSeconds: 600, windowSeconds: 600 });
    for (let i = 0; i < 3; i++) await attempt(n, 'alice', '192.0.2.1', WRONG);
    clock += 600_000 - 1;
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toMatchObject({ reason: 'locked' });
    clock += 1;
    expect(await n.guard.lockedUntil('alice')).toBeUndefined();
    for (let i = 0; i < 2; i++) expect((await attempt(n, 'alice', '192.0.2.1', WRONG)).verified).toBe(true);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
  });

  it('never lifts before the window that caused it ends (lockout shorter than the window)', async () => {
    const n = await node({ maxFailuresPerUser: 2, lockoutSeconds: 60, windowSeconds: 900 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    clock += 100_000;
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    // 60 s from the second failure would be earlier than the window's end (900 s after the first).
    expect(await n.guard.lockedUntil('alice')).toBe(clock - 100_000 + 900_000);
    clock += 800_000;
    // The window is over with the lock: two fresh attempts.
    expect((await attempt(n, 'alice', '192.0.2.1', WRONG)).verified).toBe(true);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
  });

  it('counts failures within the window only', async () => {
    const n = await node({ maxFailuresPerUser: 3, windowSeconds: 900 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    clock += 900_001;
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect(await n.guard.lockedUntil('alice')).toBeUndefined();
  });

  it('a success clears the user count (so N-1 failures, a success, N-1 failures do not lock)', async () => {
    const n = await node({ maxFailuresPerUser: 3 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
    expect(await n.store.loginThrottle.get(userKeyOf('alice'))).toBeUndefined();
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
  });

  it('a success on the last allowed attempt leaves no lock and reports none', async () => {
    const n = await node({ maxFailuresPerUser: 3 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
    expect(await n.guard.lockedUntil('alice')).toBeUndefined();
    expect(lockouts()).toEqual([]);
  });

  it('does not clear the address count on success', async () => {
    const n = await node({ maxFailuresPerAddress: 3 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', RIGHT);
    expect((await n.store.loginThrottle.get(addressKeyOf('192.0.2.1')))?.failures).toBe(2);
  });

  it('shares one count between spellings of the same username', async () => {
    const n = await node({ maxFailuresPerUser: 3 });
    await attempt(n, 'Alice', '192.0.2.1', WRONG);
    await attempt(n, ' alice ', '192.0.2.1', WRONG);
    await attempt(n, 'ALICE', '192.0.2.1', WRONG);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toMatchObject({ reason: 'locked' });
  });

  it('counts a verification that throws as a failure (an error hands out no free guesses)', async () => {
    const n = await node({ maxFailuresPerUser: 2 });
    const boom = () => n.guard.protect({ username: 'alice', context: from('192.0.2.1') }, async () => Promise.reject(new Error('store down')));
    await expect(boom()).rejects.toThrow('store down');
    await expect(boom()).rejects.toThrow('store down');
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toMatchObject({ reason: 'locked' });
    expect(lockouts()).toHaveLength(1);
  });
});

describe('usernames nobody has', () => {
  it('are counted, delayed, locked and audited exactly like a real one', async () => {
    const n = await node({ maxFailuresPerUser: 3 });
    const real = await n.users.addUser({ username: 'realuser' });
    const run = async (username: string, user?: User) => {
      const seen = [];
      for (let i = 0; i < 5; i++) {
        const { result, verified } = await attempt(n, username, '192.0.2.1', WRONG, user);
        seen.push({ result, verified });
      }
      return seen;
    };
    const sleepsBefore = sleeps.length;
    const known = await run('realuser', real);
    const knownSleeps = sleeps.slice(sleepsBefore);
    const unknown = await run('ghostuser');
    expect(unknown).toEqual(known);
    expect(sleeps.slice(sleepsBefore + knownSleeps.length)).toEqual(knownSleeps);
    expect(await n.guard.lockedUntil('ghostuser')).toBe(await n.guard.lockedUntil('realuser'));
    // Only the audit log tells them apart.
    expect(lockouts().map((e) => [e.username, e.details?.knownUser])).toEqual([
      ['realuser', true],
      ['ghostuser', false],
    ]);
  });

  it('including names no account could have', async () => {
    const n = await node({ maxFailuresPerUser: 2 });
    await attempt(n, 'Not A Valid Name!', '192.0.2.1', WRONG);
    await attempt(n, 'not a valid name!', '192.0.2.1', WRONG);
    expect((await attempt(n, 'Not A Valid Name!', '192.0.2.1', RIGHT)).result).toMatchObject({ reason: 'locked' });
    expect(userKeyOf('Not A Valid Name!')).toMatch(/^user:#[0-9a-f]{32}$/);
  });
});

describe('lock per address', () => {
  it('locks the address at maxFailuresPerAddress, across usernames, independently of any user', async () => {
    const n = await node({ maxFailuresPerUser: 5, maxFailuresPerAddress: 4 });
    for (const name of ['a1', 'a2', 'a3', 'a4']) await attempt(n, name, '192.0.2.1', WRONG);
    // No user has reached 5, but the address has reached 4.
    const refused = await attempt(n, 'fresh', '192.0.2.1', RIGHT);
    expect(refused.result).toEqual({ ok: false, reason: 'locked', lockedBy: 'address' });
    expect(refused.verified).toBe(false);
    // The same user from another address is not affected.
    expect((await attempt(n, 'fresh', '198.51.100.9', RIGHT)).result).toEqual(RIGHT);
    expect(lockouts()).toHaveLength(1);
    expect(lockouts()[0]).toMatchObject({ type: 'login.lockout', ip: '192.0.2.1', details: { key: 'address', address: '192.0.2.1', failures: 4 } });
    expect(lockouts()[0]!.username).toBeUndefined();
  });

  it('does not count against the user an attempt refused by the address lock', async () => {
    const n = await node({ maxFailuresPerUser: 3, maxFailuresPerAddress: 2 });
    await attempt(n, 'x1', '192.0.2.1', WRONG);
    await attempt(n, 'x2', '192.0.2.1', WRONG);
    for (let i = 0; i < 5; i++) await attempt(n, 'victim', '192.0.2.1', WRONG);
    expect(await n.store.loginThrottle.get(userKeyOf('victim'))).toBeUndefined();
  });

  it('is not locked by a user lock, and a locked user does not lock other users', async () => {
    const n = await node({ maxFailuresPerUser: 2, maxFailuresPerAddress: 100 });
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    await attempt(n, 'alice', '192.0.2.1', WRONG);
    expect((await attempt(n, 'bob', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
  });

  it('counts an IPv6 client by its /64', async () => {
    const n = await node({ maxFailuresPerUser: 100, maxFailuresPerAddress: 2 });
    expect(addressKeyOf('2001:db8:1:2:aaaa::1')).toBe('ip:2001:db8:1:2::/64');
    expect(addressKeyOf('192.0.2.1')).toBe('ip:192.0.2.1');
    await attempt(n, 'u1', '2001:db8:1:2::1', WRONG);
    await attempt(n, 'u2', '2001:db8:1:2:ffff::2', WRONG);
    expect((await attempt(n, 'u3', '2001:db8:1:2::3', RIGHT)).result).toMatchObject({ lockedBy: 'address' });
    expect((await attempt(n, 'u3', '2001:db8:1:3::3', RIGHT)).result).toEqual(RIGHT);
  });

  it('counts usernameless attempts (a passkey nobody has registered) against the address only', async () => {
    const n = await node({ maxFailuresPerAddress: 2 });
    await attempt(n, undefined, '192.0.2.1', WRONG);
    await attempt(n, undefined, '192.0.2.1', WRONG);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT)).result).toMatchObject({ lockedBy: 'address' });
    expect(await n.store.loginThrottle.listLocked('user:', clock)).toEqual([]);
  });
});

describe('several nodes on one store', () => {
  it('share the count: N/2 failures on each node lock the user on both', async () => {
    const a = await node({ maxFailuresPerUser: 4 });
    const b = await node({ maxFailuresPerUser: 4 });
    await attempt(a, 'alice', '192.0.2.1', WRONG);
    await attempt(b, 'alice', '192.0.2.2', WRONG);
    await attempt(a, 'alice', '192.0.2.3', WRONG);
    await attempt(b, 'alice', '192.0.2.4', WRONG);
    for (const n of [a, b]) {
      const { result, verified } = await attempt(n, 'alice', '192.0.2.5', RIGHT);
      expect(result).toMatchObject({ reason: 'locked', lockedBy: 'user' });
      expect(verified).toBe(false);
    }
    expect(lockouts()).toHaveLength(1);
  });

  it('verify no more than N of a burst of parallel guesses, on two nodes', async () => {
    const a = await node({ maxFailuresPerUser: 5, maxFailuresPerAddress: 1000 });
    const b = await node({ maxFailuresPerUser: 5, maxFailuresPerAddress: 1000 });
    const verify = vi.fn(async () => WRONG);
    const burst = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).guard.protect({ username: 'alice', context: from(`192.0.2.${i}`) }, verify));
    const results = await Promise.all(burst);
    expect(verify.mock.calls.length).toBeLessThanOrEqual(5);
    expect(results.filter((r) => r.ok === false && r.reason === 'locked')).toHaveLength(60 - verify.mock.calls.length);
    expect(await a.guard.lockedUntil('alice')).toBeDefined();
    expect(lockouts().filter((e) => e.details?.key === 'user')).toHaveLength(1);
  });

  it('report an address lock once, however many nodes count it', async () => {
    const a = await node({ maxFailuresPerAddress: 4 });
    const b = await node({ maxFailuresPerAddress: 4 });
    await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(i % 2 ? a : b, `user${i}`, '192.0.2.1', WRONG)));
    expect(lockouts().filter((e) => e.details?.key === 'address')).toHaveLength(1);
  });
});

describe('unlock', () => {
  it('clears the lock and the count at once, is audited, and says whether there was a lock', async () => {
    const n = await node({ maxFailuresPerUser: 2 });
    const alice = await n.users.addUser({ username: 'alice' });
    await attempt(n, 'alice', '192.0.2.1', WRONG, alice);
    await attempt(n, 'alice', '192.0.2.1', WRONG, alice);
    expect(await n.guard.lockedUsers()).toEqual([{ username: 'alice', lockedUntil: clock + DEFAULTS.lockoutSeconds * 1000 }]);
    expect(await n.guard.unlock('alice', { actor: 'cli', user: alice })).toBe(true);
    expect(await n.guard.lockedUsers()).toEqual([]);
    expect((await attempt(n, 'alice', '192.0.2.1', RIGHT, alice)).result).toEqual(RIGHT);
    expect(events.at(-1)).toMatchObject({ type: 'user.unlock', result: 'success', actor: 'cli', userId: alice.id, ip: 'cli', details: { wasLocked: true } });
    expect(await n.guard.unlock('alice', { actor: 'cli', user: alice })).toBe(false);
  });

  it('reaches every node, because the lock lives in the store', async () => {
    const a = await node({ maxFailuresPerUser: 1 });
    const b = await node({ maxFailuresPerUser: 1 });
    await attempt(a, 'alice', '192.0.2.1', WRONG);
    expect((await attempt(b, 'alice', '192.0.2.1', RIGHT)).result).toMatchObject({ reason: 'locked' });
    await a.guard.unlock('alice', { actor: 'cli' });
    expect((await attempt(b, 'alice', '192.0.2.1', RIGHT)).result).toEqual(RIGHT);
  });
});
