/**
 * Test certificate authorities for attestation and metadata: a CA that issues 'packed'
 * attestation certificates (WebAuthn §8.2.1 requirements) to the soft authenticator, and a
 * small FIDO MDS3-like BLOB (FIDO MDS3 §3.1.6) signed by a test metadata root, naming that
 * CA as the attestation root of an AAGUID.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, sign, webcrypto, type KeyObject } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ES256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;

export interface TestCa {
  readonly certificate: x509.X509Certificate;
  readonly der: Uint8Array;
  readonly pem: string;
  readonly keys: CryptoKeyPair;
}

export interface TestLeaf {
  readonly der: Uint8Array;
  readonly pem: string;
  /** For node:crypto's synchronous sign(). */
  readonly privateKey: KeyObject;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function derOf(cert: x509.X509Certificate): Uint8Array {
  return new Uint8Array(cert.rawData);
}

export async function createTestCa(commonName: string, opts: { notBefore?: number; notAfter?: number } = {}): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
  const notBefore = new Date(opts.notBefore ?? Date.now() - HOUR);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ C: ['JP'] }, { O: ['Kanmon Test'] }, { CN: [commonName] }],
    notBefore,
    notAfter: new Date(opts.notAfter ?? notBefore.getTime() + 10 * YEAR),
    keys,
    signingAlgorithm: ES256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
      new x509.AuthorityKeyIdentifierExtension(ski.keyId),
    ],
  });
  return { certificate, der: derOf(certificate), pem: certificate.toString('pem'), keys };
}

async function issueLeaf(
  ca: TestCa,
  subject: x509.JsonName,
  extraExtensions: x509.Extension[],
  opts: { notBefore?: number; notAfter?: number } = {},
): Promise<TestLeaf> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caKeyId = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  const notBefore = new Date(opts.notBefore ?? Date.now() - HOUR);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: ca.certificate.subjectName,
    notBefore,
    notAfter: new Date(opts.notAfter ?? notBefore.getTime() + 5 * YEAR),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ES256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(caKeyId),
      ...extraExtensions,
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { der: derOf(certificate), pem: certificate.toString('pem'), privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }) };
}

/**
 * An attestation certificate as WebAuthn §8.2.1 requires of 'packed': version 3, subject
 * C / O / OU "Authenticator Attestation" / CN, not a CA, and the id-fido-gen-ce-aaguid
 * extension (1.3.6.1.4.1.45724.1.1.4) holding the model's AAGUID.
 */
export async function issueAttestationCertificate(
  ca: TestCa,
  aaguid: string,
  opts: { extensionAaguid?: string; notBefore?: number; notAfter?: number } = {},
): Promise<TestLeaf> {
  const aaguidBytes = Buffer.from((opts.extensionAaguid ?? aaguid).replace(/-/g, ''), 'hex');
  // extnValue is an OCTET STRING wrapping the 16-byte OCTET STRING of the AAGUID.
  const value = Buffer.concat([Buffer.from([0x04, 0x10]), aaguidBytes]);
  return issueLeaf(
    ca,
    [{ C: ['JP'] }, { O: ['Kanmon Test Keys'] }, { OU: ['Authenticator Attestation'] }, { CN: ['Kanmon Test Security Key'] }],
    [new x509.Extension('1.3.6.1.4.1.45724.1.1.4', false, value)],
    opts,
  );
}

export interface TestMetadataEntry {
  readonly aaguid: string;
  readonly description: string;
  readonly attestationRoots: readonly Uint8Array[];
  readonly statuses?: readonly string[];
}

export interface TestMetadataService {
  /** The root the BLOB's chain ends at: configure it as webauthn.mdsRootCertFile. */
  readonly root: TestCa;
  readonly signer: TestLeaf;
  /** A BLOB signed by this service. */
  blob(entries: readonly TestMetadataEntry[], opts?: { serial?: number; nextUpdate?: string; tamper?: boolean; x5c?: readonly Uint8Array[] }): string;
}

export async function createTestMetadataService(): Promise<TestMetadataService> {
  const root = await createTestCa('Kanmon Test Metadata Root');
  const signer = await issueLeaf(root, [{ C: ['JP'] }, { O: ['Kanmon Test'] }, { CN: ['Kanmon Test Metadata BLOB Signer'] }], []);
  return {
    root,
    signer,
    blob(entries, opts = {}) {
      const header = { alg: 'ES256', typ: 'JWT', x5c: (opts.x5c ?? [signer.der]).map((d) => Buffer.from(d).toString('base64')) };
      const payload = {
        legalHeader: 'Test metadata for Kanmon; not the FIDO Alliance.',
        no: opts.serial ?? 1,
        nextUpdate: opts.nextUpdate ?? new Date(Date.now() + 30 * 24 * HOUR).toISOString().slice(0, 10),
        entries: entries.map((e) => ({
          aaguid: e.aaguid,
          metadataStatement: {
            aaguid: e.aaguid,
            description: e.description,
            attestationTypes: ['basic_full'],
            attestationRootCertificates: e.attestationRoots.map((d) => Buffer.from(d).toString('base64')),
          },
          statusReports: (e.statuses ?? ['FIDO_CERTIFIED']).map((status) => ({ status, effectiveDate: '2024-01-01' })),
          timeOfLastStatusChange: '2024-01-01',
        })),
      };
      const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
      const signature = sign('sha256', Buffer.from(input), { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
      if (opts.tamper) signature[signature.length - 1]! ^= 0x01;
      return `${input}.${signature.toString('base64url')}`;
    },
  };
}
