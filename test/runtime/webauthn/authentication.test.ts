import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { WebAuthnConfig } from '../../../runtime/config/schema.js';
import type { CredentialStore, PasskeyCredential, Store, User } from '../../../runtime/store/types.js';
import {
  startPasskeyAuthentication,
  verifyPasskeyAuthentication,
} from '../../../runtime/webauthn/authentication.js';
import type { CeremonyDeps } from '../../../runtime/webauthn/ceremony.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../../runtime/webauthn/registration.js';
import { SoftAuthenticator, type SoftAuthenticatorOptions } from '../../support/soft-authenticator.js';
import { createUser, depsWith, enroll, expectCeremonyError, openTestStore, RP, type TestStore } from './fixtures.js';

let testStore: TestStore;
let store: Store;

beforeAll(async () => {
  testStore = await openTestStore();
  store = testStore.store;
});
afterAll(async () => {
  await testStore.close();
});

interface Enrolled {
  deps: CeremonyDeps;
  user: User;
  authenticator: SoftAuthenticator;
  credential: PasskeyCredential;
}

/** A user with one registered passkey held by a fresh soft authenticator. */
async function enrolled(
  overrides: { rp?: Partial<WebAuthnConfig>; time?: { now: number }; authenticator?: SoftAuthenticatorOptions } = {},
): Promise<Enrolled> {
  // Enrol with UV so that tests about login-time UV start from a valid credential.
  const deps = depsWith(store, overrides);
  const user = await createUser(store);
  const authenticator = new SoftAuthenticator(overrides.authenticator);
  const credential = await enroll(depsWith(store, { rp: { userVerification: 'preferred' } }), authenticator, user);
  return { deps, user, authenticator, credential };
}

describe('startPasskeyAuthentication', () => {
  it('usernameless: no allowCredentials, UV from config, the TTL as timeout, a challenge for subject ""', async () => {
    const time = { now: 1_800_000_000_000 };
    const deps = depsWith(store, { time });
    const options = await startPasskeyAuthentication(deps, {});
    expect(options.rpId).toBe(RP.rpId);
    expect(options.allowCredentials).toEqual([]);
    expect(options.userVerification).toBe('required');
    expect(options.timeout).toBe(RP.challengeTtlSeconds * 1000);
    expect(Buffer.from(options.challenge, 'base64url').byteLength).toBe(32);
    expect(await store.challenges.consume(options.challenge)).toEqual({
      challenge: options.challenge,
      ceremony: 'authentication',
      subject: '',
      createdAt: time.now,
      expiresAt: time.now + RP.challengeTtlSeconds * 1000,
    });
  });

  it("with a user: that user's credentials as allowCredentials and the user id as subject", async () => {
    const { deps, user, credential } = await enrolled();
    const stranger = await enrolled();
    const options = await startPasskeyAuthentication(deps, {
      userId: user.id,
      allowCredentials: [credential, stranger.credential],
    });
    // Another user's credential handed in by mistake is not disclosed.
    expect(options.allowCredentials).toEqual([{ id: credential.id, type: 'public-key', transports: [...credential.transports] }]);
    expect((await store.challenges.consume(options.challenge))?.subject).toBe(user.id);
  });

  it('ignores allowCredentials without a user, so usernameless login names no account', async () => {
    const { deps, credential } = await enrolled();
    const options = await startPasskeyAuthentication(deps, { allowCredentials: [credential] });
    expect(options.allowCredentials).toEqual([]);
  });

  it('passes userVerification "preferred" through', async () => {
    const options = await startPasskeyAuthentication(depsWith(store, { rp: { userVerification: 'preferred' } }), {});
    expect(options.userVerification).toBe('preferred');
  });
});

describe('verifyPasskeyAuthentication', () => {
  it('usernameless login: returns the user and the credential with its new counter and lastUsedAt', async () => {
    const time = { now: 1_800_000_000_000 };
    const { deps, user, authenticator, credential } = await enrolled({ time });
    const options = await startPasskeyAuthentication(deps, {});
    time.now += 5_000;
    const response = authenticator.authenticate(options);
    const result = await verifyPasskeyAuthentication(deps, { response });
    expect(result.user).toEqual(user);
    expect(result.credential).toEqual({ ...credential, counter: 1, lastUsedAt: time.now });
    expect(await store.credentials.get(credential.id)).toEqual(result.credential);
  });

  it('login for a known user (step-up): the subject must match', async () => {
    const { deps, user, authenticator, credential } = await enrolled();
    const options = await startPasskeyAuthentication(deps, { userId: user.id, allowCredentials: [credential] });
    const response = authenticator.authenticate(options);
    const result = await verifyPasskeyAuthentication(deps, { response, subject: user.id });
    expect(result.user.id).toBe(user.id);
  });

  it('accepts a response without userHandle (the credential id identifies the user)', async () => {
    const { deps, user, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { userHandle: null });
    expect(response.response.userHandle).toBeUndefined();
    expect((await verifyPasskeyAuthentication(deps, { response })).user.id).toBe(user.id);
  });

  it('a replayed assertion is refused: the challenge is single-use', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options);
    await verifyPasskeyAuthentication(deps, { response });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'challenge-unknown');
  });

  it('a failed attempt uses the challenge up', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    await expectCeremonyError(
      verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(options, { flipSignatureByte: true }) }),
      'signature-invalid',
    );
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(options) }), 'challenge-unknown');
  });

  it('an expired challenge is refused', async () => {
    const time = { now: 1_800_000_000_000 };
    const { deps, authenticator } = await enrolled({ time });
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options);
    time.now += RP.challengeTtlSeconds * 1000 + 1;
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'challenge-expired');
  });

  it('a registration challenge cannot be used to log in', async () => {
    const { deps, user, authenticator } = await enrolled();
    const registration = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [] });
    const login = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(login, { challenge: registration.challenge });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'challenge-wrong-ceremony');
  });

  it('a challenge issued for one user is refused for usernameless login, and the other way round', async () => {
    const { deps, user, authenticator, credential } = await enrolled();
    const forUser = await startPasskeyAuthentication(deps, { userId: user.id, allowCredentials: [credential] });
    await expectCeremonyError(
      verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(forUser) }),
      'challenge-wrong-subject',
    );
    const usernameless = await startPasskeyAuthentication(deps, {});
    await expectCeremonyError(
      verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(usernameless), subject: user.id }),
      'challenge-wrong-subject',
    );
  });

  it("another user's credential cannot answer a challenge issued for a known user", async () => {
    const alice = await enrolled();
    const mallory = await enrolled();
    const options = await startPasskeyAuthentication(alice.deps, { userId: alice.user.id, allowCredentials: [alice.credential] });
    // Mallory's authenticator ignores allowCredentials and answers with her own credential.
    const response = mallory.authenticator.authenticate(options, { credentialId: mallory.credential.id });
    await expectCeremonyError(
      verifyPasskeyAuthentication(alice.deps, { response, subject: alice.user.id }),
      'credential-not-allowed',
    );
  });

  it('a response from another origin is refused', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { origin: 'https://phish.example' });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'origin-mismatch');
  });

  it('a ceremony run inside a cross-origin iframe is refused', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { crossOrigin: true });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'origin-mismatch');
  });

  it('authenticator data for another RP ID is refused', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { rpIdHashOf: 'phish.example' });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'rp-id-mismatch');
  });

  it('an assertion without user verification is refused when UV is required', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { uv: false });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'user-verification-missing');
  });

  it('an assertion without user verification is accepted when UV is only preferred', async () => {
    const { deps, authenticator } = await enrolled({ rp: { userVerification: 'preferred' } });
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { uv: false });
    await expect(verifyPasskeyAuthentication(deps, { response })).resolves.toBeDefined();
  });

  it('an assertion without user presence is refused', async () => {
    const { deps, authenticator } = await enrolled({ rp: { userVerification: 'preferred' } });
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { up: false });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'user-presence-missing');
  });

  it('a registration-type clientData (webauthn.create) is refused at login', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { clientDataType: 'webauthn.create' });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'client-data-type-mismatch');
  });

  it('an unknown credential is refused', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { claimedCredentialId: Buffer.alloc(16, 9).toString('base64url') });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'credential-unknown');
  });

  it('a deleted credential is refused', async () => {
    const { deps, authenticator, credential } = await enrolled();
    await store.credentials.delete(credential.id);
    const options = await startPasskeyAuthentication(deps, {});
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(options) }), 'credential-unknown');
  });

  it('a disabled user cannot log in', async () => {
    const { deps, user, authenticator } = await enrolled();
    await store.users.update({ ...user, disabled: true, updatedAt: user.updatedAt + 1 });
    const options = await startPasskeyAuthentication(deps, {});
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(options) }), 'user-disabled');
  });

  it('a credential whose user no longer exists is refused', async () => {
    const deps = depsWith(store);
    const authenticator = new SoftAuthenticator();
    // The store keeps no foreign key from credentials to users (DynamoDB could not enforce one).
    const ghost = { id: 'ghost-user', username: 'ghost', displayName: 'Ghost' };
    const registration = await startPasskeyRegistration(deps, { user: ghost, subject: ghost.id, existing: [] });
    const { credential } = await verifyPasskeyRegistration(deps, {
      response: authenticator.register(registration),
      subject: ghost.id,
      userId: ghost.id,
      name: 'k',
    });
    await store.credentials.create(credential);
    const options = await startPasskeyAuthentication(deps, {});
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response: authenticator.authenticate(options) }), 'user-unknown');
  });

  it("a userHandle naming someone other than the credential's owner is refused", async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { userHandle: Buffer.from('someone-else').toString('base64url') });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'user-handle-mismatch');
  });

  it('a tampered signature is refused', async () => {
    const { deps, authenticator, credential } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { flipSignatureByte: true });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'signature-invalid');
    // Nothing was recorded.
    expect((await store.credentials.get(credential.id))?.lastUsedAt).toBeUndefined();
  });

  it('a signature that is not DER is refused as an invalid signature', async () => {
    const { deps, authenticator } = await enrolled();
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options);
    const garbled = { ...response, response: { ...response.response, signature: Buffer.alloc(70, 0x42).toString('base64url') } };
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response: garbled }), 'signature-invalid');
  });

  it("a signature by another credential's key is refused", async () => {
    const { deps, user, authenticator, credential } = await enrolled();
    // A second credential of the same user, on the same authenticator.
    const second = await enroll(depsWith(store, { rp: { userVerification: 'preferred' } }), new SoftAuthenticator(), user);
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options, { credentialId: credential.id, claimedCredentialId: second.id });
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'signature-invalid');
  });

  describe('signature counter (WebAuthn §7.2 step 21)', () => {
    async function loginWithCounter(e: Enrolled, counter: number) {
      const options = await startPasskeyAuthentication(e.deps, {});
      return verifyPasskeyAuthentication(e.deps, { response: e.authenticator.authenticate(options, { counter }) });
    }

    it('a counter that increases is accepted and stored', async () => {
      const e = await enrolled();
      expect((await loginWithCounter(e, 5)).credential.counter).toBe(5);
      expect((await loginWithCounter(e, 9)).credential.counter).toBe(9);
      expect((await store.credentials.get(e.credential.id))?.counter).toBe(9);
    });

    it('a counter equal to the stored one is refused as a possible clone', async () => {
      const e = await enrolled();
      await loginWithCounter(e, 5);
      const err = await expectCeremonyError(loginWithCounter(e, 5), 'counter-regression');
      expect(err.message).toMatch(/above 5, got 5/);
    });

    it('a counter below the stored one is refused as a possible clone', async () => {
      const e = await enrolled();
      await loginWithCounter(e, 5);
      await expectCeremonyError(loginWithCounter(e, 3), 'counter-regression');
      expect((await store.credentials.get(e.credential.id))?.counter).toBe(5);
    });

    it('a counter that drops to zero after being used is refused', async () => {
      const e = await enrolled();
      await loginWithCounter(e, 5);
      await expectCeremonyError(loginWithCounter(e, 0), 'counter-regression');
    });

    it('both counters zero is allowed: authenticators without a counter always say 0', async () => {
      const e = await enrolled({ authenticator: { counter: 'zero', backupEligible: true, backedUp: true } });
      expect(e.credential.counter).toBe(0);
      for (let i = 0; i < 3; i += 1) {
        const options = await startPasskeyAuthentication(e.deps, {});
        const { credential } = await verifyPasskeyAuthentication(e.deps, { response: e.authenticator.authenticate(options) });
        expect(credential.counter).toBe(0);
        expect(credential.deviceType).toBe('multiDevice');
      }
    });

    it('a regressed counter with a bad signature is reported as a bad signature, not a clone', async () => {
      const e = await enrolled();
      await loginWithCounter(e, 5);
      const options = await startPasskeyAuthentication(e.deps, {});
      const response = e.authenticator.authenticate(options, { counter: 1, flipSignatureByte: true });
      await expectCeremonyError(verifyPasskeyAuthentication(e.deps, { response }), 'signature-invalid');
    });

    it('an assertion that loses the compare-and-set to a concurrent one is refused', async () => {
      const e = await enrolled();
      // A store whose recordUse first lets a concurrent login win (the counter moves to 7).
      const racing: CredentialStore = Object.create(store.credentials, {
        recordUse: {
          value: async (id: string, update: { expectedCounter: number; counter: number; lastUsedAt: number }) => {
            await store.credentials.recordUse(id, { expectedCounter: update.expectedCounter, counter: 7, lastUsedAt: update.lastUsedAt });
            return store.credentials.recordUse(id, update);
          },
        },
      });
      const racingStore: Store = Object.create(store, { credentials: { value: racing } });
      const deps: CeremonyDeps = { ...e.deps, store: racingStore };
      const options = await startPasskeyAuthentication(deps, {});
      const response = e.authenticator.authenticate(options, { counter: 3 });
      const err = await expectCeremonyError(verifyPasskeyAuthentication(deps, { response }), 'counter-regression');
      expect(err.message).toMatch(/changed/);
      expect((await store.credentials.get(e.credential.id))?.counter).toBe(7);
    });

    it('two assertions verified at the same time cannot both pass', async () => {
      const e = await enrolled();
      const first = await startPasskeyAuthentication(e.deps, {});
      const second = await startPasskeyAuthentication(e.deps, {});
      const results = await Promise.allSettled([
        verifyPasskeyAuthentication(e.deps, { response: e.authenticator.authenticate(first, { counter: 1 }) }),
        verifyPasskeyAuthentication(e.deps, { response: e.authenticator.authenticate(second, { counter: 1 }) }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(rejected.reason).toMatchObject({ name: 'CeremonyError', reason: 'counter-regression' });
    });
  });
});
