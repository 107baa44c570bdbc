import { randomInt, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { RecoveryCodeSet, Store, User } from '../store/types.js';
import { randomId } from '../store/ids.js';
import type { AuditLog } from './audit-log.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

/** How many codes a set has. */
export const RECOVERY_CODE_COUNT = 10;
/**
 * No 0/o, 1/l/i: codes are read off paper and typed by hand. 31 symbols, 10 of them per code:
 * about 49.5 bits, far beyond guessing within the login throttle's limits.
 */
export const RECOVERY_CODE_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const CODE_LENGTH = 10;

/**
 * scrypt cost (RFC 7914 §2): N = 2^12, r = 8, p = 1 is 4 MiB and a few tens of milliseconds
 * per hash. The codes are random (about 49.5 bits), not chosen by people, so the entropy does
 * the heavy lifting: searching a stolen table would take some 2^49 of these hashes per code.
 * A sign-in checks all ten slots, so a higher cost would mostly slow down honest logins and
 * make guessing a cheap way to load the server. The parameters travel in each hash string,
 * so they can be raised later without invalidating existing sets.
 */
const DEFAULT_PARAMS = { ln: 12, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const HASH_SHAPE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{32,128})$/;

interface ScryptParams {
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

function scrypt(password: string, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** params.ln, r: params.r, p: params.p, maxmem: 256 * 2 ** params.ln * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A fresh random code, `xxxxx-xxxxx`. */
export function generateRecoveryCode(): string {
  let code = '';
  for (let i = 0; i < CODE_LENGTH; i++) code += RECOVERY_CODE_ALPHABET[randomInt(RECOVERY_CODE_ALPHABET.length)];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/**
 * A typed code in canonical form (ten symbols, no separator), or undefined when it cannot be
 * one. Width and case are folded (NFKC, lower case) and spaces and hyphens dropped, because
 * people copy codes from paper, PDFs and phones.
 */
export function parseRecoveryCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 64) return undefined;
  const code = input.normalize('NFKC').toLowerCase().replace(/[\s-]/g, '');
  if (code.length !== CODE_LENGTH) return undefined;
  for (const c of code) if (!RECOVERY_CODE_ALPHABET.includes(c)) return undefined;
  return code;
}

/** `$scrypt$ln=14,r=8,p=1$<salt>$<hash>` (PHC string format, base64url): the code itself is never in it. */
export async function hashRecoveryCode(code: string, params: ScryptParams = DEFAULT_PARAMS): Promise<string> {
  const canonical = parseRecoveryCode(code);
  if (!canonical) throw new TypeError('not a recovery code');
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(canonical, salt, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/**
 * Whether `canonical` (from parseRecoveryCode) is the code behind `hash`. A hash string that
 * does not parse, or names costs outside a sane range, never matches; the same scrypt work
 * is done for it anyway, so a damaged record costs what a real one does.
 */
export async function recoveryCodeMatches(canonical: string, hash: string): Promise<boolean> {
  const m = HASH_SHAPE.exec(hash);
  const params = m ? { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) } : undefined;
  const usable = params && params.ln >= 10 && params.ln <= 20 && params.r >= 1 && params.r <= 32 && params.p >= 1 && params.p <= 4;
  if (!m || !usable) {
    await scrypt(canonical, DUMMY_SALT, DEFAULT_PARAMS);
    return false;
  }
  const expected = Buffer.from(m[5]!, 'base64url');
  const actual = await scrypt(canonical, Buffer.from(m[4]!, 'base64url'), params);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

const DUMMY_SALT = randomBytes(SALT_BYTES);

export interface RecoveryCodeStatus {
  readonly total: number;
  readonly unused: number;
  readonly createdAt: number;
}

export type RecoveryRefusal = 'malformed-code' | 'no-codes' | 'wrong-code' | 'used-code' | 'replayed-code';

export type RecoveryCheck =
  | { readonly ok: true; readonly remaining: number }
  | { readonly ok: false; readonly reason: RecoveryRefusal };

/**
 * Single-use recovery codes: ten per user, shown once, stored only as scrypt hashes with a
 * salt each. Generating a new set replaces (and so invalidates) the old one.
 *
 * A check always runs scrypt for all ten slots, used or not, and for ten dummy slots when the
 * user is unknown or has no codes, so the work done does not tell whether a username exists.
 */
export class RecoveryCodeService {
  constructor(private readonly deps: { store: Store; audit: AuditLog; now?: () => number }) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async status(user: User): Promise<RecoveryCodeStatus | undefined> {
    const set = await this.deps.store.recoveryCodes.get(user.id);
    if (!set) return undefined;
    return { total: set.codes.length, unused: unusedCount(set), createdAt: set.createdAt };
  }

  /** A new set; returns the codes in clear, which exist nowhere else and are never shown again. */
  async generate(user: User, opts: { actor?: string; context?: RequestContext } = {}): Promise<string[]> {
    const codes: string[] = [];
    while (codes.length < RECOVERY_CODE_COUNT) {
      const code = generateRecoveryCode();
      if (!codes.includes(code)) codes.push(code);
    }
    const hashes = await Promise.all(codes.map((c) => hashRecoveryCode(c)));
    const createdAt = this.now();
    const previous = await this.deps.store.recoveryCodes.get(user.id);
    await this.deps.store.recoveryCodes.replace({ userId: user.id, setId: randomId(12), createdAt, codes: hashes.map((hash) => ({ hash })) });
    await this.deps.audit.record({
      type: 'recovery.generate',
      result: 'success',
      userId: user.id,
      username: user.username,
      method: 'recovery',
      context: opts.context ?? CLI_CONTEXT,
      ...(opts.actor ? { actor: opts.actor } : {}),
      details: { count: codes.length, replacedUnused: unusedCount(previous) },
    });
    return codes;
  }

  /**
   * Checks a code and, when it matches an unused slot, marks that slot used (atomically, so
   * two simultaneous logins with one code cannot both pass). `userId` undefined means the
   * username is unknown: only the dummy work is done.
   */
  async consume(userId: string | undefined, code: unknown): Promise<RecoveryCheck> {
    const canonical = parseRecoveryCode(code);
    // The store is read for unknown users too (under an id no user has), so the round trips match.
    const found = await this.deps.store.recoveryCodes.get(userId ?? DUMMY_USER_ID);
    const set = userId ? found : undefined;
    const slots = set ? set.codes : [];
    // Ten scrypt runs whatever happens: real slots first, dummy ones for the rest.
    const candidate = canonical ?? DUMMY_CODE;
    const matches = await Promise.all(
      Array.from({ length: Math.max(RECOVERY_CODE_COUNT, slots.length) }, (_, i) =>
        slots[i] ? recoveryCodeMatches(candidate, slots[i]!.hash) : scrypt(candidate, DUMMY_SALT, DEFAULT_PARAMS).then(() => false),
      ),
    );
    if (!canonical) return { ok: false, reason: 'malformed-code' };
    if (!set || !userId) return { ok: false, reason: 'no-codes' };
    const index = matches.findIndex((hit, i) => hit && slots[i]!.usedAt === undefined);
    if (index < 0) return { ok: false, reason: matches.some((hit) => hit) ? 'used-code' : 'wrong-code' };
    const marked = await this.deps.store.recoveryCodes.markUsed(userId, set.setId, index, this.now());
    if (!marked) return { ok: false, reason: 'replayed-code' };
    return { ok: true, remaining: slots.filter((s, i) => i !== index && s.usedAt === undefined).length };
  }

  /** Deletes the user's codes (an administrator's reset). Returns whether there were any. */
  async reset(user: User, opts: { actor?: string; context?: RequestContext } = {}): Promise<boolean> {
    const existing = await this.deps.store.recoveryCodes.get(user.id);
    await this.deps.store.recoveryCodes.delete(user.id);
    await this.deps.audit.record({
      type: 'recovery.reset',
      result: 'success',
      userId: user.id,
      username: user.username,
      method: 'recovery',
      context: opts.context ?? CLI_CONTEXT,
      ...(opts.actor ? { actor: opts.actor } : {}),
      details: { removedUnused: unusedCount(existing) },
    });
    return existing !== undefined;
  }
}

/** Stands in for a malformed code so that its refusal costs what a wrong code's does. */
const DUMMY_CODE = 'aaaaaaaaaa';
/** Never a real user id (those are random base64url), so the dummy read finds nothing. */
const DUMMY_USER_ID = '~no-such-user~';

/** How many codes of a set are still unused (0 for no set). */
function unusedCount(set: RecoveryCodeSet | undefined): number {
  return set ? set.codes.filter((c) => c.usedAt === undefined).length : 0;
}
