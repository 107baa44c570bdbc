import { createHash } from 'node:crypto';
import type { LoginProtectionConfig } from '../config/schema.js';
import { parseCidr } from '../net/cidr.js';
import type { LoginThrottle, Store, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';
import { normalizeUsername } from './users.js';

/** The growing delay never exceeds this, whatever delayStepMs and the failure count say. */
export const MAX_LOGIN_DELAY_MS = 10_000;

export type LockKind = 'user' | 'address';

/**
 * A sign-in refused because the account or the client address is locked. Only the passkey
 * path throws it (the code paths answer with their own generic refusal); the portal answers
 * it exactly like a failed ceremony, so a lock looks like any other failure from outside.
 */
export class LoginLockedError extends Error {
  constructor(readonly lockedBy: LockKind) {
    super(`sign-in refused: the ${lockedBy === 'user' ? 'account' : 'client address'} is locked`);
    this.name = 'LoginLockedError';
  }
}

export interface GuardedAttempt {
  /**
   * The username as typed, or the owner of the passkey presented. Absent when there is none
   * (a usernameless passkey whose credential is unknown, a username that is not a string):
   * then only the address counts.
   */
  readonly username?: string;
  /** The user behind `username`, when one exists; only for the audit trail. */
  readonly user?: User;
  readonly context: RequestContext;
}

/** What a verification concluded: a value on success, a reason (for the audit log) otherwise. */
export type Verdict<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** As Verdict, plus the refusal of a locked user or address, which was never verified. */
export type GuardedVerdict<T> = Verdict<T> | { readonly ok: false; readonly reason: 'locked'; readonly lockedBy: LockKind };

export interface LockedUser {
  readonly username: string;
  readonly lockedUntil: number;
}

/**
 * Login protection, in front of every way to sign in (passkey, authenticator app code,
 * recovery code): a growing delay per failure, then a lock, per user and per client address.
 *
 * Counts live in the store (LoginThrottleStore: atomic, shared by every node), keyed
 * 'user:<username>' and 'ip:<address>'. The user key is the username as typed (normalized):
 * a username nobody has is counted and locked exactly like a real one, so neither the answers
 * nor the lock behaviour tell an attacker which names exist.
 *
 * An attempt reserves its place in the user's count before it is verified, and a success
 * clears the count again. Counting only after a failure would let a burst of parallel
 * guesses all pass the lock check before the first failures land; with the reservation, no
 * more than maxFailuresPerUser attempts per window are ever verified for one username, on
 * however many nodes. The address is counted after a failure only, because successes from
 * an office's shared address must not add up to a lock.
 */
export class LoginGuard {
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly deps: {
      store: Store;
      config: LoginProtectionConfig;
      audit: AuditLog;
      now?: () => number;
      /** Waits the delay; tests inject one that only records it. */
      sleep?: (ms: number) => Promise<void>;
    },
  ) {
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * Runs one sign-in attempt under protection: refuses it unverified while the user or the
   * address is locked, otherwise waits the delay, calls `verify`, and counts the outcome.
   * `verify` reports a refusal as a verdict; if it throws instead, the attempt stays counted
   * as a failure (an error must not hand out free guesses) and the error is passed on.
   */
  async protect<T>(attempt: GuardedAttempt, verify: () => Promise<Verdict<T>>): Promise<GuardedVerdict<T>> {
    const { config, store } = this.deps;
    const now = this.now();
    const userKey = attempt.username === undefined ? undefined : userKeyOf(attempt.username);
    const addressKey = addressKeyOf(attempt.context.ip);
    const [userRecord, addressRecord] = await Promise.all([userKey ? store.loginThrottle.get(userKey) : undefined, store.loginThrottle.get(addressKey)]);

    // A locked address is refused before anything is counted against the username it names,
    // so an address that is already shut out cannot use up someone's attempts.
    if (isLocked(addressRecord, now)) return { ok: false, reason: 'locked', lockedBy: 'address' };
    if (isLocked(userRecord, now)) {
      await this.countAddressFailure(addressKey, attempt.context, now);
      return { ok: false, reason: 'locked', lockedBy: 'user' };
    }

    let failuresSoFar = 0;
    // Set when this is the window's last attempt: when the lock taken for it ends.
    let lockedUntil: number | undefined;
    if (userKey) {
      const reserved = await store.loginThrottle.recordFailure(userKey, now, this.windowMs(userRecord, now));
      // A lock or a full count that landed since the read above: another attempt (on this
      // node or another) holds the window's last place.
      if (isLocked(reserved, now) || reserved.failures > config.maxFailuresPerUser) {
        await this.countAddressFailure(addressKey, attempt.context, now);
        return { ok: false, reason: 'locked', lockedBy: 'user' };
      }
      failuresSoFar = reserved.failures - 1;
      if (reserved.failures === config.maxFailuresPerUser) {
        // The window's last attempt: lock first, so that parallel attempts are refused while
        // this one is verified. A success clears the lock again; a failure makes it stand,
        // and only then is it reported.
        lockedUntil = this.lockEnd(reserved, now);
        await store.loginThrottle.lock(userKey, lockedUntil);
      }
    }
    await this.sleep(loginDelayMs(failuresSoFar, config.delayStepMs));

    let verdict: Verdict<T>;
    try {
      verdict = await verify();
    } catch (err) {
      await this.recordFailure(attempt, addressKey, lockedUntil).catch(() => undefined);
      throw err;
    }
    if (verdict.ok) {
      if (userKey) await store.loginThrottle.clear(userKey);
    } else {
      await this.recordFailure(attempt, addressKey, lockedUntil);
    }
    return verdict;
  }

  /**
   * An administrator's unlock: forgets the user's failures and lock, on every node at once
   * (the address a guesser used stays locked until it expires). Audited; returns whether the
   * user was locked.
   */
  async unlock(username: string, opts: { actor: string; user?: User; context?: RequestContext }): Promise<boolean> {
    const key = userKeyOf(username);
    const now = this.now();
    const wasLocked = isLocked(await this.deps.store.loginThrottle.get(key), now);
    await this.deps.store.loginThrottle.clear(key);
    await this.deps.audit.record({
      type: 'user.unlock',
      result: 'success',
      actor: opts.actor,
      context: opts.context ?? CLI_CONTEXT,
      ...(opts.user ? { userId: opts.user.id, username: opts.user.username } : { username: keyName(key) }),
      details: { wasLocked },
    });
    return wasLocked;
  }

  /** When the user's lock ends, or undefined when the user is not locked now. */
  async lockedUntil(username: string): Promise<number | undefined> {
    const record = await this.deps.store.loginThrottle.get(userKeyOf(username));
    return isLocked(record, this.now()) ? record!.lockedUntil : undefined;
  }

  /** Usernames locked now, by name, for the console. Includes names no user has. */
  async lockedUsers(): Promise<LockedUser[]> {
    const records = await this.deps.store.loginThrottle.listLocked(USER_PREFIX, this.now());
    return records.map((r) => ({ username: r.key.slice(USER_PREFIX.length), lockedUntil: r.lockedUntil! }));
  }

  /** After a failed verification. The user's failure was counted when the attempt reserved its place. */
  private async recordFailure(attempt: GuardedAttempt, addressKey: string, userLockedUntil: number | undefined): Promise<void> {
    if (userLockedUntil !== undefined) await this.reportLockout('user', attempt, userLockedUntil, this.deps.config.maxFailuresPerUser);
    await this.countAddressFailure(addressKey, attempt.context, this.now(), attempt);
  }

  private async countAddressFailure(key: string, context: RequestContext, now: number, attempt?: GuardedAttempt): Promise<void> {
    const { config, store } = this.deps;
    const before = await store.loginThrottle.get(key);
    if (isLocked(before, now)) return;
    const record = await store.loginThrottle.recordFailure(key, now, this.windowMs(before, now));
    if (record.failures < config.maxFailuresPerAddress || isLocked(record, now)) return;
    const until = this.lockEnd(record, now);
    await store.loginThrottle.lock(key, until);
    // The count passes the limit exactly once per window (the store's increments are
    // atomic), so exactly one attempt reports the lock, however many nodes are counting.
    if (record.failures === config.maxFailuresPerAddress) {
      await this.reportLockout('address', attempt ?? { context }, until, config.maxFailuresPerAddress);
    }
  }

  private async reportLockout(kind: LockKind, attempt: GuardedAttempt, until: number, failures: number): Promise<void> {
    const { config } = this.deps;
    await this.deps.audit.record({
      type: 'login.lockout',
      result: 'failure',
      reason: `${kind}-locked`,
      context: attempt.context,
      ...(kind === 'user' && attempt.user ? { userId: attempt.user.id, username: attempt.user.username } : {}),
      ...(kind === 'user' && !attempt.user && attempt.username !== undefined ? { username: keyName(userKeyOf(attempt.username)) } : {}),
      details: {
        key: kind,
        until,
        failures,
        windowSeconds: config.windowSeconds,
        // Whether the username exists is for the administrator only; clients never see this.
        ...(kind === 'user' ? { knownUser: attempt.user !== undefined } : {}),
        // For IPv6, the /64 that was counted, not only the address of the last attempt.
        ...(kind === 'address' ? { address: addressKeyOf(attempt.context.ip).slice(ADDRESS_PREFIX.length) } : {}),
      },
    });
  }

  /**
   * A lock lasts lockoutSeconds, but never ends before the window whose failures caused it:
   * then the count has started afresh when the lock lifts, rather than being still full
   * (which would refuse every attempt until the window ran out, without a lock to show for it).
   */
  private lockEnd(record: LoginThrottle, now: number): number {
    const { lockoutSeconds, windowSeconds } = this.deps.config;
    return Math.max(now + lockoutSeconds * 1000, record.windowStartedAt + windowSeconds * 1000);
  }

  /** The window for the next count; a window that ended in a lock closes when the lock does. */
  private windowMs(record: LoginThrottle | undefined, now: number): number {
    const windowMs = this.deps.config.windowSeconds * 1000;
    if (record?.lockedUntil !== undefined && record.lockedUntil <= now && record.lockedUntil > record.windowStartedAt) {
      // The store restarts a window that started more than windowMs ago; one ms less than
      // the lock's span makes that true from the lock's last instant on.
      return Math.max(0, Math.min(windowMs, record.lockedUntil - record.windowStartedAt - 1));
    }
    return windowMs;
  }
}

const USER_PREFIX = 'user:';
const ADDRESS_PREFIX = 'ip:';

/** The wait before verifying, after `failures` recent failures: a step per failure, capped. */
export function loginDelayMs(failures: number, delayStepMs: number): number {
  return Math.min(MAX_LOGIN_DELAY_MS, Math.max(0, failures) * delayStepMs);
}

/**
 * 'user:<username>', normalized as accounts are, so "Taro" and "taro" share a count. A name
 * no account could have is still counted, under a digest (bounded length, any characters).
 */
export function userKeyOf(username: string): string {
  try {
    return `${USER_PREFIX}${normalizeUsername(username)}`;
  } catch {
    const folded = username.normalize('NFKC').trim().toLowerCase();
    return `${USER_PREFIX}#${createHash('sha256').update(folded).digest('hex').slice(0, 32)}`;
  }
}

/**
 * 'ip:<address>'. An IPv6 client is counted by its /64, the block one subscriber gets: counting
 * single IPv6 addresses would give every guesser 2^64 fresh ones.
 */
export function addressKeyOf(ip: string): string {
  if (ip.includes(':')) {
    try {
      return `${ADDRESS_PREFIX}${parseCidr(`${ip}/64`).text}`;
    } catch {
      // Not a plain IPv6 address (a zone id, say): counted as it is.
    }
  }
  return `${ADDRESS_PREFIX}${ip}`;
}

function keyName(key: string): string {
  return key.slice(USER_PREFIX.length);
}

function isLocked(record: LoginThrottle | undefined, now: number): boolean {
  return record?.lockedUntil !== undefined && record.lockedUntil > now;
}
