/**
 * The one behavioural contract every Store implementation must meet. Each implementation's
 * test file calls describeStoreConformance with a factory that returns a fresh, empty store.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConcurrentUpdateError,
  CredentialExistsError,
  KeyExistsError,
  NotFoundError,
  TokenUnusableError,
  UserExistsError,
  UsernameTakenError,
} from '../../../runtime/store/errors.js';
import { randomId, timeSortableId } from '../../../runtime/store/ids.js';
import type {
  AuditEvent,
  Challenge,
  EnrollmentToken,
  PasskeyCredential,
  Session,
  SigningKey,
  Store,
  User,
} from '../../../runtime/store/types.js';

export interface StoreConformanceOptions {
  /**
   * Whether sweepExpired itself removes expired items. SQLite must; DynamoDB leaves the work
   * to its TTL and is only required not to fail.
   * @default true
   */
  readonly sweepRemovesExpired?: boolean;
}

/** A fixed point well in the future, so TTL-driven stores never expire fixtures during a test. */
const T0 = Date.now() + 7 * 86_400_000;
const DAY = 86_400_000;

function makeUser(overrides: Partial<User> = {}): User {
  const id = overrides.id ?? randomId();
  return {
    id,
    username: `user-${id.toLowerCase()}`,
    displayName: 'Hanako Yamada 山田花子',
    groups: ['staff', 'ops'],
    isAdmin: false,
    disabled: false,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

function makeCredential(userId: string, overrides: Partial<PasskeyCredential> = {}): PasskeyCredential {
  return {
    id: randomId(32),
    userId,
    // Zero, high and arbitrary bytes: a lossy text or base64 step would show up here.
    publicKey: new Uint8Array([
      0x00, 0xa5, 0x01, 0x02, 0xff, 0x7f, 0x80, 0x00,
      ...Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff),
    ]),
    counter: 0,
    transports: ['internal', 'hybrid'],
    deviceType: 'multiDevice',
    backedUp: true,
    aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd',
    name: 'iPhone',
    createdAt: T0,
    ...overrides,
  };
}

function makeChallenge(overrides: Partial<Challenge> = {}): Challenge {
  return {
    challenge: randomId(32),
    ceremony: 'authentication',
    subject: '',
    createdAt: T0,
    expiresAt: T0 + 300_000,
    ...overrides,
  };
}

function makeSession(userId: string, overrides: Partial<Session> = {}): Session {
  return {
    id: randomId(32),
    userId,
    authMethods: ['passkey'],
    createdAt: T0,
    lastSeenAt: T0,
    absoluteExpiresAt: T0 + 43_200_000,
    ip: '192.0.2.10',
    userAgent: 'Mozilla/5.0 (test)',
    ...overrides,
  };
}

function makeToken(overrides: Partial<EnrollmentToken> = {}): EnrollmentToken {
  return {
    id: randomId(32),
    purpose: 'enroll',
    userId: randomId(),
    createdAt: T0,
    expiresAt: T0 + DAY,
    createdBy: 'admin',
    ...overrides,
  };
}

function makeKey(kid: string, createdAt: number): SigningKey {
  return {
    kid,
    alg: 'ES256',
    publicJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid }),
    sealedPrivateKey: `sealed:${kid}`,
    createdAt,
    retiresAt: createdAt + 90 * DAY,
  };
}

function makeEvent(time: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return { id: timeSortableId(time), time, type: 'login', result: 'success', ...overrides };
}

/** Settles every promise and counts outcomes, so a race test can assert "exactly one won". */
async function race<T>(attempts: Promise<T>[]): Promise<{ won: T[]; lost: unknown[] }> {
  const results = await Promise.allSettled(attempts);
  return {
    won: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    lost: results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])),
  };
}

export function describeStoreConformance(
  name: string,
  open: () => Promise<Store>,
  options: StoreConformanceOptions = {},
): void {
  const sweepRemovesExpired = options.sweepRemovesExpired ?? true;

  describe(`store conformance: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    describe('users', () => {
      it('round-trips a user by id and by username', async () => {
        const user = makeUser({ isAdmin: true, groups: ['管理者', 'staff'] });
        await store.users.create(user);
        expect(await store.users.getById(user.id)).toEqual(user);
        expect(await store.users.getByUsername(user.username)).toEqual(user);
      });

      it('round-trips a user with no groups and the disabled flag', async () => {
        const user = makeUser({ groups: [], disabled: true });
        await store.users.create(user);
        expect(await store.users.getById(user.id)).toEqual(user);
      });

      it('returns undefined for unknown ids and usernames', async () => {
        expect(await store.users.getById(randomId())).toBeUndefined();
        expect(await store.users.getByUsername('nobody')).toBeUndefined();
      });

      it('refuses a second user with the same username', async () => {
        const first = makeUser({ username: 'taro' });
        await store.users.create(first);
        const second = makeUser({ username: 'taro' });
        await expect(store.users.create(second)).rejects.toBeInstanceOf(UsernameTakenError);
        expect(await store.users.getById(second.id)).toBeUndefined();
        expect(await store.users.getByUsername('taro')).toEqual(first);
      });

      it('refuses a second user with the same id', async () => {
        const first = makeUser();
        await store.users.create(first);
        const again = makeUser({ id: first.id, username: 'someone-else' });
        await expect(store.users.create(again)).rejects.toBeInstanceOf(UserExistsError);
        expect(await store.users.getByUsername('someone-else')).toBeUndefined();
      });

      it('lets exactly one of two concurrent creates of the same username succeed', async () => {
        const a = makeUser({ username: 'contested' });
        const b = makeUser({ username: 'contested' });
        const { won, lost } = await race([store.users.create(a), store.users.create(b)]);
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0]).toBeInstanceOf(UsernameTakenError);
        const owner = await store.users.getByUsername('contested');
        expect([a.id, b.id]).toContain(owner?.id);
      });

      it('updates every mutable field but not the username', async () => {
        const user = makeUser({ username: 'jiro' });
        await store.users.create(user);
        const changed: User = {
          ...user,
          username: 'renamed-attempt',
          displayName: 'Jiro Suzuki',
          groups: ['finance'],
          isAdmin: true,
          disabled: true,
          updatedAt: T0 + 1000,
        };
        await store.users.update(changed);
        expect(await store.users.getById(user.id)).toEqual({ ...changed, username: 'jiro' });
        expect(await store.users.getByUsername('jiro')).toEqual({ ...changed, username: 'jiro' });
        expect(await store.users.getByUsername('renamed-attempt')).toBeUndefined();
      });

      it('throws NotFoundError when updating an unknown user', async () => {
        await expect(store.users.update(makeUser())).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.users.hasAny()).toBe(false);
      });

      it('reports whether any user exists', async () => {
        expect(await store.users.hasAny()).toBe(false);
        await store.users.create(makeUser());
        expect(await store.users.hasAny()).toBe(true);
      });

      it('lists nothing when there are no users', async () => {
        expect(await store.users.list()).toEqual({ users: [] });
      });

      it('pages through users ordered by username with an opaque cursor', async () => {
        const names = Array.from({ length: 25 }, (_, i) => `member-${String(i).padStart(2, '0')}`);
        // Created out of order, so the order of the listing must come from the store.
        const shuffled = [...names].sort((x, y) => (x.split('').reverse().join('') < y.split('').reverse().join('') ? -1 : 1));
        for (const username of shuffled) await store.users.create(makeUser({ username }));

        const page1 = await store.users.list({ limit: 10 });
        expect(page1.users.map((u) => u.username)).toEqual(names.slice(0, 10));
        expect(typeof page1.cursor).toBe('string');
        const page2 = await store.users.list({ limit: 10, cursor: page1.cursor });
        expect(page2.users.map((u) => u.username)).toEqual(names.slice(10, 20));
        const page3 = await store.users.list({ limit: 10, cursor: page2.cursor });
        expect(page3.users.map((u) => u.username)).toEqual(names.slice(20));
        expect(page3.cursor).toBeUndefined();

        const all = await store.users.list();
        expect(all.users.map((u) => u.username)).toEqual(names);
        expect(all.cursor).toBeUndefined();
      });

      it('gives no cursor when the last page is exactly full', async () => {
        for (let i = 0; i < 4; i++) await store.users.create(makeUser({ username: `exact-${i}` }));
        const page1 = await store.users.list({ limit: 2 });
        const page2 = await store.users.list({ limit: 2, cursor: page1.cursor });
        expect(page2.users.map((u) => u.username)).toEqual(['exact-2', 'exact-3']);
        expect(page2.cursor).toBeUndefined();
      });
    });

    describe('credentials', () => {
      it('round-trips a credential with its public key byte for byte', async () => {
        const credential = makeCredential(randomId());
        await store.credentials.create(credential);
        const stored = await store.credentials.get(credential.id);
        expect(stored).toEqual(credential);
        expect(stored?.publicKey).toBeInstanceOf(Uint8Array);
        expect(Array.from(stored?.publicKey ?? [])).toEqual(Array.from(credential.publicKey));
        expect(stored && 'lastUsedAt' in stored).toBe(false);
      });

      it('round-trips a device-bound credential with lastUsedAt and no transports', async () => {
        const credential = makeCredential(randomId(), {
          deviceType: 'singleDevice',
          backedUp: false,
          transports: [],
          lastUsedAt: T0 + 5,
        });
        await store.credentials.create(credential);
        expect(await store.credentials.get(credential.id)).toEqual(credential);
      });

      it('returns undefined for an unknown credential', async () => {
        expect(await store.credentials.get(randomId(32))).toBeUndefined();
      });

      it('keeps credential ids unique across users', async () => {
        const credential = makeCredential(randomId());
        await store.credentials.create(credential);
        const otherUsers = { ...makeCredential(randomId()), id: credential.id };
        await expect(store.credentials.create(otherUsers)).rejects.toBeInstanceOf(CredentialExistsError);
        expect(await store.credentials.get(credential.id)).toEqual(credential);
      });

      it("lists only the user's own credentials", async () => {
        const userId = randomId();
        const mine = [makeCredential(userId, { createdAt: T0 }), makeCredential(userId, { createdAt: T0 + 1 })];
        for (const c of mine) await store.credentials.create(c);
        await store.credentials.create(makeCredential(randomId()));
        const listed = await store.credentials.listByUser(userId);
        expect(listed.map((c) => c.id).sort()).toEqual(mine.map((c) => c.id).sort());
        expect(await store.credentials.listByUser(randomId())).toEqual([]);
      });

      it('records a use when the expected counter matches', async () => {
        const credential = makeCredential(randomId(), { counter: 7 });
        await store.credentials.create(credential);
        await store.credentials.recordUse(credential.id, { expectedCounter: 7, counter: 8, lastUsedAt: T0 + 60_000 });
        expect(await store.credentials.get(credential.id)).toEqual({ ...credential, counter: 8, lastUsedAt: T0 + 60_000 });
      });

      it('refuses a use with a stale expected counter', async () => {
        const credential = makeCredential(randomId(), { counter: 7 });
        await store.credentials.create(credential);
        await store.credentials.recordUse(credential.id, { expectedCounter: 7, counter: 8, lastUsedAt: T0 + 1 });
        await expect(
          store.credentials.recordUse(credential.id, { expectedCounter: 7, counter: 9, lastUsedAt: T0 + 2 }),
        ).rejects.toBeInstanceOf(ConcurrentUpdateError);
        expect((await store.credentials.get(credential.id))?.counter).toBe(8);
      });

      it('lets exactly one of two concurrent uses with the same expected counter win', async () => {
        const credential = makeCredential(randomId(), { counter: 0 });
        await store.credentials.create(credential);
        const { won, lost } = await race([
          store.credentials.recordUse(credential.id, { expectedCounter: 0, counter: 1, lastUsedAt: T0 + 1 }),
          store.credentials.recordUse(credential.id, { expectedCounter: 0, counter: 2, lastUsedAt: T0 + 2 }),
        ]);
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0]).toBeInstanceOf(ConcurrentUpdateError);
      });

      it('throws NotFoundError when recording a use of an unknown credential', async () => {
        await expect(
          store.credentials.recordUse(randomId(32), { expectedCounter: 0, counter: 1, lastUsedAt: T0 }),
        ).rejects.toBeInstanceOf(NotFoundError);
      });

      it('renames a credential, and throws NotFoundError for an unknown one', async () => {
        const credential = makeCredential(randomId());
        await store.credentials.create(credential);
        await store.credentials.rename(credential.id, 'YubiKey 5 NFC（会社）');
        expect((await store.credentials.get(credential.id))?.name).toBe('YubiKey 5 NFC（会社）');
        await expect(store.credentials.rename(randomId(32), 'x')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('deletes idempotently', async () => {
        const credential = makeCredential(randomId());
        await store.credentials.create(credential);
        await store.credentials.delete(credential.id);
        expect(await store.credentials.get(credential.id)).toBeUndefined();
        expect(await store.credentials.listByUser(credential.userId)).toEqual([]);
        await expect(store.credentials.delete(credential.id)).resolves.toBeUndefined();
        // The id is free again once deleted.
        await store.credentials.create(credential);
      });
    });

    describe('challenges', () => {
      it('returns a challenge once and then never again', async () => {
        const challenge = makeChallenge({ ceremony: 'registration', subject: randomId(), data: '{"username":"admin"}' });
        await store.challenges.put(challenge);
        expect(await store.challenges.consume(challenge.challenge)).toEqual(challenge);
        expect(await store.challenges.consume(challenge.challenge)).toBeUndefined();
      });

      it('round-trips a challenge without data', async () => {
        const challenge = makeChallenge();
        await store.challenges.put(challenge);
        const consumed = await store.challenges.consume(challenge.challenge);
        expect(consumed).toEqual(challenge);
        expect(consumed && 'data' in consumed).toBe(false);
      });

      it('returns an expired challenge so the caller can report it as expired', async () => {
        const now = Date.now();
        const challenge = makeChallenge({ createdAt: now - 600_000, expiresAt: now - 300_000 });
        await store.challenges.put(challenge);
        expect(await store.challenges.consume(challenge.challenge)).toEqual(challenge);
      });

      it('gives the challenge to exactly one of several concurrent consumers', async () => {
        const challenge = makeChallenge();
        await store.challenges.put(challenge);
        const results = await Promise.all(Array.from({ length: 5 }, () => store.challenges.consume(challenge.challenge)));
        expect(results.filter((r) => r !== undefined)).toEqual([challenge]);
      });

      it('returns undefined for an unknown challenge', async () => {
        expect(await store.challenges.consume(randomId(32))).toBeUndefined();
      });
    });

    describe('sessions', () => {
      it('round-trips a session', async () => {
        const session = makeSession(randomId(), { authMethods: ['passkey', 'mtls'] });
        await store.sessions.create(session);
        expect(await store.sessions.get(session.id)).toEqual(session);
        expect(await store.sessions.get(randomId(32))).toBeUndefined();
      });

      it('moves lastSeenAt forward and never back', async () => {
        const session = makeSession(randomId());
        await store.sessions.create(session);
        await store.sessions.touch(session.id, T0 + 10_000);
        expect((await store.sessions.get(session.id))?.lastSeenAt).toBe(T0 + 10_000);
        await store.sessions.touch(session.id, T0 + 5_000);
        expect((await store.sessions.get(session.id))?.lastSeenAt).toBe(T0 + 10_000);
        expect(await store.sessions.get(session.id)).toEqual({ ...session, lastSeenAt: T0 + 10_000 });
      });

      it('ignores a touch of a missing session and does not create it', async () => {
        const id = randomId(32);
        await expect(store.sessions.touch(id, T0)).resolves.toBeUndefined();
        expect(await store.sessions.get(id)).toBeUndefined();
      });

      it('deletes idempotently', async () => {
        const session = makeSession(randomId());
        await store.sessions.create(session);
        await store.sessions.delete(session.id);
        expect(await store.sessions.get(session.id)).toBeUndefined();
        await expect(store.sessions.delete(session.id)).resolves.toBeUndefined();
      });

      it("lists only the user's sessions", async () => {
        const userId = randomId();
        const mine = [makeSession(userId), makeSession(userId, { createdAt: T0 + 1 })];
        for (const s of mine) await store.sessions.create(s);
        await store.sessions.create(makeSession(randomId()));
        const listed = await store.sessions.listByUser(userId);
        expect(listed.map((s) => s.id).sort()).toEqual(mine.map((s) => s.id).sort());
        expect(listed.find((s) => s.id === mine[0]!.id)).toEqual(mine[0]);
        expect(await store.sessions.listByUser(randomId())).toEqual([]);
      });

      it("deletes a user's other sessions, keeping the one named", async () => {
        const userId = randomId();
        const [current, ...others] = [makeSession(userId), makeSession(userId), makeSession(userId)];
        const stranger = makeSession(randomId());
        for (const s of [current!, ...others, stranger]) await store.sessions.create(s);

        expect(await store.sessions.deleteByUser(userId, current!.id)).toBe(2);
        expect(await store.sessions.listByUser(userId)).toEqual([current]);
        expect(await store.sessions.get(stranger.id)).toEqual(stranger);
      });

      it("deletes every session of a user when none is kept", async () => {
        const userId = randomId();
        for (let i = 0; i < 3; i++) await store.sessions.create(makeSession(userId));
        const stranger = makeSession(randomId());
        await store.sessions.create(stranger);

        expect(await store.sessions.deleteByUser(userId)).toBe(3);
        expect(await store.sessions.listByUser(userId)).toEqual([]);
        expect(await store.sessions.deleteByUser(userId)).toBe(0);
        expect(await store.sessions.get(stranger.id)).toEqual(stranger);
      });
    });

    describe('enrollment tokens', () => {
      it('round-trips a token', async () => {
        const token = makeToken();
        await store.enrollmentTokens.create(token);
        expect(await store.enrollmentTokens.get(token.id)).toEqual(token);
        expect(await store.enrollmentTokens.get(randomId(32))).toBeUndefined();
      });

      it('round-trips a bootstrap token, whose user id is empty', async () => {
        const token = makeToken({ purpose: 'bootstrap-admin', userId: '', createdBy: 'cli' });
        await store.enrollmentTokens.create(token);
        expect(await store.enrollmentTokens.get(token.id)).toEqual(token);
      });

      it('consumes an unused, unexpired token once', async () => {
        const token = makeToken();
        await store.enrollmentTokens.create(token);
        const now = T0 + 1000;
        expect(await store.enrollmentTokens.consume(token.id, now)).toEqual({ ...token, usedAt: now });
        expect(await store.enrollmentTokens.get(token.id)).toEqual({ ...token, usedAt: now });
        const second = store.enrollmentTokens.consume(token.id, now + 1);
        await expect(second).rejects.toBeInstanceOf(TokenUnusableError);
        await expect(second).rejects.toMatchObject({ reason: 'used' });
      });

      it('reports an unknown token', async () => {
        const attempt = store.enrollmentTokens.consume(randomId(32), T0);
        await expect(attempt).rejects.toBeInstanceOf(TokenUnusableError);
        await expect(attempt).rejects.toMatchObject({ reason: 'unknown' });
      });

      it('reports an expired token and leaves it unused', async () => {
        const token = makeToken();
        await store.enrollmentTokens.create(token);
        const atExpiry = store.enrollmentTokens.consume(token.id, token.expiresAt);
        await expect(atExpiry).rejects.toMatchObject({ reason: 'expired' });
        const after = store.enrollmentTokens.consume(token.id, token.expiresAt + 1);
        await expect(after).rejects.toBeInstanceOf(TokenUnusableError);
        await expect(after).rejects.toMatchObject({ reason: 'expired' });
        expect(await store.enrollmentTokens.get(token.id)).toEqual(token);
      });

      it('reports a used token as used even after it expired', async () => {
        const token = makeToken();
        await store.enrollmentTokens.create(token);
        await store.enrollmentTokens.consume(token.id, T0);
        await expect(store.enrollmentTokens.consume(token.id, token.expiresAt + 1)).rejects.toMatchObject({ reason: 'used' });
      });

      it('lets exactly one of several concurrent consumers win', async () => {
        const token = makeToken();
        await store.enrollmentTokens.create(token);
        const { won, lost } = await race(Array.from({ length: 5 }, (_, i) => store.enrollmentTokens.consume(token.id, T0 + i)));
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(4);
        for (const err of lost) {
          expect(err).toBeInstanceOf(TokenUnusableError);
          expect(err).toMatchObject({ reason: 'used' });
        }
        expect((await store.enrollmentTokens.get(token.id))?.usedAt).toBe(won[0]!.usedAt);
      });

      it('deletes unused tokens of a purpose, keeping used ones and other purposes', async () => {
        const unusedA = makeToken();
        const unusedB = makeToken();
        const used = makeToken();
        const bootstrap = makeToken({ purpose: 'bootstrap-admin', userId: '' });
        for (const t of [unusedA, unusedB, used, bootstrap]) await store.enrollmentTokens.create(t);
        await store.enrollmentTokens.consume(used.id, T0);

        expect(await store.enrollmentTokens.deleteUnused('enroll')).toBe(2);
        expect(await store.enrollmentTokens.get(unusedA.id)).toBeUndefined();
        expect(await store.enrollmentTokens.get(unusedB.id)).toBeUndefined();
        expect((await store.enrollmentTokens.get(used.id))?.usedAt).toBe(T0);
        expect(await store.enrollmentTokens.get(bootstrap.id)).toEqual(bootstrap);

        expect(await store.enrollmentTokens.deleteUnused('bootstrap-admin')).toBe(1);
        expect(await store.enrollmentTokens.get(bootstrap.id)).toBeUndefined();
      });

      it("deletes only the named user's unused tokens", async () => {
        const userId = randomId();
        const mine = [makeToken({ userId }), makeToken({ userId })];
        const theirs = makeToken();
        for (const t of [...mine, theirs]) await store.enrollmentTokens.create(t);

        expect(await store.enrollmentTokens.deleteUnused('enroll', userId)).toBe(2);
        for (const t of mine) expect(await store.enrollmentTokens.get(t.id)).toBeUndefined();
        expect(await store.enrollmentTokens.get(theirs.id)).toEqual(theirs);
        expect(await store.enrollmentTokens.deleteUnused('enroll', userId)).toBe(0);
      });
    });

    describe('signing keys', () => {
      it('lists nothing at first', async () => {
        expect(await store.signingKeys.list()).toEqual([]);
      });

      it('lists every key newest first', async () => {
        const keys = [makeKey('k-2024', T0 - 365 * DAY), makeKey('k-2026', T0), makeKey('k-2025', T0 - 180 * DAY)];
        for (const k of keys) await store.signingKeys.create(k);
        expect(await store.signingKeys.list()).toEqual([keys[1], keys[2], keys[0]]);
      });

      it('refuses a second key with the same kid', async () => {
        const key = makeKey('dup', T0);
        await store.signingKeys.create(key);
        await expect(store.signingKeys.create(makeKey('dup', T0 + 1))).rejects.toBeInstanceOf(KeyExistsError);
        expect(await store.signingKeys.list()).toEqual([key]);
      });
    });

    describe('audit log', () => {
      it('round-trips every field of an event', async () => {
        const full = makeEvent(T0, {
          type: 'login',
          result: 'failure',
          userId: randomId(),
          username: 'hanako',
          actor: 'cli',
          ip: '2001:db8::1',
          userAgent: 'Mozilla/5.0',
          method: 'passkey',
          reason: 'challenge-replayed',
          details: { attempt: 2, nested: { ok: false }, list: ['a', 'b'], text: '日本語' },
        });
        const bare = makeEvent(T0 + 1, { type: 'admin.user.add' });
        await store.audit.append(full);
        await store.audit.append(bare);
        expect(await store.audit.list()).toEqual([bare, full]);
      });

      it('lists nothing at first', async () => {
        expect(await store.audit.list()).toEqual([]);
      });

      it('lists newest first and pages with `before`, across days', async () => {
        // Two events every 7 hours over four days, appended out of order.
        const events = Array.from({ length: 24 }, (_, i) => makeEvent(T0 - Math.floor(i / 2) * 7 * 3_600_000 - (i % 2)));
        for (const e of [...events].reverse()) await store.audit.append(e);
        const newestFirst = [...events].sort((a, b) => (a.id < b.id ? 1 : -1));

        expect(await store.audit.list({ limit: 5 })).toEqual(newestFirst.slice(0, 5));

        const paged: AuditEvent[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await store.audit.list({ limit: 7, ...(before ? { before } : {}) });
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(7);
          paged.push(...page);
          before = page[page.length - 1]!.id;
        }
        expect(paged).toEqual(newestFirst);
        expect(await store.audit.list({ before: newestFirst[23]!.id })).toEqual([]);
      });

      it("filters by user, newest first, with `before`", async () => {
        const userId = randomId();
        const mine = Array.from({ length: 6 }, (_, i) => makeEvent(T0 - i * 5 * 3_600_000, { userId }));
        const others = Array.from({ length: 6 }, (_, i) => makeEvent(T0 - i * 5 * 3_600_000 + 1, { userId: randomId() }));
        for (const e of [...mine, ...others]) await store.audit.append(e);

        expect(await store.audit.list({ userId })).toEqual(mine);
        expect(await store.audit.list({ userId, limit: 2 })).toEqual(mine.slice(0, 2));
        expect(await store.audit.list({ userId, before: mine[1]!.id, limit: 3 })).toEqual(mine.slice(2, 5));
        expect(await store.audit.list({ userId: randomId() })).toEqual([]);
        expect(await store.audit.list({ limit: 12 })).toHaveLength(12);
      });
    });

    describe('sweepExpired', () => {
      it(sweepRemovesExpired ? 'removes expired challenges, sessions and tokens only' : 'does not fail', async () => {
        const userId = randomId();
        const now = T0 + DAY;
        const oldChallenge = makeChallenge({ expiresAt: now - 1 });
        const liveChallenge = makeChallenge({ expiresAt: now + 60_000 });
        const oldSession = makeSession(userId, { absoluteExpiresAt: now - 1 });
        const liveSession = makeSession(userId, { absoluteExpiresAt: now + 60_000 });
        const oldToken = makeToken({ expiresAt: now });
        const liveToken = makeToken({ expiresAt: now + 60_000 });
        const user = makeUser();
        const credential = makeCredential(user.id);
        await store.challenges.put(oldChallenge);
        await store.challenges.put(liveChallenge);
        await store.sessions.create(oldSession);
        await store.sessions.create(liveSession);
        await store.enrollmentTokens.create(oldToken);
        await store.enrollmentTokens.create(liveToken);
        await store.users.create(user);
        await store.credentials.create(credential);

        await expect(store.sweepExpired(now)).resolves.toBeUndefined();

        // Whatever a store's sweep does, live items and non-expiring aggregates survive it.
        expect(await store.sessions.get(liveSession.id)).toEqual(liveSession);
        expect(await store.enrollmentTokens.get(liveToken.id)).toEqual(liveToken);
        expect(await store.users.getById(user.id)).toEqual(user);
        expect(await store.credentials.get(credential.id)).toEqual(credential);
        expect(await store.challenges.consume(liveChallenge.challenge)).toEqual(liveChallenge);
        if (sweepRemovesExpired) {
          expect(await store.challenges.consume(oldChallenge.challenge)).toBeUndefined();
          expect(await store.sessions.get(oldSession.id)).toBeUndefined();
          expect(await store.sessions.listByUser(userId)).toEqual([liveSession]);
          expect(await store.enrollmentTokens.get(oldToken.id)).toBeUndefined();
        }
      });
    });
  });
}
