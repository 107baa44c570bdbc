import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { CaConfig } from '../config/schema.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { AuditLog } from '../services/audit-log.js';
import { CLI_CONTEXT, type RequestContext } from '../services/request-context.js';
import { CertificateAuthorityExistsError } from '../store/errors.js';
import type { CertificateAuthorityRecord, Store } from '../store/types.js';
import { rootCaExtensions } from '../tls/root-ca-extensions.js';
import { buildCrl } from './crl.js';
import { certificateFingerprint, normalizeSerial, randomSerialHex } from './names.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** The one CA record of an installation. */
export const CA_ID = 'default';
/** SecretBox context of the CA's private key. */
export const CA_KEY_CONTEXT = 'ca-key';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** RFC 5280 leaves CA lifetime to policy; ten years outlives many rounds of client certificates. */
const CA_LIFETIME_MS = 3650 * DAY;
/** Devices and nodes whose clocks are slightly behind must not see a certificate from the future. */
export const BACKDATE_MS = HOUR;
/**
 * How long a node serves its cached CRL before building a new one, so revocations made on another
 * node reach this node's CRL within a minute (its own revocations rebuild it at once).
 */
const CRL_MAX_AGE_MS = 60_000;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
/** ecdsa-with-SHA256 (RFC 5758 §3.2) for everything the CA signs. */
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface CaInfo {
  readonly subject: string;
  readonly serial: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly fingerprint: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly createdAt: number;
  readonly keyAlgorithm: 'EC P-256';
}

/** What a client certificate is signed with; built by ClientCertificateService. */
export interface ClientCertificateTemplate {
  readonly serial: string;
  readonly subject: x509.JsonName;
  readonly publicKey: CryptoKey;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** URIs for the subjectAltName (the owner's URN). */
  readonly sanUris: readonly string[];
  /** Where relying parties find the CRL (RFC 5280 §4.2.1.13); omitted when empty. */
  readonly crlUrls: readonly string[];
}

interface LoadedCa {
  readonly record: CertificateAuthorityRecord;
  readonly certificate: x509.X509Certificate;
  readonly pem: string;
  /** Non-extractable: the opened key can sign, and never leaves WebCrypto again. */
  readonly signingKey: CryptoKey;
  /** The CA's subjectKeyIdentifier, hex: every certificate it signs names it as authorityKeyIdentifier. */
  readonly keyId: string;
  /** node's view of the same certificate, for the per-handshake issuer check. */
  readonly nodeCertificate: NodeX509Certificate;
}

interface CachedCrl {
  readonly der: Uint8Array;
  readonly builtAt: number;
  readonly nextUpdate: number;
}

export interface CertificateAuthorityServiceDeps {
  readonly store: Pick<Store, 'certificateAuthorities' | 'clientCertificates'>;
  readonly secrets: SecretBox;
  readonly audit: AuditLog;
  readonly config: CaConfig;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

/**
 * Kanmon's own CA for TLS client certificates, shared by every node through the store.
 *
 * The CA is made on first use (`ensure`, which the server may call at start): an EC P-256 key and
 * a self-signed certificate valid for ten years, named from config. The private key is sealed by
 * the SecretBox (locally the data directory's key, on AWS the stack's KMS key) with context
 * 'ca-key' before it reaches the store, and is never logged, put in config or sent anywhere.
 * Two nodes making it at once both try a conditional create; one wins, the other reads and uses
 * the winner's.
 */
export class CertificateAuthorityService {
  readonly #deps: CertificateAuthorityServiceDeps;
  readonly #now: () => number;
  #loading?: Promise<LoadedCa>;
  #crl?: CachedCrl;
  #crlBuilding?: Promise<CachedCrl>;
  /** Bumped by every local revocation, so a CRL build that started before one is not cached after it. */
  #crlGeneration = 0;

  constructor(deps: CertificateAuthorityServiceDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Loads the CA, creating it first if the store has none. Safe to call often and concurrently. */
  async ensure(context: RequestContext = CLI_CONTEXT): Promise<CaInfo> {
    return infoOf(await this.#load(context));
  }

  /** The CA certificate as PEM (for `/.kanmon/ca/cert` and for clients' trust stores). */
  async certificatePem(): Promise<string> {
    return (await this.#load()).pem;
  }

  async certificateDer(): Promise<Uint8Array> {
    return new Uint8Array((await this.#load()).record.certificateDer);
  }

  /**
   * The CAs the TLS listener verifies client certificates against (`ca` of tls.createServer).
   * Today Kanmon's own CA; extra trusted CAs from config belong to the listener.
   */
  async trustedCaPems(): Promise<string[]> {
    return [await this.certificatePem()];
  }

  /** The current CRL, DER. Rebuilt after a local revocation, when older than a minute, or near its nextUpdate. */
  async crlDer(): Promise<Uint8Array> {
    const now = this.#now();
    const cached = this.#crl;
    if (cached && now - cached.builtAt < CRL_MAX_AGE_MS && now < cached.nextUpdate - CRL_MAX_AGE_MS) return cached.der;
    if (!this.#crlBuilding) {
      const generation = this.#crlGeneration;
      this.#crlBuilding = this.#buildCrl()
        .then((built) => {
          if (generation === this.#crlGeneration) this.#crl = built;
          return built;
        })
        .finally(() => {
          this.#crlBuilding = undefined;
        });
    }
    return (await this.#crlBuilding).der;
  }

  async crlPem(): Promise<string> {
    return x509.PemConverter.encode(toArrayBuffer(await this.crlDer()), 'X509 CRL');
  }

  /** Forget the cached CRL: called on every revocation this node makes. */
  invalidateCrl(): void {
    this.#crlGeneration++;
    this.#crl = undefined;
  }

  /**
   * Signs an end-entity certificate for TLS client authentication (RFC 5280 §4.2.1.3 and
   * §4.2.1.12: digitalSignature, EKU clientAuth). Returns DER.
   */
  async signClientCertificate(template: ClientCertificateTemplate): Promise<Uint8Array> {
    const ca = await this.#load();
    const caNotAfter = ca.certificate.notAfter.getTime();
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: template.serial,
      subject: template.subject,
      // RFC 5280 §4.1.2.4: the issuer field equals the CA's subject, byte for byte.
      issuer: ca.certificate.subjectName,
      notBefore: template.notBefore,
      // A chain is valid only while every certificate in it is: never outlive the CA.
      notAfter: new Date(Math.min(template.notAfter.getTime(), caNotAfter)),
      publicKey: template.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        // RFC 5280 §4.2.1.9: an end entity; critical so that no one treats it as a CA.
        new x509.BasicConstraintsExtension(false, undefined, true),
        // The client signs the TLS handshake (CertificateVerify) and nothing else.
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
        // RFC 5280 §4.2.1.6: non-critical, since the subject is not empty.
        new x509.SubjectAlternativeNameExtension(template.sanUris.map((value) => ({ type: 'url' as const, value })), false),
        await x509.SubjectKeyIdentifierExtension.create(template.publicKey),
        new x509.AuthorityKeyIdentifierExtension(ca.keyId),
        ...(template.crlUrls.length > 0 ? [new x509.CRLDistributionPointsExtension([...template.crlUrls], false)] : []),
      ],
    });
    return new Uint8Array(certificate.rawData);
  }

  /** The CA's public key, to check that a presented certificate was signed by it. */
  async verifyIssuedBy(der: Uint8Array): Promise<boolean> {
    const ca = await this.#load();
    try {
      const cert = new NodeX509Certificate(der);
      // Names first (cheap), then the signature with the CA's key (RFC 5280 §6.1.3 (a)(1), (a)(4)).
      return cert.checkIssued(ca.nodeCertificate) && cert.verify(ca.nodeCertificate.publicKey);
    } catch {
      return false;
    }
  }

  async #buildCrl(): Promise<CachedCrl> {
    const ca = await this.#load();
    const now = this.#now();
    const validity = this.#deps.config.crlValidityHours * HOUR;
    // RFC 5280 §3.3: an entry may leave the CRL once one regularly scheduled CRL has listed it
    // beyond the certificate's expiry; two validity periods of margin keeps that promise.
    const entries = (await this.#deps.store.clientCertificates.listRevoked()).filter((e) => e.expiresAt > now - 2 * validity);
    const der = await buildCrl({
      caCertificate: ca.certificate,
      signingKey: ca.signingKey,
      entries,
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + validity),
      // RFC 5280 §5.2.3: monotonically increasing. The build time in milliseconds grows on every
      // node; nodes build their own CRLs, which list the same revocations.
      crlNumber: BigInt(now),
    });
    return { der, builtAt: now, nextUpdate: now + validity };
  }

  #load(context: RequestContext = CLI_CONTEXT): Promise<LoadedCa> {
    if (!this.#loading) {
      this.#loading = this.#loadOrCreate(context).catch((err: unknown) => {
        // A failed load (store down, say) is not remembered: the next call tries again.
        this.#loading = undefined;
        throw err;
      });
    }
    return this.#loading;
  }

  async #loadOrCreate(context: RequestContext): Promise<LoadedCa> {
    const existing = await this.#deps.store.certificateAuthorities.get(CA_ID);
    if (existing) return this.#open(existing);
    const { record, info } = await this.#create();
    try {
      await this.#deps.store.certificateAuthorities.create(record);
    } catch (err) {
      if (!(err instanceof CertificateAuthorityExistsError)) throw err;
      // Another node made it first: use theirs, so every node trusts and signs with one CA.
      const winner = await this.#deps.store.certificateAuthorities.get(CA_ID);
      if (!winner) throw err;
      return this.#open(winner);
    }
    await this.#deps.audit.record({
      type: 'ca.create',
      result: 'success',
      actor: 'system',
      context,
      details: { subject: info.subject, serial: info.serial, fingerprint: info.fingerprint, notAfter: info.notAfter.toISOString() },
    });
    return this.#open(record);
  }

  async #create(): Promise<{ record: CertificateAuthorityRecord; info: CaInfo }> {
    const now = this.#now();
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
    const notBefore = new Date(now - BACKDATE_MS);
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerialHex(),
      name: caName(this.#deps.config),
      notBefore,
      notAfter: new Date(notBefore.getTime() + CA_LIFETIME_MS),
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: await rootCaExtensions(keys.publicKey),
    });
    const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    try {
      const sealedPrivateKey = await this.#deps.secrets.seal(pkcs8, CA_KEY_CONTEXT);
      const record: CertificateAuthorityRecord = { id: CA_ID, certificateDer: new Uint8Array(certificate.rawData), sealedPrivateKey, createdAt: now };
      return { record, info: infoOf({ record, certificate }) };
    } finally {
      pkcs8.fill(0);
    }
  }

  async #open(record: CertificateAuthorityRecord): Promise<LoadedCa> {
    const certificate = new x509.X509Certificate(toArrayBuffer(record.certificateDer));
    const pkcs8 = await this.#deps.secrets.open(record.sealedPrivateKey, CA_KEY_CONTEXT);
    try {
      // A record whose key does not belong to its certificate must stop here, not sign garbage.
      const derived = createPublicKey(createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
      if (!Buffer.from(derived).equals(Buffer.from(certificate.publicKey.rawData))) {
        throw new Error('the stored CA private key does not match the CA certificate; the CA record is damaged');
      }
      const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, false, ['sign']);
      const keyId = certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      if (!keyId) throw new Error('the stored CA certificate has no subjectKeyIdentifier');
      return { record, certificate, pem: `${certificate.toString('pem').trim()}\n`, signingKey, keyId, nodeCertificate: new NodeX509Certificate(record.certificateDer) };
    } finally {
      pkcs8.fill(0);
    }
  }
}

function caName(config: CaConfig): x509.JsonName {
  // Most significant first, as people read it: C, O, OU, CN.
  return [
    ...(config.country ? [{ C: [config.country] }] : []),
    ...(config.organization ? [{ O: [config.organization] }] : []),
    ...(config.organizationalUnit ? [{ OU: [config.organizationalUnit] }] : []),
    { CN: [config.commonName] },
  ];
}

function infoOf(ca: { record: CertificateAuthorityRecord; certificate: x509.X509Certificate }): CaInfo {
  return {
    subject: ca.certificate.subject,
    serial: normalizeSerial(ca.certificate.serialNumber),
    fingerprint: certificateFingerprint(ca.record.certificateDer),
    notBefore: ca.certificate.notBefore,
    notAfter: ca.certificate.notAfter,
    createdAt: ca.record.createdAt,
    keyAlgorithm: 'EC P-256',
  };
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
