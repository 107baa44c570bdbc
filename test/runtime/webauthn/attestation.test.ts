/**
 * Attestation at registration (WebAuthn §7.1 steps 19-21, §8.2 'packed'): the options ask for
 * it when policy needs a proven AAGUID, the statement must verify, and it is trusted only when
 * its chain reaches a root the metadata BLOB lists for that AAGUID.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Store } from '../../../runtime/store/types.js';
import { AuthenticatorMetadata } from '../../../runtime/webauthn/authenticator-metadata.js';
import { startPasskeyAuthentication, verifyPasskeyAuthentication } from '../../../runtime/webauthn/authentication.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../../runtime/webauthn/registration.js';
import { createTestCa, createTestMetadataService, issueAttestationCertificate, type TestCa, type TestLeaf } from '../../support/attestation-ca.js';
import { SoftAuthenticator, type RegistrationKnobs } from '../../support/soft-authenticator.js';
import { createUser, depsWith, expectCeremonyError, openTestStore, ORIGIN, type TestStore } from './fixtures.js';

const KEY = '0b5a1e55-c0de-4b1d-9e5a-00000000000a';
const REVOKED = '0b5a1e55-c0de-4b1d-9e5a-00000000000b';
const UNLISTED = '0b5a1e55-c0de-4b1d-9e5a-00000000000c';

let testStore: TestStore;
let store: Store;
let ca: TestCa;
let otherCa: TestCa;
let leaf: TestLeaf;
let metadata: AuthenticatorMetadata;

beforeAll(async () => {
  testStore = await openTestStore();
  store = testStore.store;
  ca = await createTestCa('Kanmon Test Attestation CA');
  otherCa = await createTestCa('Somebody Else Attestation CA');
  leaf = await issueAttestationCertificate(ca, KEY);
  const mds = await createTestMetadataService();
  const blob = mds.blob([
    { aaguid: KEY, description: 'Kanmon Test Security Key', attestationRoots: [ca.der] },
    { aaguid: REVOKED, description: 'Revoked Key', attestationRoots: [ca.der], statuses: ['REVOKED'] },
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-att-'));
  try {
    writeFileSync(join(dir, 'mds.jwt'), blob);
    writeFileSync(join(dir, 'root.pem'), mds.root.pem);
    metadata = AuthenticatorMetadata.loadFile(join(dir, 'mds.jwt'), { rootsFile: join(dir, 'root.pem') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
afterAll(async () => {
  await testStore.close();
});

function securityKey(aaguid: string, attestation?: { certificates: Uint8Array[]; privateKey: TestLeaf['privateKey'] }) {
  return new SoftAuthenticator({
    origin: ORIGIN,
    aaguid,
    attachment: 'cross-platform',
    transports: ['usb'],
    ...(attestation ? { attestation } : {}),
  });
}

async function register(
  authenticator: SoftAuthenticator,
  opts: { attestation?: 'none' | 'direct'; metadata?: AuthenticatorMetadata; knobs?: RegistrationKnobs; time?: { now: number } } = {},
) {
  const deps = depsWith(store, opts.time ? { time: opts.time } : {});
  const user = await createUser(store);
  const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [], attestation: opts.attestation ?? 'direct' });
  const response = authenticator.register(options, opts.knobs);
  return verifyPasskeyRegistration(deps, {
    response,
    subject: user.id,
    userId: user.id,
    name: '',
    ...(opts.metadata ? { metadata: opts.metadata } : {}),
  });
}

describe('registration options for device-bound and attested routes', () => {
  it("asks for a security key: cross-platform attachment, hint 'security-key', direct attestation", async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const options = await startPasskeyRegistration(deps, {
      user,
      subject: user.id,
      existing: [],
      authenticatorAttachment: 'cross-platform',
      hints: ['security-key'],
      attestation: 'direct',
    });
    expect(options.authenticatorSelection?.authenticatorAttachment).toBe('cross-platform');
    expect(options.hints).toEqual(['security-key']);
    expect(options.attestation).toBe('direct');
  });

  it("asks for a phone with hint 'hybrid' and no attachment, so every choice stays open", async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [], hints: ['hybrid'] });
    expect(options.authenticatorSelection?.authenticatorAttachment).toBeUndefined();
    expect(options.hints).toEqual(['hybrid']);
    expect(options.attestation).toBe('none');
  });
});

describe('attestation verification and trust', () => {
  it('trusts a packed attestation that chains to the root the metadata lists for its AAGUID', async () => {
    const { credential, attestationDetail } = await register(securityKey(KEY, { certificates: [leaf.der], privateKey: leaf.privateKey }), { metadata });
    expect(credential).toMatchObject({ attestationFormat: 'packed', attestationTrusted: true, aaguid: KEY, deviceType: 'singleDevice' });
    expect(attestationDetail).toContain('Kanmon Test Attestation CA');
    // The name comes from the metadata statement.
    expect(credential.name).toBe('Kanmon Test Security Key');
  });

  it('also trusts a chain that includes the root itself', async () => {
    const { credential } = await register(securityKey(KEY, { certificates: [leaf.der, ca.der], privateKey: leaf.privateKey }), { metadata });
    expect(credential.attestationTrusted).toBe(true);
  });

  it('stores an attestation without a metadata BLOB as verified but untrusted', async () => {
    const { credential, attestationDetail } = await register(securityKey(KEY, { certificates: [leaf.der], privateKey: leaf.privateKey }));
    expect(credential).toMatchObject({ attestationFormat: 'packed', attestationTrusted: false });
    expect(attestationDetail).toBe('no metadata configured');
  });

  it('does not trust an attestation from a CA the metadata does not list for the AAGUID', async () => {
    const foreign = await issueAttestationCertificate(otherCa, KEY);
    const { credential, attestationDetail } = await register(securityKey(KEY, { certificates: [foreign.der], privateKey: foreign.privateKey }), { metadata });
    expect(credential.attestationTrusted).toBe(false);
    expect(attestationDetail).toMatch(/not a trusted root/);
  });

  it('does not trust a model the metadata does not list', async () => {
    const unlisted = await issueAttestationCertificate(ca, UNLISTED);
    const { credential, attestationDetail } = await register(securityKey(UNLISTED, { certificates: [unlisted.der], privateKey: unlisted.privateKey }), { metadata });
    expect(credential.attestationTrusted).toBe(false);
    expect(attestationDetail).toContain(`no metadata lists attestation roots for AAGUID ${UNLISTED}`);
  });

  it('does not trust self attestation (no certificate)', async () => {
    const { credential, attestationDetail } = await register(securityKey(KEY), { metadata, knobs: { attestationFormat: 'packed-self' } });
    expect(credential).toMatchObject({ attestationFormat: 'packed', attestationTrusted: false });
    expect(attestationDetail).toMatch(/self attestation/);
  });

  it("records 'none' when the options asked for none, even from a key that could attest", async () => {
    const { credential } = await register(securityKey(KEY, { certificates: [leaf.der], privateKey: leaf.privateKey }), { metadata, attestation: 'none' });
    expect(credential).toMatchObject({ attestationFormat: 'none', attestationTrusted: false });
  });

  it('does not trust an attestation when the chain is checked after the CA expired', async () => {
    const time = { now: Date.now() + 11 * 365 * 86_400_000 };
    // The library checks the leaf against the real clock; the chain check uses the ceremony's.
    const { credential, attestationDetail } = await register(securityKey(KEY, { certificates: [leaf.der], privateKey: leaf.privateKey }), { metadata, time });
    expect(credential.attestationTrusted).toBe(false);
    expect(attestationDetail).toMatch(/validity period/);
  });

  it('refuses an attestation statement whose signature does not verify', async () => {
    await expectCeremonyError(
      register(securityKey(KEY, { certificates: [leaf.der], privateKey: leaf.privateKey }), { metadata, knobs: { flipAttestationSignature: true } }),
      'verification-failed',
    );
  });

  it("refuses a certificate whose id-fido-gen-ce-aaguid extension names another model", async () => {
    const lying = await issueAttestationCertificate(ca, KEY, { extensionAaguid: UNLISTED });
    await expectCeremonyError(register(securityKey(KEY, { certificates: [lying.der], privateKey: lying.privateKey }), { metadata }), 'verification-failed');
  });

  it('refuses an expired attestation certificate', async () => {
    const expired = await issueAttestationCertificate(ca, KEY, { notBefore: Date.now() - 3 * 86_400_000, notAfter: Date.now() - 86_400_000 });
    await expectCeremonyError(register(securityKey(KEY, { certificates: [expired.der], privateKey: expired.privateKey }), { metadata }), 'verification-failed');
  });

  it('refuses a model whose metadata status report says REVOKED, even without attestation', async () => {
    const revokedLeaf = await issueAttestationCertificate(ca, REVOKED);
    const err = await expectCeremonyError(
      register(securityKey(REVOKED, { certificates: [revokedLeaf.der], privateKey: revokedLeaf.privateKey }), { metadata }),
      'authenticator-refused',
    );
    expect(err.message).toContain('REVOKED');
    await expectCeremonyError(register(securityKey(REVOKED), { metadata, attestation: 'none' }), 'authenticator-refused');
  });

  it('refuses a sign-in with a credential of a model reported revoked after it registered', async () => {
    // Registered while no metadata said anything against the model.
    const key = securityKey(REVOKED);
    const user = await createUser(store);
    const plain = depsWith(store);
    const options = await startPasskeyRegistration(plain, { user, subject: user.id, existing: [] });
    const { credential } = await verifyPasskeyRegistration(plain, { response: key.register(options), subject: user.id, userId: user.id, name: 'k' });
    await store.credentials.create(credential);

    const withMetadata = { ...plain, metadata };
    const request = await startPasskeyAuthentication(withMetadata, {});
    const err = await expectCeremonyError(verifyPasskeyAuthentication(withMetadata, { response: key.authenticate(request) }), 'authenticator-refused');
    expect(err.message).toContain('REVOKED');
    // The counter did not move: the refusal came before the use was recorded.
    expect((await store.credentials.get(credential.id))!.counter).toBe(credential.counter);
    // Without that metadata the same credential still works.
    const again = await startPasskeyAuthentication(plain, {});
    await expect(verifyPasskeyAuthentication(plain, { response: key.authenticate(again) })).resolves.toMatchObject({ user: { id: user.id } });
  });
});
