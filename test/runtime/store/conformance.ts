/**
 * The one behavioural contract every Store implementation must meet. Each implementation's
 * test file calls describeStoreConformance with a factory that returns a fresh, empty store.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CertificateAuthorityExistsError,
  CertificateExistsError,
  CertificateLimitError,
  ConcurrentUpdateError,
  CredentialExistsError,
  DownloadLinkUnusableError,
  KeyExistsError,
  NotFoundError,
  StoreError,
  TokenUnusableError,
  UserExistsError,
  UsernameTakenError,
} from '../../../runtime/store/errors.js';
import { randomId, timeSortableId } from '../../../runtime/store/ids.js';
import { acquireLease, leaseHolder, releaseLease, renewLease } from '../../../runtime/store/lease.js';
import { DOCUMENT_BODY_LIMIT } from '../../../runtime/store/types.js';
import type {
  AuditEvent,
  CertificateDelivery,
  CertificateDownloadLink,
  CertificateOwner,
  Challenge,
  ClientCertificate,
  EnrollmentToken,
  LoginThrottle,
  PasskeyCredential,
  RecoveryCodeSet,
  Session,
  SigningKey,
  Store,
  TotpSecret,
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

function makeTotp(userId: string, overrides: Partial<TotpSecret> = {}): TotpSecret {
  return { userId, sealedSecret: `v1.sealed.${randomId(24)}`, confirmed: false, createdAt: T0, ...overrides };
}

function makeRecoverySet(userId: string, overrides: Partial<RecoveryCodeSet> = {}): RecoveryCodeSet {
  return {
    userId,
    setId: randomId(),
    // Shaped like the service's scrypt strings: parameters, salt and hash in one value.
    codes: Array.from({ length: 10 }, () => ({ hash: `scrypt$N=16384,r=8,p=1$${randomId(16)}$${randomId(32)}` })),
    createdAt: T0,
    ...overrides,
  };
}

function makeClientCertificate(owner: CertificateOwner, overrides: Partial<ClientCertificate> = {}): ClientCertificate {
  // 16 random bytes with the top bit clear, as the CA service makes them.
  const serial = (0x40 + Math.floor(Math.random() * 0x3f)).toString(16) + randomBytesHex(15);
  return {
    serial,
    fingerprint: randomBytesHex(32),
    owner,
    deviceLabel: 'Work laptop ノートPC',
    keyType: 'ec-p256',
    // Zero and high bytes: a lossy conversion of the DER would show up here.
    certificateDer: new Uint8Array([0x30, 0x82, 0x00, 0xff, ...Array.from({ length: 48 }, (_, i) => (i * 53) & 0xff)]),
    issuedAt: T0,
    expiresAt: T0 + 365 * DAY,
    issuedBy: 'cli',
    status: 'active',
    ...overrides,
  };
}

function randomBytesHex(bytes: number): string {
  return Array.from({ length: bytes }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join('');
}

function makeDelivery(serial: string, overrides: Partial<CertificateDelivery> = {}): CertificateDelivery {
  return {
    serial,
    sealedPkcs12: `v1.sealed.${randomId(48)}`,
    fileName: 'hanako-work-laptop.p12',
    maxDownloads: 3,
    downloads: 0,
    createdAt: T0,
    expiresAt: T0 + 7 * DAY,
    ...overrides,
  };
}

function makeDownloadLink(serial: string, overrides: Partial<CertificateDownloadLink> = {}): CertificateDownloadLink {
  return { id: randomId(32), serial, createdAt: T0, expiresAt: T0 + DAY, createdBy: 'admin', ...overrides };
}

/** A 30-second RFC 6238 time step near T0. */
const STEP = Math.floor(T0 / 30_000);
const WINDOW = 15 * 60_000;

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

      it('round-trips the passkey that signed the session in, through get and listByUser', async () => {
        const userId = randomId();
        const bound = makeSession(userId, {
          authMethods: ['passkey', 'hwk'],
          passkey: { credentialId: randomId(), deviceBound: true, aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8', attested: true },
        });
        const synced = makeSession(userId, {
          createdAt: T0 + 1,
          authMethods: ['passkey', 'swk'],
          passkey: { credentialId: randomId(), deviceBound: false, aaguid: '00000000-0000-0000-0000-000000000000', attested: false },
        });
        await store.sessions.create(bound);
        await store.sessions.create(synced);
        expect(await store.sessions.get(bound.id)).toEqual(bound);
        expect(await store.sessions.get(synced.id)).toEqual(synced);
        expect(await store.sessions.listByUser(userId)).toEqual([bound, synced]);
        await store.sessions.touch(bound.id, T0 + 5);
        expect(await store.sessions.get(bound.id)).toEqual({ ...bound, lastSeenAt: T0 + 5 });
      });

      it('leaves the passkey evidence absent for a session started by another factor', async () => {
        const session = makeSession(randomId(), { authMethods: ['otp'] });
        await store.sessions.create(session);
        const stored = await store.sessions.get(session.id);
        expect(stored).toEqual(session);
        expect(stored && 'passkey' in stored).toBe(false);
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

    describe('credentials: attestation and backup state', () => {
      it('round-trips the attestation format and trust', async () => {
        const trusted = makeCredential(randomId(), { attestationFormat: 'packed', attestationTrusted: true, deviceType: 'singleDevice', backedUp: false });
        const untrusted = makeCredential(randomId(), { attestationFormat: 'none', attestationTrusted: false });
        await store.credentials.create(trusted);
        await store.credentials.create(untrusted);
        expect(await store.credentials.get(trusted.id)).toEqual(trusted);
        expect(await store.credentials.get(untrusted.id)).toEqual(untrusted);
        expect(await store.credentials.listByUser(trusted.userId)).toEqual([trusted]);
      });

      it('leaves the attestation fields absent when none were given', async () => {
        const credential = makeCredential(randomId());
        await store.credentials.create(credential);
        const stored = await store.credentials.get(credential.id);
        expect(stored && 'attestationFormat' in stored).toBe(false);
        expect(stored && 'attestationTrusted' in stored).toBe(false);
      });

      it('updates the backed-up flag on use when given, and keeps it otherwise', async () => {
        const credential = makeCredential(randomId(), { backedUp: false, counter: 0, attestationFormat: 'none' });
        await store.credentials.create(credential);
        await store.credentials.recordUse(credential.id, { expectedCounter: 0, counter: 0, lastUsedAt: T0 + 1 });
        expect((await store.credentials.get(credential.id))?.backedUp).toBe(false);
        await store.credentials.recordUse(credential.id, { expectedCounter: 0, counter: 0, lastUsedAt: T0 + 2, backedUp: true });
        expect(await store.credentials.get(credential.id)).toEqual({ ...credential, backedUp: true, lastUsedAt: T0 + 2 });
        await store.credentials.recordUse(credential.id, { expectedCounter: 0, counter: 0, lastUsedAt: T0 + 3 });
        expect((await store.credentials.get(credential.id))?.backedUp).toBe(true);
        await store.credentials.recordUse(credential.id, { expectedCounter: 0, counter: 0, lastUsedAt: T0 + 4, backedUp: false });
        expect((await store.credentials.get(credential.id))?.backedUp).toBe(false);
      });

      it('does not change the backed-up flag when the counter check refuses the use', async () => {
        const credential = makeCredential(randomId(), { backedUp: false, counter: 5 });
        await store.credentials.create(credential);
        await expect(
          store.credentials.recordUse(credential.id, { expectedCounter: 4, counter: 6, lastUsedAt: T0 + 1, backedUp: true }),
        ).rejects.toBeInstanceOf(ConcurrentUpdateError);
        expect(await store.credentials.get(credential.id)).toEqual(credential);
      });
    });

    describe('enrollment tokens: recovery links and second-channel codes', () => {
      it('round-trips a recovery token with a code hash, through consume', async () => {
        const token = makeToken({ purpose: 'recovery', codeHash: 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg' });
        await store.enrollmentTokens.create(token);
        expect(await store.enrollmentTokens.get(token.id)).toEqual(token);
        expect(await store.enrollmentTokens.consume(token.id, T0 + 1)).toEqual({ ...token, usedAt: T0 + 1 });
      });

      it('leaves codeHash absent when none was given', async () => {
        const token = makeToken();
        await store.enrollmentTokens.create(token);
        const stored = await store.enrollmentTokens.get(token.id);
        expect(stored && 'codeHash' in stored).toBe(false);
      });

      it('deletes unused recovery tokens apart from enroll tokens', async () => {
        const userId = randomId();
        const recovery = makeToken({ purpose: 'recovery', userId });
        const enroll = makeToken({ userId });
        await store.enrollmentTokens.create(recovery);
        await store.enrollmentTokens.create(enroll);
        expect(await store.enrollmentTokens.deleteUnused('recovery', userId)).toBe(1);
        expect(await store.enrollmentTokens.get(recovery.id)).toBeUndefined();
        expect(await store.enrollmentTokens.get(enroll.id)).toEqual(enroll);
      });
    });

    describe('totp', () => {
      it('round-trips an unconfirmed secret, and returns undefined for an unknown user', async () => {
        const secret = makeTotp(randomId());
        await store.totp.put(secret);
        const stored = await store.totp.get(secret.userId);
        expect(stored).toEqual(secret);
        expect(stored && 'confirmedAt' in stored).toBe(false);
        expect(await store.totp.get(randomId())).toBeUndefined();
      });

      it('confirms a secret, keeping the first confirmation time', async () => {
        const secret = makeTotp(randomId());
        await store.totp.put(secret);
        await store.totp.confirm(secret.userId, T0 + 30_000);
        expect(await store.totp.get(secret.userId)).toEqual({ ...secret, confirmed: true, confirmedAt: T0 + 30_000 });
        await store.totp.confirm(secret.userId, T0 + 90_000);
        expect((await store.totp.get(secret.userId))?.confirmedAt).toBe(T0 + 30_000);
      });

      it('throws NotFoundError when confirming a user without a secret, and creates nothing', async () => {
        const userId = randomId();
        await expect(store.totp.confirm(userId, T0)).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.totp.get(userId)).toBeUndefined();
      });

      it('replaces the secret on re-enrollment, which starts unconfirmed', async () => {
        const userId = randomId();
        await store.totp.put(makeTotp(userId));
        await store.totp.confirm(userId, T0 + 1);
        const again = makeTotp(userId, { createdAt: T0 + 60_000 });
        await store.totp.put(again);
        const stored = await store.totp.get(userId);
        expect(stored).toEqual(again);
        expect(stored && 'confirmedAt' in stored).toBe(false);
      });

      it('round-trips a secret stored as already confirmed', async () => {
        const secret = makeTotp(randomId(), { confirmed: true, confirmedAt: T0 + 5 });
        await store.totp.put(secret);
        expect(await store.totp.get(secret.userId)).toEqual(secret);
      });

      it('deletes idempotently, leaving other users alone', async () => {
        const mine = makeTotp(randomId());
        const theirs = makeTotp(randomId());
        await store.totp.put(mine);
        await store.totp.put(theirs);
        await store.totp.delete(mine.userId);
        expect(await store.totp.get(mine.userId)).toBeUndefined();
        await expect(store.totp.delete(mine.userId)).resolves.toBeUndefined();
        expect(await store.totp.get(theirs.userId)).toEqual(theirs);
      });

      it('accepts a time step once per user (RFC 6238 §5.2): a second claim is refused', async () => {
        const userId = randomId();
        const expiresAt = (STEP + 2) * 30_000;
        expect(await store.totp.claimStep(userId, STEP, expiresAt)).toBe(true);
        expect(await store.totp.claimStep(userId, STEP, expiresAt)).toBe(false);
        // The mark is per (user, step): the next step and another user's same step are free.
        expect(await store.totp.claimStep(userId, STEP + 1, expiresAt + 30_000)).toBe(true);
        expect(await store.totp.claimStep(randomId(), STEP, expiresAt)).toBe(true);
      });

      it('lets exactly one of several concurrent claims of a step win', async () => {
        const userId = randomId();
        const results = await Promise.all(
          Array.from({ length: 8 }, () => store.totp.claimStep(userId, STEP, (STEP + 2) * 30_000)),
        );
        expect(results.filter((won) => won)).toHaveLength(1);
      });

      it('keeps step marks when the secret is replaced or deleted', async () => {
        const userId = randomId();
        await store.totp.put(makeTotp(userId));
        expect(await store.totp.claimStep(userId, STEP, (STEP + 2) * 30_000)).toBe(true);
        await store.totp.put(makeTotp(userId));
        await store.totp.delete(userId);
        expect(await store.totp.claimStep(userId, STEP, (STEP + 2) * 30_000)).toBe(false);
      });

      it('refuses a step that is not a non-negative integer', async () => {
        await expect(store.totp.claimStep(randomId(), 1.5, T0)).rejects.toBeInstanceOf(StoreError);
        await expect(store.totp.claimStep(randomId(), -1, T0)).rejects.toBeInstanceOf(StoreError);
      });
    });

    describe('recovery codes', () => {
      it('round-trips a set, keeping code order and used marks', async () => {
        const base = makeRecoverySet(randomId());
        const set: RecoveryCodeSet = { ...base, codes: base.codes.map((c, i) => (i === 3 ? { ...c, usedAt: T0 + 3 } : c)) };
        await store.recoveryCodes.replace(set);
        const stored = await store.recoveryCodes.get(set.userId);
        expect(stored).toEqual(set);
        expect(stored?.codes.filter((c) => 'usedAt' in c)).toHaveLength(1);
        expect(await store.recoveryCodes.get(randomId())).toBeUndefined();
      });

      it('marks a code used once; a second use of it is refused', async () => {
        const set = makeRecoverySet(randomId());
        await store.recoveryCodes.replace(set);
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, 4, T0 + 100)).toBe(true);
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, 4, T0 + 200)).toBe(false);
        const stored = await store.recoveryCodes.get(set.userId);
        expect(stored?.codes[4]).toEqual({ hash: set.codes[4]!.hash, usedAt: T0 + 100 });
        expect(stored?.codes.filter((c) => c.usedAt !== undefined)).toHaveLength(1);
        // Other codes of the set still work.
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, 5, T0 + 300)).toBe(true);
      });

      it('refuses a code of a replaced set, and the new set starts unused', async () => {
        const userId = randomId();
        const old = makeRecoverySet(userId);
        await store.recoveryCodes.replace(old);
        expect(await store.recoveryCodes.markUsed(userId, old.setId, 0, T0)).toBe(true);
        const fresh = makeRecoverySet(userId, { createdAt: T0 + DAY });
        await store.recoveryCodes.replace(fresh);
        expect(await store.recoveryCodes.get(userId)).toEqual(fresh);
        expect(await store.recoveryCodes.markUsed(userId, old.setId, 1, T0 + 1)).toBe(false);
        expect(await store.recoveryCodes.markUsed(userId, old.setId, 0, T0 + 1)).toBe(false);
        expect(await store.recoveryCodes.get(userId)).toEqual(fresh);
        expect(await store.recoveryCodes.markUsed(userId, fresh.setId, 0, T0 + 2)).toBe(true);
      });

      it('lets exactly one of several concurrent uses of a code win', async () => {
        const set = makeRecoverySet(randomId());
        await store.recoveryCodes.replace(set);
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) => store.recoveryCodes.markUsed(set.userId, set.setId, 7, T0 + i)),
        );
        expect(results.filter((won) => won)).toHaveLength(1);
        const usedAt = (await store.recoveryCodes.get(set.userId))?.codes[7]?.usedAt;
        expect(usedAt).toBe(T0 + results.indexOf(true));
      });

      it("refuses indexes outside the set, another user's set id, and users without a set", async () => {
        const set = makeRecoverySet(randomId());
        const other = makeRecoverySet(randomId());
        await store.recoveryCodes.replace(set);
        await store.recoveryCodes.replace(other);
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, 10, T0)).toBe(false);
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, -1, T0)).toBe(false);
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, 1.5, T0)).toBe(false);
        expect(await store.recoveryCodes.markUsed(set.userId, other.setId, 0, T0)).toBe(false);
        expect(await store.recoveryCodes.markUsed(randomId(), set.setId, 0, T0)).toBe(false);
        expect(await store.recoveryCodes.get(set.userId)).toEqual(set);
        expect(await store.recoveryCodes.get(other.userId)).toEqual(other);
      });

      it('deletes idempotently; a deleted set cannot be used', async () => {
        const set = makeRecoverySet(randomId());
        await store.recoveryCodes.replace(set);
        await store.recoveryCodes.delete(set.userId);
        expect(await store.recoveryCodes.get(set.userId)).toBeUndefined();
        expect(await store.recoveryCodes.markUsed(set.userId, set.setId, 0, T0)).toBe(false);
        await expect(store.recoveryCodes.delete(set.userId)).resolves.toBeUndefined();
      });
    });

    describe('login throttle', () => {
      const userKey = (): string => `user:${randomId()}`;

      it('starts a window at the first failure and counts within it', async () => {
        const key = userKey();
        const first = await store.loginThrottle.recordFailure(key, T0, WINDOW);
        expect(first).toEqual({ key, failures: 1, windowStartedAt: T0, expiresAt: T0 + WINDOW });
        expect(await store.loginThrottle.recordFailure(key, T0 + 1_000, WINDOW)).toEqual({ ...first, failures: 2 });
        const third = await store.loginThrottle.recordFailure(key, T0 + 2_000, WINDOW);
        expect(third).toEqual({ ...first, failures: 3 });
        expect(await store.loginThrottle.get(key)).toEqual(third);
        expect(await store.loginThrottle.get(userKey())).toBeUndefined();
      });

      it('restarts the window only once it started more than windowMs ago', async () => {
        const key = `ip:198.51.100.7`;
        await store.loginThrottle.recordFailure(key, T0, WINDOW);
        // Exactly windowMs later the window is still current…
        expect(await store.loginThrottle.recordFailure(key, T0 + WINDOW, WINDOW)).toMatchObject({ failures: 2, windowStartedAt: T0 });
        // …one millisecond more and it starts again.
        const restarted = await store.loginThrottle.recordFailure(key, T0 + WINDOW + 1, WINDOW);
        expect(restarted).toEqual({ key, failures: 1, windowStartedAt: T0 + WINDOW + 1, expiresAt: T0 + 2 * WINDOW + 1 });
        expect(await store.loginThrottle.get(key)).toEqual(restarted);
      });

      it('never loses a count among many concurrent failures', async () => {
        const key = userKey();
        const n = 20;
        const results = await Promise.all(
          Array.from({ length: n }, (_, i) => store.loginThrottle.recordFailure(key, T0 + i, WINDOW)),
        );
        expect((await store.loginThrottle.get(key))?.failures).toBe(n);
        // Every caller saw a different count: none of the increments was folded into another.
        expect(results.map((r) => r.failures).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      });

      it('restarts a stale window once among many concurrent failures, and counts them all', async () => {
        const key = userKey();
        for (let i = 0; i < 3; i++) await store.loginThrottle.recordFailure(key, T0, WINDOW);
        const later = T0 + 2 * WINDOW;
        const n = 12;
        await Promise.all(Array.from({ length: n }, () => store.loginThrottle.recordFailure(key, later, WINDOW)));
        expect(await store.loginThrottle.get(key)).toEqual({ key, failures: n, windowStartedAt: later, expiresAt: later + WINDOW });
      });

      it('locks a key, keeping the failure count, and lists it until the lock ends', async () => {
        const key = userKey();
        for (let i = 0; i < 5; i++) await store.loginThrottle.recordFailure(key, T0 + i, WINDOW);
        const until = T0 + 2 * WINDOW;
        await store.loginThrottle.lock(key, until);
        const locked: LoginThrottle = { key, failures: 5, windowStartedAt: T0, lockedUntil: until, expiresAt: until };
        expect(await store.loginThrottle.get(key)).toEqual(locked);
        expect(await store.loginThrottle.listLocked('user:', T0 + 10)).toEqual([locked]);
        expect(await store.loginThrottle.listLocked('user:', until - 1)).toEqual([locked]);
        // lockedUntil is exclusive: at that moment the key is no longer locked.
        expect(await store.loginThrottle.listLocked('user:', until)).toEqual([]);
      });

      it('keeps expiresAt at the later of window end and lock end', async () => {
        const key = userKey();
        await store.loginThrottle.recordFailure(key, T0, WINDOW);
        await store.loginThrottle.lock(key, T0 + 60_000);
        expect((await store.loginThrottle.get(key))?.expiresAt).toBe(T0 + WINDOW);
        await store.loginThrottle.lock(key, T0 + 3 * WINDOW);
        expect((await store.loginThrottle.get(key))?.expiresAt).toBe(T0 + 3 * WINDOW);
        // Shortening the lock brings expiry back to the window end, not to the old lock end.
        await store.loginThrottle.lock(key, T0 + 120_000);
        expect(await store.loginThrottle.get(key)).toEqual({
          key,
          failures: 1,
          windowStartedAt: T0,
          lockedUntil: T0 + 120_000,
          expiresAt: T0 + WINDOW,
        });
      });

      it('keeps a running lock when a new window starts', async () => {
        const key = userKey();
        await store.loginThrottle.recordFailure(key, T0, WINDOW);
        const until = T0 + 10 * WINDOW;
        await store.loginThrottle.lock(key, until);
        const later = T0 + 2 * WINDOW;
        expect(await store.loginThrottle.recordFailure(key, later, WINDOW)).toEqual({
          key,
          failures: 1,
          windowStartedAt: later,
          lockedUntil: until,
          expiresAt: until,
        });
        expect((await store.loginThrottle.listLocked('user:', later)).map((t) => t.key)).toEqual([key]);
      });

      it('locks a key that has no record, with no failures and no current window', async () => {
        const key = userKey();
        await store.loginThrottle.lock(key, T0 + WINDOW);
        expect(await store.loginThrottle.get(key)).toEqual({ key, failures: 0, windowStartedAt: 0, lockedUntil: T0 + WINDOW, expiresAt: T0 + WINDOW });
        expect(await store.loginThrottle.recordFailure(key, T0, WINDOW)).toEqual({
          key,
          failures: 1,
          windowStartedAt: T0,
          lockedUntil: T0 + WINDOW,
          expiresAt: T0 + WINDOW,
        });
      });

      it('clears a key entirely and idempotently', async () => {
        const key = userKey();
        await store.loginThrottle.recordFailure(key, T0, WINDOW);
        await store.loginThrottle.lock(key, T0 + WINDOW);
        await store.loginThrottle.clear(key);
        expect(await store.loginThrottle.get(key)).toBeUndefined();
        expect(await store.loginThrottle.listLocked('user:', T0)).toEqual([]);
        await expect(store.loginThrottle.clear(key)).resolves.toBeUndefined();
        // A failure after clearing starts from scratch.
        expect(await store.loginThrottle.recordFailure(key, T0 + 1, WINDOW)).toEqual({ key, failures: 1, windowStartedAt: T0 + 1, expiresAt: T0 + 1 + WINDOW });
      });

      it('lists only keys locked at `now` under the prefix, ordered by key', async () => {
        const now = T0 + 1_000;
        const keys = {
          lockedB: 'user:bbb',
          lockedA: 'user:aaa',
          ended: 'user:ccc',
          unlocked: 'user:ddd',
          ip: 'ip:2001:db8::7',
          lookalike: 'username:aaa',
        };
        for (const key of Object.values(keys)) await store.loginThrottle.recordFailure(key, T0, WINDOW);
        await store.loginThrottle.lock(keys.lockedB, now + 60_000);
        await store.loginThrottle.lock(keys.lockedA, now + 120_000);
        await store.loginThrottle.lock(keys.ended, now);
        await store.loginThrottle.lock(keys.ip, now + 60_000);
        await store.loginThrottle.lock(keys.lookalike, now + 60_000);

        expect((await store.loginThrottle.listLocked('user:', now)).map((t) => t.key)).toEqual(['user:aaa', 'user:bbb']);
        expect((await store.loginThrottle.listLocked('ip:', now)).map((t) => t.key)).toEqual([keys.ip]);
        expect((await store.loginThrottle.listLocked('', now)).map((t) => t.key)).toEqual([
          keys.ip,
          'user:aaa',
          'user:bbb',
          'username:aaa',
        ]);
        expect(await store.loginThrottle.listLocked('user:', now + 120_000)).toEqual([]);
        expect((await store.loginThrottle.listLocked('user:', now))[0]).toEqual(await store.loginThrottle.get('user:aaa'));
      });

      it('treats % and _ in a prefix literally', async () => {
        await store.loginThrottle.lock('ip:10_0', T0 + WINDOW);
        await store.loginThrottle.lock('ip:1000', T0 + WINDOW);
        expect((await store.loginThrottle.listLocked('ip:10_', T0)).map((t) => t.key)).toEqual(['ip:10_0']);
        expect(await store.loginThrottle.listLocked('ip:%', T0)).toEqual([]);
      });
    });

    describe('certificate authority', () => {
      it('round-trips the CA and refuses a second one with the same id', async () => {
        const ca = { id: 'default', certificateDer: new Uint8Array([0x30, 0x00, 0xff, 0x80]), sealedPrivateKey: 'v1.sealed.ca', createdAt: T0 };
        expect(await store.certificateAuthorities.get('default')).toBeUndefined();
        await store.certificateAuthorities.create(ca);
        expect(await store.certificateAuthorities.get('default')).toEqual(ca);
        await expect(store.certificateAuthorities.create({ ...ca, sealedPrivateKey: 'v1.sealed.other' })).rejects.toBeInstanceOf(
          CertificateAuthorityExistsError,
        );
        expect(await store.certificateAuthorities.get('default')).toEqual(ca);
      });

      it('lets exactly one of several racing creations win', async () => {
        const attempts = Array.from({ length: 6 }, (_, i) =>
          store.certificateAuthorities.create({ id: 'default', certificateDer: new Uint8Array([i]), sealedPrivateKey: `sealed-${i}`, createdAt: T0 + i }),
        );
        const { won, lost } = await race(attempts);
        expect(won).toHaveLength(1);
        expect(lost.every((e) => e instanceof CertificateAuthorityExistsError)).toBe(true);
        const stored = await store.certificateAuthorities.get('default');
        expect(stored?.sealedPrivateKey).toBe(`sealed-${stored?.certificateDer[0]}`);
      });
    });

    describe('client certificates', () => {
      it('round-trips every field, and refuses a second certificate with the same serial', async () => {
        const user: CertificateOwner = { kind: 'user', userId: randomId() };
        const plain = makeClientCertificate(user);
        const renewal = makeClientCertificate(user, { keyType: 'rsa-2048', renewalOf: plain.serial, issuedAt: T0 + 1 });
        await store.clientCertificates.create(plain);
        await store.clientCertificates.create(renewal);
        expect(await store.clientCertificates.get(plain.serial)).toEqual(plain);
        expect(await store.clientCertificates.get(renewal.serial)).toEqual(renewal);
        expect(await store.clientCertificates.get('7fffffff')).toBeUndefined();
        await expect(store.clientCertificates.create({ ...plain, owner: { kind: 'user', userId: randomId() } })).rejects.toBeInstanceOf(CertificateExistsError);
        expect(await store.clientCertificates.get(plain.serial)).toEqual(plain);
      });

      it("lists a user's certificates oldest first, and shared ones by label", async () => {
        const alice: CertificateOwner = { kind: 'user', userId: randomId() };
        const kiosk: CertificateOwner = { kind: 'shared', label: 'kiosk-1' };
        const lobby: CertificateOwner = { kind: 'shared', label: 'lobby' };
        const a2 = makeClientCertificate(alice, { issuedAt: T0 + 2 });
        const a1 = makeClientCertificate(alice, { issuedAt: T0 + 1 });
        const other = makeClientCertificate({ kind: 'user', userId: randomId() });
        const k2 = makeClientCertificate(kiosk, { issuedAt: T0 + 5 });
        const k1 = makeClientCertificate(kiosk, { issuedAt: T0 + 4 });
        const l1 = makeClientCertificate(lobby, { issuedAt: T0 });
        for (const c of [a2, a1, other, k2, k1, l1]) await store.clientCertificates.create(c);

        expect(await store.clientCertificates.listByOwner(alice)).toEqual([a1, a2]);
        expect(await store.clientCertificates.listByOwner(kiosk)).toEqual([k1, k2]);
        // A label that is a prefix of another must not pick up the other's certificates.
        expect(await store.clientCertificates.listByOwner({ kind: 'shared', label: 'kiosk' })).toEqual([]);
        expect(await store.clientCertificates.listShared()).toEqual([k1, k2, l1]);
        expect(await store.clientCertificates.listByOwner({ kind: 'user', userId: randomId() })).toEqual([]);
      });

      it('enforces the active limit per owner; revoked, deleted and expired certificates do not count', async () => {
        const owner: CertificateOwner = { kind: 'user', userId: randomId() };
        const limit = { maxActive: 2, now: T0 };
        const first = makeClientCertificate(owner);
        const second = makeClientCertificate(owner);
        await store.clientCertificates.create(first, limit);
        await store.clientCertificates.create(second, limit);
        await expect(store.clientCertificates.create(makeClientCertificate(owner), limit)).rejects.toBeInstanceOf(CertificateLimitError);
        // Another owner has their own allowance; without a limit there is no check.
        await store.clientCertificates.create(makeClientCertificate({ kind: 'user', userId: randomId() }), limit);
        const unlimited = makeClientCertificate(owner);
        await store.clientCertificates.create(unlimited);

        const afterRevoke = makeClientCertificate(owner);
        await store.clientCertificates.revoke(first.serial, T0, 'keyCompromise');
        await store.clientCertificates.revoke(unlimited.serial, T0, 'superseded');
        await store.clientCertificates.create(afterRevoke, limit);
        await expect(store.clientCertificates.create(makeClientCertificate(owner), limit)).rejects.toBeInstanceOf(CertificateLimitError);

        await store.clientCertificates.markDeleted(second.serial, T0);
        const afterDelete = makeClientCertificate(owner);
        await store.clientCertificates.create(afterDelete, limit);
        await expect(store.clientCertificates.create(makeClientCertificate(owner), limit)).rejects.toBeInstanceOf(CertificateLimitError);

        // At a time when both live certificates have expired, there is room again.
        await store.clientCertificates.create(makeClientCertificate(owner, { issuedAt: T0 + 400 * DAY, expiresAt: T0 + 765 * DAY }), { maxActive: 1, now: T0 + 366 * DAY });
      });

      it('lets only maxActive of several racing issuances for one owner through', async () => {
        const owner: CertificateOwner = { kind: 'user', userId: randomId() };
        const attempts = Array.from({ length: 6 }, () => store.clientCertificates.create(makeClientCertificate(owner), { maxActive: 2, now: T0 }));
        const { won, lost } = await race(attempts);
        expect(won).toHaveLength(2);
        // A node that keeps losing the race may give up with ConcurrentUpdateError; none may pass the limit.
        expect(lost.every((e) => e instanceof CertificateLimitError || e instanceof ConcurrentUpdateError)).toBe(true);
        expect((await store.clientCertificates.listByOwner(owner)).filter((c) => c.status === 'active')).toHaveLength(2);
      });

      it('revokes once: a second revocation changes nothing', async () => {
        const cert = makeClientCertificate({ kind: 'user', userId: randomId() });
        await store.clientCertificates.create(cert);
        const first = await store.clientCertificates.revoke(cert.serial, T0 + 10, 'keyCompromise');
        const revoked = { ...cert, status: 'revoked' as const, revokedAt: T0 + 10, revocationReason: 'keyCompromise' as const };
        expect(first).toEqual({ certificate: revoked, changed: true });
        expect(await store.clientCertificates.get(cert.serial)).toEqual(revoked);
        expect(await store.clientCertificates.revoke(cert.serial, T0 + 20, 'superseded')).toEqual({ certificate: revoked, changed: false });
        await expect(store.clientCertificates.revoke('7ffff0', T0, 'unspecified')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('deletes as a tombstone, revoking an active certificate on the way', async () => {
        const owner: CertificateOwner = { kind: 'shared', label: 'reception' };
        const active = makeClientCertificate(owner);
        const revoked = makeClientCertificate(owner, { issuedAt: T0 + 1 });
        await store.clientCertificates.create(active);
        await store.clientCertificates.create(revoked);
        await store.clientCertificates.revoke(revoked.serial, T0 + 5, 'affiliationChanged');

        const deletedActive = { ...active, status: 'deleted' as const, deletedAt: T0 + 9, revokedAt: T0 + 9, revocationReason: 'cessationOfOperation' as const };
        expect(await store.clientCertificates.markDeleted(active.serial, T0 + 9)).toEqual({ certificate: deletedActive, changed: true });
        const deletedRevoked = { ...revoked, status: 'deleted' as const, deletedAt: T0 + 9, revokedAt: T0 + 5, revocationReason: 'affiliationChanged' as const };
        expect(await store.clientCertificates.markDeleted(revoked.serial, T0 + 9)).toEqual({ certificate: deletedRevoked, changed: true });
        expect(await store.clientCertificates.markDeleted(active.serial, T0 + 30)).toEqual({ certificate: deletedActive, changed: false });
        expect(await store.clientCertificates.get(active.serial)).toEqual(deletedActive);
        expect(await store.clientCertificates.listByOwner(owner)).toEqual([deletedActive, deletedRevoked]);
        // A deleted certificate is never revived by a revocation.
        expect((await store.clientCertificates.revoke(active.serial, T0 + 40, 'keyCompromise')).changed).toBe(false);
        await expect(store.clientCertificates.markDeleted('7ffff1', T0)).rejects.toBeInstanceOf(NotFoundError);
      });

      it('lists every revocation for the CRL, ordered by serial, deleted ones included', async () => {
        const owner: CertificateOwner = { kind: 'user', userId: randomId() };
        const certs = Array.from({ length: 4 }, () => makeClientCertificate(owner));
        for (const c of certs) await store.clientCertificates.create(c);
        expect(await store.clientCertificates.listRevoked()).toEqual([]);
        await store.clientCertificates.revoke(certs[0]!.serial, T0 + 1, 'keyCompromise');
        await store.clientCertificates.revoke(certs[0]!.serial, T0 + 2, 'superseded');
        await store.clientCertificates.markDeleted(certs[1]!.serial, T0 + 3);
        await store.clientCertificates.revoke(certs[2]!.serial, T0 + 4, 'privilegeWithdrawn');
        const expected = [
          { serial: certs[0]!.serial, revokedAt: T0 + 1, reason: 'keyCompromise', expiresAt: certs[0]!.expiresAt },
          { serial: certs[1]!.serial, revokedAt: T0 + 3, reason: 'cessationOfOperation', expiresAt: certs[1]!.expiresAt },
          { serial: certs[2]!.serial, revokedAt: T0 + 4, reason: 'privilegeWithdrawn', expiresAt: certs[2]!.expiresAt },
        ].sort((a, b) => (a.serial < b.serial ? -1 : 1));
        expect(await store.clientCertificates.listRevoked()).toEqual(expected);
      });

      it('lists active certificates expiring in a window, soonest first', async () => {
        const owner: CertificateOwner = { kind: 'user', userId: randomId() };
        const at = (days: number) => makeClientCertificate(owner, { expiresAt: T0 + days * DAY });
        const [d5, d10, d30, d31, d3] = [at(5), at(10), at(30), at(31), at(3)];
        for (const c of [d5, d10, d30, d31, d3]) await store.clientCertificates.create(c);
        await store.clientCertificates.revoke(d10.serial, T0, 'unspecified');
        // after is exclusive, until inclusive.
        expect(await store.clientCertificates.listExpiring(T0 + 3 * DAY, T0 + 30 * DAY)).toEqual([d5, d30]);
        expect(await store.clientCertificates.listExpiring(T0, T0 + 30 * DAY)).toEqual([d3, d5, d30]);
        expect(await store.clientCertificates.listExpiring(T0 + 31 * DAY, T0 + 40 * DAY)).toEqual([]);
        await store.clientCertificates.markDeleted(d3.serial, T0);
        expect(await store.clientCertificates.listExpiring(T0, T0 + 40 * DAY)).toEqual([d5, d30, d31]);
      });
    });

    describe('certificate deliveries and download links', () => {
      it('counts downloads up to the limit and forgets the file after the last one', async () => {
        const delivery = makeDelivery('4a01', { maxDownloads: 2 });
        await store.certificateDeliveries.create(delivery);
        expect(await store.certificateDeliveries.get('4a01')).toEqual(delivery);
        await expect(store.certificateDeliveries.create(delivery)).rejects.toBeInstanceOf(StoreError);
        expect(await store.certificateDeliveries.claimDownload('4a01', T0 + 1)).toEqual({ ...delivery, downloads: 1 });
        expect(await store.certificateDeliveries.claimDownload('4a01', T0 + 2)).toEqual({ ...delivery, downloads: 2 });
        expect(await store.certificateDeliveries.get('4a01')).toBeUndefined();
        expect(await store.certificateDeliveries.claimDownload('4a01', T0 + 3)).toBeUndefined();
        expect(await store.certificateDeliveries.claimDownload('4aff', T0)).toBeUndefined();
      });

      it('refuses a download after expiry, and deletes idempotently', async () => {
        const delivery = makeDelivery('4a02');
        await store.certificateDeliveries.create(delivery);
        expect(await store.certificateDeliveries.claimDownload('4a02', delivery.expiresAt)).toBeUndefined();
        expect(await store.certificateDeliveries.get('4a02')).toEqual(delivery);
        await store.certificateDeliveries.delete('4a02');
        await store.certificateDeliveries.delete('4a02');
        expect(await store.certificateDeliveries.get('4a02')).toBeUndefined();
      });

      it('lets only maxDownloads of several racing downloads through', async () => {
        await store.certificateDeliveries.create(makeDelivery('4a03', { maxDownloads: 2 }));
        const results = await Promise.all(Array.from({ length: 6 }, (_, i) => store.certificateDeliveries.claimDownload('4a03', T0 + i)));
        expect(results.filter((r) => r !== undefined).map((r) => r!.downloads).sort()).toEqual([1, 2]);
      });

      it('uses a link once, and names why a link is refused', async () => {
        const link = makeDownloadLink('4a04');
        const expired = makeDownloadLink('4a04', { expiresAt: T0 + 10 });
        await store.certificateDeliveries.createLink(link);
        await store.certificateDeliveries.createLink(expired);
        await expect(store.certificateDeliveries.createLink(link)).rejects.toBeInstanceOf(StoreError);
        expect(await store.certificateDeliveries.consumeLink(link.id, T0 + 1)).toEqual({ ...link, usedAt: T0 + 1 });
        await expect(store.certificateDeliveries.consumeLink(link.id, T0 + 2)).rejects.toMatchObject({ reason: 'used' });
        await expect(store.certificateDeliveries.consumeLink(expired.id, T0 + 10)).rejects.toMatchObject({ reason: 'expired' });
        await expect(store.certificateDeliveries.consumeLink(randomId(32), T0)).rejects.toBeInstanceOf(DownloadLinkUnusableError);
      });

      it('lets exactly one of several racing uses of a link win', async () => {
        const link = makeDownloadLink('4a05');
        await store.certificateDeliveries.createLink(link);
        const { won, lost } = await race(Array.from({ length: 6 }, () => store.certificateDeliveries.consumeLink(link.id, T0 + 1)));
        expect(won).toHaveLength(1);
        expect(lost.every((e) => e instanceof DownloadLinkUnusableError && e.reason === 'used')).toBe(true);
      });

      it(sweepRemovesExpired ? 'are swept once expired, live ones kept' : 'keep live deliveries and links through a sweep', async () => {
        const now = T0 + DAY;
        const live = makeDelivery('4a06', { expiresAt: now + 60_000 });
        const old = makeDelivery('4a07', { expiresAt: now });
        const liveLink = makeDownloadLink('4a06', { expiresAt: now + 60_000 });
        const oldLink = makeDownloadLink('4a07', { expiresAt: now - 1 });
        await store.certificateDeliveries.create(live);
        await store.certificateDeliveries.create(old);
        await store.certificateDeliveries.createLink(liveLink);
        await store.certificateDeliveries.createLink(oldLink);
        await expect(store.sweepExpired(now)).resolves.toBeUndefined();
        expect(await store.certificateDeliveries.get('4a06')).toEqual(live);
        expect(await store.certificateDeliveries.consumeLink(liveLink.id, now)).toEqual({ ...liveLink, usedAt: now });
        if (sweepRemovesExpired) {
          expect(await store.certificateDeliveries.get('4a07')).toBeUndefined();
          await expect(store.certificateDeliveries.consumeLink(oldLink.id, now)).rejects.toMatchObject({ reason: 'unknown' });
        }
      });
    });

    describe('documents', () => {
      // A kind per test run, so DynamoDB Local's shared table never mixes runs.
      const kind = () => `test-${randomId().toLowerCase().replace(/[^a-z0-9]/g, 'x').slice(0, 20)}`;

      it('creates at version 1, reads back, and counts versions up', async () => {
        const k = kind();
        const first = await store.documents.put({ kind: k, id: 'a', body: '{"n":1}' }, { now: T0 });
        expect(first).toEqual({ kind: k, id: 'a', body: '{"n":1}', version: 1, updatedAt: T0 });
        expect(await store.documents.get(k, 'a', T0)).toEqual(first);
        const second = await store.documents.put({ kind: k, id: 'a', body: '{"n":2}' }, { now: T0 + 1, expectedVersion: 1 });
        expect(second.version).toBe(2);
        expect(await store.documents.get(k, 'a', T0 + 1)).toEqual(second);
        const third = await store.documents.put({ kind: k, id: 'a', body: '{"n":3}' }, { now: T0 + 2 });
        expect(third.version).toBe(3);
      });

      it('refuses a write on a stale version, and a create over an existing document', async () => {
        const k = kind();
        await store.documents.put({ kind: k, id: 'a', body: 'one' }, { now: T0, expectedVersion: 0 });
        await expect(store.documents.put({ kind: k, id: 'a', body: 'again' }, { now: T0, expectedVersion: 0 })).rejects.toBeInstanceOf(ConcurrentUpdateError);
        await store.documents.put({ kind: k, id: 'a', body: 'two' }, { now: T0, expectedVersion: 1 });
        await expect(store.documents.put({ kind: k, id: 'a', body: 'stale' }, { now: T0, expectedVersion: 1 })).rejects.toBeInstanceOf(ConcurrentUpdateError);
        await expect(store.documents.put({ kind: k, id: 'b', body: 'missing' }, { now: T0, expectedVersion: 3 })).rejects.toBeInstanceOf(ConcurrentUpdateError);
        expect((await store.documents.get(k, 'a', T0))?.body).toBe('two');
      });

      it('lets exactly one of two racing creates win', async () => {
        const k = kind();
        const results = await Promise.allSettled([
          store.documents.put({ kind: k, id: 'race', body: 'x' }, { now: T0, expectedVersion: 0 }),
          store.documents.put({ kind: k, id: 'race', body: 'y' }, { now: T0, expectedVersion: 0 }),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof ConcurrentUpdateError)).toHaveLength(1);
      });

      it('treats an expired document as absent, for reads, lists and creates', async () => {
        const k = kind();
        await store.documents.put({ kind: k, id: 'e', body: 'old', expiresAt: T0 + 1000 }, { now: T0 });
        expect((await store.documents.get(k, 'e', T0 + 999))?.expiresAt).toBe(T0 + 1000);
        expect(await store.documents.get(k, 'e', T0 + 1000)).toBeUndefined();
        expect((await store.documents.list(k, { now: T0 + 1000 })).documents).toEqual([]);
        await expect(store.documents.put({ kind: k, id: 'e', body: 'stale' }, { now: T0 + 1000, expectedVersion: 1 })).rejects.toBeInstanceOf(ConcurrentUpdateError);
        const fresh = await store.documents.put({ kind: k, id: 'e', body: 'new' }, { now: T0 + 1000, expectedVersion: 0 });
        expect(fresh).toMatchObject({ body: 'new', version: 1 });
        expect(fresh.expiresAt).toBeUndefined();
        expect((await store.documents.get(k, 'e', T0 + 5000))?.body).toBe('new');
      });

      it('lists in id order, by prefix, page by page', async () => {
        const k = kind();
        const ids = ['user:b', 'user:a', 'route:x', 'user:c', 'user:a%', 'user_z'];
        for (const id of ids) await store.documents.put({ kind: k, id, body: id }, { now: T0 });
        await store.documents.put({ kind: kind(), id: 'user:other-kind', body: '' }, { now: T0 });
        const all = await store.documents.list(k, { now: T0 });
        expect(all.documents.map((d) => d.id)).toEqual([...ids].sort());
        expect(all.cursor).toBeUndefined();
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.documents.list(k, { now: T0, prefix: 'user:', limit: 2, ...(cursor ? { cursor } : {}) });
          expect(page.documents.length).toBeLessThanOrEqual(2);
          seen.push(...page.documents.map((d) => d.id));
          cursor = page.cursor;
        } while (cursor);
        expect(seen).toEqual(['user:a', 'user:a%', 'user:b', 'user:c']);
      });

      it('deletes, and refuses a delete on a stale version', async () => {
        const k = kind();
        await store.documents.put({ kind: k, id: 'd', body: '1' }, { now: T0 });
        await store.documents.put({ kind: k, id: 'd', body: '2' }, { now: T0 });
        await expect(store.documents.delete(k, 'd', 1)).rejects.toBeInstanceOf(ConcurrentUpdateError);
        expect(await store.documents.delete(k, 'd', 2)).toBe(true);
        expect(await store.documents.get(k, 'd', T0)).toBeUndefined();
        expect(await store.documents.delete(k, 'd')).toBe(false);
      });

      it('refuses bad kinds, ids, bodies and cursors with a named error', async () => {
        const k = kind();
        await expect(store.documents.put({ kind: 'Bad Kind', id: 'a', body: '' }, { now: T0 })).rejects.toBeInstanceOf(StoreError);
        await expect(store.documents.put({ kind: k, id: '', body: '' }, { now: T0 })).rejects.toBeInstanceOf(StoreError);
        await expect(store.documents.put({ kind: k, id: 'a\u0000b', body: '' }, { now: T0 })).rejects.toBeInstanceOf(StoreError);
        await expect(store.documents.put({ kind: k, id: 'x'.repeat(513), body: '' }, { now: T0 })).rejects.toBeInstanceOf(StoreError);
        await expect(store.documents.put({ kind: k, id: 'big', body: 'x'.repeat(DOCUMENT_BODY_LIMIT + 1) }, { now: T0 })).rejects.toBeInstanceOf(StoreError);
        await expect(store.documents.list(k, { now: T0, cursor: '../../etc' })).rejects.toBeInstanceOf(StoreError);
        // Japanese text counts in bytes, and a body at the limit is accepted.
        const atLimit = 'あ'.repeat(Math.floor(DOCUMENT_BODY_LIMIT / 3));
        expect((await store.documents.put({ kind: k, id: 'ja', body: atLimit }, { now: T0 })).body).toBe(atLimit);
      });

      it('leases: one holder at a time, renewal, expiry and release', async () => {
        const name = `job-${randomId().toLowerCase()}`;
        const a = await acquireLease(store.documents, { name, holder: 'node-a', ttlMs: 10_000, now: T0 });
        expect(a).toMatchObject({ name, holder: 'node-a', expiresAt: T0 + 10_000 });
        expect(await acquireLease(store.documents, { name, holder: 'node-b', ttlMs: 10_000, now: T0 + 1 })).toBeUndefined();
        expect(await leaseHolder(store.documents, name, T0 + 1)).toEqual({ holder: 'node-a', expiresAt: T0 + 10_000 });
        const renewed = await renewLease(store.documents, a!, { ttlMs: 10_000, now: T0 + 5000 });
        expect(renewed?.expiresAt).toBe(T0 + 15_000);
        // The stale handle cannot renew: only the newest write holds.
        expect(await renewLease(store.documents, a!, { ttlMs: 10_000, now: T0 + 5001 })).toBeUndefined();
        // Expired: another node takes it, and the old holder has lost it.
        const b = await acquireLease(store.documents, { name, holder: 'node-b', ttlMs: 10_000, now: T0 + 15_000 });
        expect(b?.holder).toBe('node-b');
        expect(await renewLease(store.documents, renewed!, { ttlMs: 10_000, now: T0 + 15_001 })).toBeUndefined();
        await releaseLease(store.documents, renewed!); // lost: harmless
        expect((await leaseHolder(store.documents, name, T0 + 15_002))?.holder).toBe('node-b');
        await releaseLease(store.documents, b!);
        expect(await leaseHolder(store.documents, name, T0 + 15_003)).toBeUndefined();
        const racers = await Promise.all(
          ['n1', 'n2', 'n3', 'n4'].map((holder) => acquireLease(store.documents, { name, holder, ttlMs: 10_000, now: T0 + 20_000 })),
        );
        expect(racers.filter(Boolean)).toHaveLength(1);
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

      it(
        sweepRemovesExpired ? 'removes expired TOTP step marks and throttle records only' : 'keeps live step marks and throttle records',
        async () => {
          const now = T0 + DAY;
          const userId = randomId();
          expect(await store.totp.claimStep(userId, STEP, now - 1)).toBe(true);
          expect(await store.totp.claimStep(userId, STEP + 1, now + 60_000)).toBe(true);
          // Window ended at now - WINDOW: forgettable. Window still running: kept. Window over
          // but locked past now: kept, since forgetting it would end the lock early.
          await store.loginThrottle.recordFailure('ip:192.0.2.1', now - 2 * WINDOW, WINDOW);
          const live = await store.loginThrottle.recordFailure('ip:192.0.2.2', now - 1_000, WINDOW);
          await store.loginThrottle.recordFailure('user:locked', now - 2 * WINDOW, WINDOW);
          await store.loginThrottle.lock('user:locked', now + 60_000);
          const secret = makeTotp(userId, { confirmed: true, confirmedAt: T0 });
          const codes = makeRecoverySet(userId);
          await store.totp.put(secret);
          await store.recoveryCodes.replace(codes);

          await expect(store.sweepExpired(now)).resolves.toBeUndefined();

          expect(await store.totp.claimStep(userId, STEP + 1, now + 60_000)).toBe(false);
          expect(await store.loginThrottle.get('ip:192.0.2.2')).toEqual(live);
          expect((await store.loginThrottle.get('user:locked'))?.lockedUntil).toBe(now + 60_000);
          expect((await store.loginThrottle.listLocked('user:', now)).map((t) => t.key)).toEqual(['user:locked']);
          expect(await store.totp.get(userId)).toEqual(secret);
          expect(await store.recoveryCodes.get(userId)).toEqual(codes);
          if (sweepRemovesExpired) {
            // The mark is forgotten, so the step could be claimed again (a verifier never asks:
            // expiresAt is set past the last moment the code can be presented).
            expect(await store.totp.claimStep(userId, STEP, now + 60_000)).toBe(true);
            expect(await store.loginThrottle.get('ip:192.0.2.1')).toBeUndefined();
          }
        },
      );
    });
  });
}
