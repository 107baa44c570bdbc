import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign as signData, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AuthenticatorMetadata } from '../../../runtime/webauthn/authenticator-metadata.js';
import { FIDO_MDS_ROOTS, GLOBALSIGN_ROOT_CA_R3, GLOBALSIGN_ROOT_R46 } from '../../../runtime/webauthn/fido-mds-roots.js';
import { MetadataBlobError, verifyMetadataBlob } from '../../../runtime/webauthn/metadata-blob.js';
import { createTestCa, createTestMetadataService, type TestCa, type TestMetadataService } from '../../support/attestation-ca.js';

const KEY = '0b5a1e55-c0de-4b1d-9e5a-000000000001';
const BAD = '0b5a1e55-c0de-4b1d-9e5a-000000000002';
const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';

let mds: TestMetadataService;
let attestationCa: TestCa;
let dir: string;

beforeAll(async () => {
  mds = await createTestMetadataService();
  attestationCa = await createTestCa('Kanmon Test Attestation CA');
  dir = mkdtempSync(join(tmpdir(), 'kanmon-mds-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function entries() {
  return [
    { aaguid: KEY, description: 'Kanmon Test Security Key', attestationRoots: [attestationCa.der] },
    { aaguid: BAD.toUpperCase(), description: 'Broken Key', attestationRoots: [attestationCa.der], statuses: ['FIDO_CERTIFIED', 'USER_VERIFICATION_BYPASS', 'UPDATE_AVAILABLE'] },
  ];
}

describe('verifyMetadataBlob', () => {
  it('verifies the signature and the chain to the given root, and reads the FIDO2 entries', () => {
    const blob = verifyMetadataBlob(mds.blob(entries(), { serial: 42, nextUpdate: '2031-01-01' }), { roots: [mds.root.pem], now: Date.now() });
    expect(blob.serial).toBe(42);
    expect(blob.nextUpdate).toBe('2031-01-01');
    expect(blob.signer).toContain('CN=Kanmon Test Metadata BLOB Signer');
    expect(blob.root).toContain('CN=Kanmon Test Metadata Root');
    expect(blob.entries.map((e) => e.aaguid)).toEqual([KEY, BAD]);
    expect(blob.entries[0]!.description).toBe('Kanmon Test Security Key');
    expect(Buffer.from(blob.entries[0]!.attestationRootCertificates[0]!).equals(Buffer.from(attestationCa.der))).toBe(true);
  });

  it('refuses a BLOB whose signature does not verify', () => {
    expect(() => verifyMetadataBlob(mds.blob(entries(), { tamper: true }), { roots: [mds.root.pem], now: Date.now() })).toThrow(/signature does not verify/);
  });

  it('refuses a BLOB whose payload was changed after signing', () => {
    const [h, , s] = mds.blob(entries()).split('.');
    const forged = Buffer.from(JSON.stringify({ no: 99, nextUpdate: '2031-01-01', entries: [] })).toString('base64url');
    expect(() => verifyMetadataBlob(`${h}.${forged}.${s}`, { roots: [mds.root.pem], now: Date.now() })).toThrow(MetadataBlobError);
  });

  it('refuses a BLOB that chains to a root other than the trusted ones (the FIDO roots by default)', () => {
    expect(() => verifyMetadataBlob(mds.blob(entries()), { roots: [...FIDO_MDS_ROOTS], now: Date.now() })).toThrow(/not a trusted root/);
    expect(() => verifyMetadataBlob(mds.blob(entries()), { roots: [attestationCa.pem], now: Date.now() })).toThrow(/not a trusted root/);
  });

  it('refuses a chain whose certificate is outside its validity period', () => {
    const later = Date.now() + 20 * 365 * 86_400_000;
    expect(() => verifyMetadataBlob(mds.blob(entries()), { roots: [mds.root.pem], now: later })).toThrow(/validity period/);
  });

  it('refuses a chain with a certificate the next one did not sign', () => {
    const blob = mds.blob(entries(), { x5c: [mds.signer.der, attestationCa.der] });
    expect(() => verifyMetadataBlob(blob, { roots: [mds.root.pem], now: Date.now() })).toThrow(/not signed by the next certificate/);
  });

  it.each([
    ['not a JWT', 'hello'],
    ['four parts', 'a.b.c.d'],
    ['header not JSON', `${Buffer.from('nope').toString('base64url')}.e30.AA`],
    ['alg none', `${Buffer.from(JSON.stringify({ alg: 'none', x5c: [] })).toString('base64url')}.e30.`],
    ['HMAC', `${Buffer.from(JSON.stringify({ alg: 'HS256', x5c: ['AA=='] })).toString('base64url')}.e30.AA`],
    ['no x5c (x5u would be a download)', `${Buffer.from(JSON.stringify({ alg: 'ES256', x5u: 'https://mds.example/chain' })).toString('base64url')}.e30.AA`],
    ['x5c not a certificate', `${Buffer.from(JSON.stringify({ alg: 'ES256', x5c: ['AAAA'] })).toString('base64url')}.e30.AA`],
  ])('refuses hostile input: %s', (_name, jwt) => {
    expect(() => verifyMetadataBlob(jwt, { roots: [mds.root.pem], now: Date.now() })).toThrow(MetadataBlobError);
  });

  it('refuses a signed BLOB whose payload lacks the required members', () => {
    // Signed by the right key, so only the payload checks can refuse it.
    const sign = (payload: unknown) => {
      const good = mds.blob([]);
      const [h] = good.split('.');
      const input = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
      return `${input}.${signData('sha256', Buffer.from(input), { key: mds.signer.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    expect(() => verifyMetadataBlob(sign({ nextUpdate: '2031-01-01', entries: [] }), { roots: [mds.root.pem], now: Date.now() })).toThrow(/"no"/);
    expect(() => verifyMetadataBlob(sign({ no: 1, nextUpdate: '2031-01-01', entries: {} }), { roots: [mds.root.pem], now: Date.now() })).toThrow(/"entries"/);
    expect(() => verifyMetadataBlob(sign({ no: 1, nextUpdate: '2031-01-01', entries: [{ aaguid: 'x' }] }), { roots: [mds.root.pem], now: Date.now() })).toThrow(/AAGUID/);
  });
});

describe('AuthenticatorMetadata', () => {
  it('loads a BLOB file against a configured root: names, attestation roots and status', () => {
    const file = join(dir, 'mds.jwt');
    const rootsFile = join(dir, 'root.pem');
    writeFileSync(file, mds.blob(entries(), { serial: 7 }));
    writeFileSync(rootsFile, mds.root.pem);
    const metadata = AuthenticatorMetadata.loadFile(file, { rootsFile });
    expect(metadata.source).toMatchObject({ file, serial: 7, entries: 2 });
    expect(metadata.nameOf(KEY)).toBe('Kanmon Test Security Key');
    expect(metadata.nameOf(KEY.toUpperCase())).toBe('Kanmon Test Security Key');
    // Models the BLOB does not list keep their built-in names.
    expect(metadata.nameOf(YUBIKEY)).toBe('YubiKey 5 Series');
    expect(metadata.trustAnchorsFor(KEY).map((c) => c.subject)).toEqual([new X509Certificate(attestationCa.der).subject]);
    expect(metadata.trustAnchorsFor(YUBIKEY)).toEqual([]);
    expect(metadata.statusOf(KEY)).toEqual({ refused: false, status: 'FIDO_CERTIFIED' });
    // A fix being available does not make the devices out there safe.
    expect(metadata.statusOf(BAD)).toEqual({ refused: true, status: 'USER_VERIFICATION_BYPASS' });
    expect(metadata.statusOf(YUBIKEY)).toEqual({ refused: false });
  });

  it.each(['REVOKED', 'ATTESTATION_KEY_COMPROMISE', 'USER_KEY_REMOTE_COMPROMISE', 'USER_KEY_PHYSICAL_COMPROMISE', 'USER_VERIFICATION_BYPASS'])('refuses a model reported %s', (status) => {
    const file = join(dir, `mds-${status}.jwt`);
    const rootsFile = join(dir, 'root.pem');
    writeFileSync(file, mds.blob([{ aaguid: KEY, description: 'k', attestationRoots: [], statuses: [status] }]));
    writeFileSync(rootsFile, mds.root.pem);
    expect(AuthenticatorMetadata.loadFile(file, { rootsFile }).statusOf(KEY)).toEqual({ refused: true, status });
  });

  it('refuses to use a file that does not verify, saying which file and why', () => {
    const file = join(dir, 'forged.jwt');
    const rootsFile = join(dir, 'root.pem');
    writeFileSync(file, mds.blob(entries(), { tamper: true }));
    writeFileSync(rootsFile, mds.root.pem);
    expect(() => AuthenticatorMetadata.loadFile(file, { rootsFile })).toThrow(`${file}: the metadata BLOB's ES256 signature does not verify`);
    // Without a private root, the FIDO Alliance's roots are the only ones trusted.
    writeFileSync(file, mds.blob(entries()));
    expect(() => AuthenticatorMetadata.loadFile(file)).toThrow(/not a trusted root; the BLOB is not used/);
    expect(() => AuthenticatorMetadata.loadFile(join(dir, 'missing.jwt'))).toThrow(/could not be read/);
    writeFileSync(join(dir, 'empty.pem'), 'no certificates here');
    expect(() => AuthenticatorMetadata.loadFile(file, { rootsFile: join(dir, 'empty.pem') })).toThrow(/holds no PEM certificate/);
  });

  it('reports a BLOB past its nextUpdate as stale', () => {
    const file = join(dir, 'stale.jwt');
    const rootsFile = join(dir, 'root.pem');
    writeFileSync(file, mds.blob(entries(), { nextUpdate: '2020-01-01' }));
    writeFileSync(rootsFile, mds.root.pem);
    const metadata = AuthenticatorMetadata.loadFile(file, { rootsFile });
    expect(metadata.isStale(Date.now())).toBe(true);
    expect(AuthenticatorMetadata.builtIn().isStale(Date.now())).toBe(false);
  });

  it('has only built-in names when no BLOB is configured', () => {
    const metadata = AuthenticatorMetadata.builtIn();
    expect(metadata.nameOf(YUBIKEY)).toBe('YubiKey 5 Series');
    expect(metadata.trustAnchorsFor(YUBIKEY)).toEqual([]);
    expect(metadata.statusOf(YUBIKEY).refused).toBe(false);
  });
});

describe('FIDO MDS roots', () => {
  it('are the certificates GlobalSign publishes (SHA-256 fingerprints)', () => {
    expect(new X509Certificate(GLOBALSIGN_ROOT_CA_R3).fingerprint256).toBe('CB:B5:22:D7:B7:F1:27:AD:6A:01:13:86:5B:DF:1C:D4:10:2E:7D:07:59:AF:63:5A:7C:F4:72:0D:C9:63:C5:3B');
    expect(new X509Certificate(GLOBALSIGN_ROOT_R46).fingerprint256).toBe('4F:A3:12:6D:8D:3A:11:D1:C4:85:5A:4F:80:7C:BA:D6:CF:91:9D:3A:5A:88:B0:3B:EA:2C:63:72:D9:3C:40:C9');
  });
});
