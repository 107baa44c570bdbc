import { scrypt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import {
  generateRecoveryCode,
  hashRecoveryCode,
  parseRecoveryCode,
  RECOVERY_CODE_ALPHABET,
  RECOVERY_CODE_COUNT,
  recoveryCodeMatches,
  RecoveryCodeService,
} from '../../../runtime/services/recovery-codes.js';
import { UserService } from '../../../runtime/services/users.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store, User } from '../../../runtime/store/types.js';

// Counts scrypt runs, so tests can compare the work done on different paths.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, scrypt: vi.fn(actual.scrypt) };
});

const ctx = { ip: '192.0.2.8', userAgent: 'unit' };
let clock = 1_800_000_000_000;
const now = () => clock++;

let dir: string;
let store: Store;
let service: RecoveryCodeService;
let users: UserService;
let alice: User;
let bob: User;
let aliceCodes: string[];
let bobCodes: string[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-recovery-'));
  store = await openSqliteStore({ file: join(dir, 'k.db') });
  const audit = new AuditLog(store, pino({ level: 'silent' }), now);
  users = new UserService(store, audit, now);
  service = new RecoveryCodeService({ store, audit, now });
  alice = await users.addUser({ username: 'alice' });
  bob = await users.addUser({ username: 'bob' });
  aliceCodes = await service.generate(alice, { context: ctx });
  bobCodes = await service.generate(bob, { context: ctx });
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('recovery code format', () => {
  it('makes ten distinct codes of ten unambiguous characters, grouped xxxxx-xxxxx', () => {
    expect(aliceCodes).toHaveLength(RECOVERY_CODE_COUNT);
    expect(new Set(aliceCodes).size).toBe(RECOVERY_CODE_COUNT);
    for (const code of aliceCodes) expect(code).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
    expect(RECOVERY_CODE_ALPHABET).not.toMatch(/[01ilo]/);
    const many = Array.from({ length: 200 }, () => generateRecoveryCode()).join('');
    expect(many).not.toMatch(/[01ilo]/);
  });

  it('accepts what people type: upper case, no hyphen, spaces, full-width characters', () => {
    const code = 'abcde-fgh23';
    for (const typed of ['ABCDE-FGH23', 'abcdefgh23', ' abcde fgh23 ', 'ａｂｃｄｅ－ｆｇｈ２３', 'ab-cde-fgh-23']) {
      expect(parseRecoveryCode(typed), typed).toBe(code.replace('-', ''));
    }
  });

  it.each([
    ['too short', 'abcde-fgh2'],
    ['too long', 'abcde-fgh234'],
    ['an ambiguous character', 'abcde-fgh2o'],
    ['punctuation', 'abcde.fgh23'],
    ['a Cyrillic look-alike', 'аbcde-fgh23'],
    ['a megabyte', 'a'.repeat(1_000_000)],
    ['a number', 1234567890],
    ['null', null],
    ['an array', ['abcde-fgh23']],
  ])('refuses %s', (_what, typed) => {
    expect(parseRecoveryCode(typed)).toBeUndefined();
  });
});

describe('stored hashes', () => {
  it('never contain the code, in any form, and name their scrypt parameters', async () => {
    const set = (await store.recoveryCodes.get(alice.id))!;
    expect(set.codes).toHaveLength(RECOVERY_CODE_COUNT);
    const salts = new Set<string>();
    for (const [i, slot] of set.codes.entries()) {
      expect(slot.hash).toMatch(/^\$scrypt\$ln=12,r=8,p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
      salts.add(slot.hash.split('$')[3]!);
      const code = aliceCodes[i]!;
      const lowered = slot.hash.toLowerCase();
      for (const form of [code, code.replace('-', ''), code.toUpperCase(), Buffer.from(code).toString('base64url'), Buffer.from(code).toString('hex')]) {
        expect(lowered).not.toContain(form.toLowerCase());
      }
    }
    expect(salts.size).toBe(RECOVERY_CODE_COUNT); // a salt per code
    expect(JSON.stringify(set)).not.toContain(aliceCodes[0]!.slice(0, 5));
  });

  it('verifies with the parameters in the hash string, and refuses damaged hash strings', async () => {
    const code = parseRecoveryCode('abcde-fgh23')!;
    const cheap = await hashRecoveryCode(code, { ln: 10, r: 8, p: 1 });
    expect(cheap).toMatch(/^\$scrypt\$ln=10,/);
    expect(await recoveryCodeMatches(code, cheap)).toBe(true);
    expect(await recoveryCodeMatches(parseRecoveryCode('abcde-fgh24')!, cheap)).toBe(false);
    expect(await recoveryCodeMatches(code, cheap.replace('ln=10', 'ln=11'))).toBe(false);
    expect(await recoveryCodeMatches(code, cheap.replace('ln=10', 'ln=30'))).toBe(false); // absurd cost: never run
    expect(await recoveryCodeMatches(code, 'plaintext')).toBe(false);
  });
});

describe('signing in with a recovery code', () => {
  it('accepts a code once: used twice, the second is refused', async () => {
    expect(await service.consume(alice.id, aliceCodes[0])).toEqual({ ok: true, remaining: 9 });
    expect(await service.consume(alice.id, aliceCodes[0])).toEqual({ ok: false, reason: 'used-code' });
    expect(await service.status(alice)).toMatchObject({ total: 10, unused: 9 });
  });

  it('accepts the code however it is typed', async () => {
    expect(await service.consume(alice.id, aliceCodes[1]!.toUpperCase().replace('-', ' '))).toEqual({ ok: true, remaining: 8 });
  });

  it("refuses another user's code", async () => {
    expect(await service.consume(alice.id, bobCodes[0])).toEqual({ ok: false, reason: 'wrong-code' });
    expect((await service.consume(bob.id, bobCodes[0])).ok).toBe(true);
  });

  it('refuses malformed codes', async () => {
    for (const typed of ['', 'abc', 'x'.repeat(100_000), 42, null, { $ne: null }]) {
      expect(await service.consume(alice.id, typed)).toEqual({ ok: false, reason: 'malformed-code' });
    }
  });

  it('lets only one of two simultaneous sign-ins with the same code through', async () => {
    const results = await Promise.all([service.consume(alice.id, aliceCodes[2]), service.consume(alice.id, aliceCodes[2])]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.find((r) => !r.ok)).toMatchObject({ ok: false, reason: expect.stringMatching(/^(replayed-code|used-code)$/) });
  });

  it('refuses every code of the old set after regeneration', async () => {
    const old = aliceCodes;
    const fresh = await service.generate(alice, { context: ctx });
    for (const code of [old[3], old[9]]) expect(await service.consume(alice.id, code)).toEqual({ ok: false, reason: 'wrong-code' });
    expect(fresh.some((c) => old.includes(c))).toBe(false);
    expect(await service.status(alice)).toMatchObject({ total: 10, unused: 10 });
    expect((await service.consume(alice.id, fresh[3])).ok).toBe(true);
    aliceCodes = fresh;
  });

  it('does the same scrypt work for unknown users, users without codes, malformed and wrong codes', async () => {
    const runs = vi.mocked(scrypt);
    const work = async (userId: string | undefined, code: unknown) => {
      const before = runs.mock.calls.length;
      const result = await service.consume(userId, code);
      const params = runs.mock.calls.slice(before).map((call) => JSON.stringify(call[3]));
      return { result, count: params.length, params: [...new Set(params)] };
    };
    const carol = await users.addUser({ username: 'carol' });
    const known = await work(alice.id, 'zzzzz-zzzzz');
    const unknown = await work(undefined, 'zzzzz-zzzzz');
    const noCodes = await work(carol.id, 'zzzzz-zzzzz');
    const malformed = await work(alice.id, '!');
    expect(known.result).toEqual({ ok: false, reason: 'wrong-code' });
    expect(unknown.result).toEqual({ ok: false, reason: 'no-codes' });
    expect(noCodes.result).toEqual({ ok: false, reason: 'no-codes' });
    expect(malformed.result).toEqual({ ok: false, reason: 'malformed-code' });
    expect(known.count).toBe(RECOVERY_CODE_COUNT);
    expect(known.params).toHaveLength(1);
    for (const other of [unknown, noCodes, malformed]) {
      expect(other.count).toBe(known.count);
      expect(other.params).toEqual(known.params);
    }
  });

  it('deletes every code on reset, audited', async () => {
    expect(await service.reset(bob, { actor: 'cli' })).toBe(true);
    expect(await service.status(bob)).toBeUndefined();
    expect(await service.consume(bob.id, bobCodes[5])).toEqual({ ok: false, reason: 'no-codes' });
    expect(await service.reset(bob, { actor: 'cli' })).toBe(false);
    const events = (await store.audit.list({ userId: bob.id, limit: 10 })).filter((e) => e.type.startsWith('recovery.'));
    expect(events.map((e) => `${e.type}:${e.actor ?? ''}`)).toEqual(['recovery.reset:cli', 'recovery.reset:cli', 'recovery.generate:']);
  });
});
