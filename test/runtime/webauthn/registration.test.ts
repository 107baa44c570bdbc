import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { WebAuthnConfig } from '../../../runtime/config/schema.js';
import type { Store } from '../../../runtime/store/types.js';
import { startPasskeyAuthentication } from '../../../runtime/webauthn/authentication.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../../runtime/webauthn/registration.js';
import { SoftAuthenticator } from '../../support/soft-authenticator.js';
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

/** A user who exists in the store, and registration options issued for them. */
async function started(overrides: { rp?: Partial<WebAuthnConfig>; time?: { now: number }; data?: string } = {}) {
  const deps = depsWith(store, overrides);
  const user = await createUser(store);
  const options = await startPasskeyRegistration(deps, {
    user,
    subject: user.id,
    existing: [],
    ...(overrides.data !== undefined ? { data: overrides.data } : {}),
  });
  return { deps, user, options };
}

describe('startPasskeyRegistration', () => {
  it('asks for a discoverable credential, UV from config, no attestation, and the TTL as timeout', async () => {
    const { options, user } = await started();
    expect(options.rp).toEqual({ id: RP.rpId, name: RP.rpName });
    expect(options.user.name).toBe(user.username);
    expect(options.user.displayName).toBe(user.displayName);
    expect(Buffer.from(options.user.id, 'base64url').toString('utf8')).toBe(user.id);
    expect(options.authenticatorSelection).toMatchObject({
      residentKey: 'required',
      requireResidentKey: true,
      userVerification: 'required',
    });
    expect(options.authenticatorSelection?.authenticatorAttachment).toBeUndefined();
    expect(options.attestation).toBe('none');
    expect(options.timeout).toBe(RP.challengeTtlSeconds * 1000);
    expect(options.pubKeyCredParams.map((p) => p.alg)).toEqual([-7, -8, -257]);
    expect(options.excludeCredentials).toEqual([]);
    // 32 random bytes.
    expect(Buffer.from(options.challenge, 'base64url').byteLength).toBe(32);
  });

  it('stores a registration challenge bound to the subject, with its data and expiry', async () => {
    const time = { now: 1_800_000_000_000 };
    const { options, user } = await started({ time, data: '{"username":"alice"}' });
    const challenge = await store.challenges.consume(options.challenge);
    expect(challenge).toEqual({
      challenge: options.challenge,
      ceremony: 'registration',
      subject: user.id,
      createdAt: time.now,
      expiresAt: time.now + RP.challengeTtlSeconds * 1000,
      data: '{"username":"alice"}',
    });
  });

  it('passes userVerification "preferred" and the authenticator attachment through', async () => {
    const deps = depsWith(store, { rp: { userVerification: 'preferred' } });
    const user = await createUser(store);
    const options = await startPasskeyRegistration(deps, {
      user,
      subject: user.id,
      existing: [],
      authenticatorAttachment: 'cross-platform',
    });
    expect(options.authenticatorSelection).toMatchObject({
      userVerification: 'preferred',
      authenticatorAttachment: 'cross-platform',
    });
  });

  it("lists the user's existing passkeys in excludeCredentials", async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const authenticator = new SoftAuthenticator({ transports: ['usb', 'nfc'] });
    const first = await enroll(deps, authenticator, user);
    const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [first] });
    expect(options.excludeCredentials).toEqual([{ id: first.id, type: 'public-key', transports: ['usb', 'nfc'] }]);
    // A real authenticator that already holds the credential refuses to make another.
    expect(() => authenticator.register(options)).toThrow(/InvalidStateError/);
  });

  it('refuses a user id longer than the 64 bytes a user handle may have', async () => {
    const deps = depsWith(store);
    await expect(
      startPasskeyRegistration(deps, {
        user: { id: 'x'.repeat(65), username: 'long', displayName: 'Long' },
        subject: 'x',
        existing: [],
      }),
    ).rejects.toThrow(RangeError);
  });
});

describe('verifyPasskeyRegistration', () => {
  it('verifies a registration and returns the credential without storing it', async () => {
    const time = { now: 1_800_000_000_000 };
    const { deps, user, options } = await started({ time, data: '{"k":1}' });
    const authenticator = new SoftAuthenticator({ transports: ['internal', 'hybrid'] });
    const response = authenticator.register(options);
    const { credential, challenge } = await verifyPasskeyRegistration(deps, {
      response,
      subject: user.id,
      userId: user.id,
      name: 'My phone',
    });
    expect(credential).toMatchObject({
      id: response.id,
      userId: user.id,
      counter: 0,
      transports: ['internal', 'hybrid'],
      deviceType: 'singleDevice',
      backedUp: false,
      aaguid: '00000000-0000-0000-0000-000000000000',
      name: 'My phone',
      createdAt: time.now,
    });
    expect(credential.lastUsedAt).toBeUndefined();
    expect(credential.publicKey).toBeInstanceOf(Uint8Array);
    expect(challenge.data).toBe('{"k":1}');
    expect(await store.credentials.get(credential.id)).toBeUndefined();
    await store.credentials.create(credential);
    expect(await store.credentials.get(credential.id)).toMatchObject({ id: credential.id, userId: user.id });
  });

  it('binds the challenge to the subject, which may be an enrollment token rather than the user', async () => {
    const deps = depsWith(store);
    const user = { id: 'new-user-id', username: 'bootstrap', displayName: 'Bootstrap admin' };
    const options = await startPasskeyRegistration(deps, { user, subject: 'token-hash', existing: [] });
    const response = new SoftAuthenticator().register(options);
    const { credential } = await verifyPasskeyRegistration(deps, { response, subject: 'token-hash', userId: user.id, name: '' });
    expect(credential.userId).toBe('new-user-id');
  });

  it('names the credential after its authenticator when the user gave no name', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator({ aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd', backupEligible: true, backedUp: true }).register(options);
    const { credential } = await verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: '   ' });
    expect(credential.aaguid).toBe('fbfc3007-154e-4ecc-8c0b-6e020557d7bd');
    expect(credential.name).toBe('iCloud Keychain');
  });

  it('keeps only known transports', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator({ transports: ['usb', 'quantum-link', 'nfc', 'usb'] }).register(options);
    const { credential } = await verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' });
    expect(credential.transports).toEqual(['usb', 'nfc']);
  });

  describe('BE/BS flags become deviceType/backedUp', () => {
    it.each([
      { be: false, bs: false, deviceType: 'singleDevice', backedUp: false },
      { be: true, bs: false, deviceType: 'multiDevice', backedUp: false },
      { be: true, bs: true, deviceType: 'multiDevice', backedUp: true },
    ] as const)('BE=$be BS=$bs -> $deviceType, backedUp=$backedUp', async ({ be, bs, deviceType, backedUp }) => {
      const { deps, user, options } = await started();
      const response = new SoftAuthenticator().register(options, { be, bs });
      const { credential } = await verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' });
      expect(credential.deviceType).toBe(deviceType);
      expect(credential.backedUp).toBe(backedUp);
    });

    it('refuses BS without BE, which no authenticator may report', async () => {
      const { deps, user, options } = await started();
      const response = new SoftAuthenticator().register(options, { be: false, bs: true });
      await expectCeremonyError(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }), 'malformed');
    });
  });

  it('a replayed registration response is refused: the challenge is single-use', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options);
    await verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' });
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'challenge-unknown',
    );
  });

  it('a challenge that was never issued is refused', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options, { challenge: Buffer.alloc(32, 7).toString('base64url') });
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'challenge-unknown',
    );
  });

  it('a failed attempt uses the challenge up, so a corrected response cannot follow it', async () => {
    const { deps, user, options } = await started();
    const authenticator = new SoftAuthenticator();
    const bad = authenticator.register(options, { origin: 'https://evil.example' });
    await expectCeremonyError(verifyPasskeyRegistration(deps, { response: bad, subject: user.id, userId: user.id, name: 'k' }), 'origin-mismatch');
    const good = authenticator.register(options, { ignoreExcludeCredentials: true });
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response: good, subject: user.id, userId: user.id, name: 'k' }),
      'challenge-unknown',
    );
  });

  it('an expired challenge is refused', async () => {
    const time = { now: 1_800_000_000_000 };
    const { deps, user, options } = await started({ time });
    const response = new SoftAuthenticator().register(options);
    time.now += RP.challengeTtlSeconds * 1000;
    const err = await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'challenge-expired',
    );
    expect(err.message).toMatch(/expired at .* arrived at/);
  });

  it('a challenge one millisecond before expiry is still accepted', async () => {
    const time = { now: 1_800_000_000_000 };
    const { deps, user, options } = await started({ time });
    const response = new SoftAuthenticator().register(options);
    time.now += RP.challengeTtlSeconds * 1000 - 1;
    await expect(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' })).resolves.toBeDefined();
  });

  it('an authentication challenge cannot be used to register', async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const registrationOptions = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [] });
    const loginOptions = await startPasskeyAuthentication(deps, { userId: user.id });
    const response = new SoftAuthenticator().register(registrationOptions, { challenge: loginOptions.challenge });
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'challenge-wrong-ceremony',
    );
  });

  it("a challenge issued for another subject is refused", async () => {
    const { deps, user, options } = await started();
    const other = await createUser(store);
    const response = new SoftAuthenticator().register(options);
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: other.id, userId: other.id, name: 'k' }),
      'challenge-wrong-subject',
    );
    void user;
  });

  it('a response from another origin is refused', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options, { origin: 'https://kanmon.example.evil.test' });
    const err = await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'origin-mismatch',
    );
    expect(err.message).toContain('https://kanmon.example.evil.test');
    expect(err.message).toContain(RP.origins[0]);
  });

  it('any of several configured origins is accepted', async () => {
    const { deps, user, options } = await started({ rp: { origins: ['https://a.kanmon.example', 'https://kanmon.example:8443'] } });
    const response = new SoftAuthenticator({ origin: 'https://kanmon.example:8443' }).register(options);
    await expect(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' })).resolves.toBeDefined();
  });

  it('a ceremony run inside a cross-origin iframe is refused', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options, { crossOrigin: true, topOrigin: 'https://evil.example' });
    await expectCeremonyError(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }), 'origin-mismatch');
  });

  it('authenticator data for another RP ID is refused', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options, { rpIdHashOf: 'evil.example' });
    await expectCeremonyError(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }), 'rp-id-mismatch');
  });

  it('a response without user verification is refused when UV is required', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator({ userVerifying: false }).register(options);
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'user-verification-missing',
    );
  });

  it('a response without user verification is accepted when UV is only preferred', async () => {
    const { deps, user, options } = await started({ rp: { userVerification: 'preferred' } });
    const response = new SoftAuthenticator({ userVerifying: false }).register(options);
    await expect(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' })).resolves.toBeDefined();
  });

  it('a response without user presence is refused', async () => {
    const { deps, user, options } = await started({ rp: { userVerification: 'preferred' } });
    const response = new SoftAuthenticator().register(options, { up: false });
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'user-presence-missing',
    );
  });

  it('an assertion-type clientData (webauthn.get) is refused at registration', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options, { clientDataType: 'webauthn.get' });
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }),
      'client-data-type-mismatch',
    );
  });

  it('a credential id that is already registered is refused', async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const authenticator = new SoftAuthenticator();
    const first = await enroll(deps, authenticator, user);
    const other = await createUser(store);
    const options = await startPasskeyRegistration(deps, { user: other, subject: other.id, existing: [] });
    const response = new SoftAuthenticator().register(options, { credentialId: first.id });
    const err = await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response, subject: other.id, userId: other.id, name: 'k' }),
      'credential-exists',
    );
    expect(err.message).toContain('another user');
  });

  it('an id in the JSON that differs from the credential id in authenticator data is refused', async () => {
    const { deps, user, options } = await started();
    const response = new SoftAuthenticator().register(options, { claimedCredentialId: Buffer.alloc(16, 1).toString('base64url') });
    await expectCeremonyError(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' }), 'malformed');
  });
});
