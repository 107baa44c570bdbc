/**
 * Where the server certificate's shared state lives in the store's named documents, so every
 * node of a pair reads the same certificate, account and challenge answers:
 *
 * - `tls-server-certificate` / `current`: the certificate chain in service and its private key
 *   (sealed with the secret box, bound to the certificate's serial);
 * - `tls-acme-account` / <digest of the directory URL>: the ACME account key (sealed) and URL;
 * - `tls-acme-challenge` / `http-01:<token>` or `tls-alpn-01:<name>`: the key authorization a
 *   node answers with while an order is being validated (expires by itself);
 * - `tls-server-certificate-status` / `renewal`: the last attempt, its error and the shared
 *   back-off, for `kanmon cert server status` and so that no node retries before it is due.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { SecretBox } from '../secrets/secret-box.js';
import { ServiceError } from '../services/errors.js';
import type { DocumentStore, StoredDocument } from '../store/types.js';

export const CERTIFICATE_KIND = 'tls-server-certificate';
export const CERTIFICATE_ID = 'current';
export const ACCOUNT_KIND = 'tls-acme-account';
export const CHALLENGE_KIND = 'tls-acme-challenge';
export const STATUS_KIND = 'tls-server-certificate-status';
export const STATUS_ID = 'renewal';
/** The lease one node holds while it orders; the others wait for the certificate document. */
export const ORDER_LEASE_NAME = 'tls-acme-order';

export type StoredCertificateSource = 'acme' | 'imported';

/** The certificate in service, as the store holds it (the key still sealed). */
export interface CertificateDocument {
  readonly source: StoredCertificateSource;
  /** Leaf first, then the intermediates. */
  readonly chainPem: string;
  readonly sealedKey: string;
  readonly serial: string;
  readonly names: readonly string[];
  readonly issuer: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly obtainedAt: number;
}

/** The certificate in service with its key opened, ready for a secure context. */
export interface ServerCertificate {
  readonly source: StoredCertificateSource | 'file' | 'self-signed-dev' | 'placeholder';
  readonly chainPem: string;
  readonly keyPem: string;
  readonly serial: string;
  readonly names: readonly string[];
  readonly issuer: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** The store document's version, for acme and imported certificates. */
  readonly version?: number;
}

export interface AccountDocument {
  readonly directoryUrl: string;
  readonly sealedKey: string;
  readonly accountUrl?: string;
  readonly createdAt: number;
}

export interface RenewalStatus {
  readonly lastAttemptAt?: number;
  readonly lastSuccessAt?: number;
  readonly lastError?: string;
  /** Failures since the last success; the back-off grows with it. */
  readonly consecutiveFailures: number;
  /** No node starts an order before this (epoch ms), unless forced. */
  readonly nextAttemptAt?: number;
  /** Which node placed the last order. */
  readonly lastOrderBy?: string;
  /** When the last failure was notified, so a long failure is reminded daily instead of at every retry. */
  readonly lastNotifiedAt?: number;
}

/** A certificate, key or stored document that cannot be used; the CLI prints the message. */
export class ServerCertificateError extends ServiceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid-input', message, options);
    this.name = 'ServerCertificateError';
  }
}

function keyContext(serial: string): string {
  return `tls-server-key:${serial}`;
}

export function accountId(directoryUrl: string): string {
  return createHash('sha256').update(directoryUrl).digest('hex').slice(0, 32);
}

function accountKeyContext(id: string): string {
  return `tls-acme-account-key:${id}`;
}

/** What a PEM chain and key say about themselves, after checking they belong together. */
export function describeCertificate(chainPem: string, keyPem: string): Omit<CertificateDocument, 'source' | 'sealedKey' | 'obtainedAt' | 'chainPem'> {
  const pems = splitPemChain(chainPem);
  if (pems.length === 0) throw new ServerCertificateError('the certificate file holds no PEM certificate');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems[0]!);
  } catch (err) {
    throw new ServerCertificateError(`the certificate is not a valid X.509 certificate: ${(err as Error).message}`, { cause: err });
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new ServerCertificateError(`the private key is not a valid PEM private key: ${(err as Error).message}`, { cause: err });
  }
  if (!leaf.checkPrivateKey(key)) throw new ServerCertificateError('the private key does not belong to the certificate');
  return {
    serial: leaf.serialNumber.toLowerCase(),
    names: subjectAltDnsNames(leaf),
    issuer: leaf.issuer.replace(/\n/g, ', '),
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
  };
}

export function splitPemChain(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}

function subjectAltDnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  return san
    .split(/,\s*/)
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4).toLowerCase());
}

/** Reads and writes the documents above; the only place that seals and opens their keys. */
export class ServerCertificateDocuments {
  constructor(
    private readonly documents: DocumentStore,
    private readonly secrets: SecretBox,
  ) {}

  async certificateVersion(now: number): Promise<number | undefined> {
    return (await this.documents.get(CERTIFICATE_KIND, CERTIFICATE_ID, now))?.version;
  }

  async readCertificate(now: number): Promise<{ doc: CertificateDocument; version: number } | undefined> {
    const stored = await this.documents.get(CERTIFICATE_KIND, CERTIFICATE_ID, now);
    if (!stored) return undefined;
    return { doc: parseJson<CertificateDocument>(stored), version: stored.version };
  }

  async loadCertificate(now: number): Promise<ServerCertificate | undefined> {
    const read = await this.readCertificate(now);
    if (!read) return undefined;
    const { doc, version } = read;
    const keyPem = Buffer.from(await this.secrets.open(doc.sealedKey, keyContext(doc.serial))).toString('utf8');
    return { source: doc.source, chainPem: doc.chainPem, keyPem, serial: doc.serial, names: doc.names, issuer: doc.issuer, notBefore: doc.notBefore, notAfter: doc.notAfter, version };
  }

  /**
   * Stores a certificate as the one in service. `expectedVersion` is the version the caller
   * read before ordering: a node that lost its lease and raced another loses here instead of
   * overwriting a newer certificate.
   */
  async writeCertificate(
    source: StoredCertificateSource,
    chainPem: string,
    keyPem: string,
    opts: { now: number; expectedVersion?: number },
  ): Promise<StoredDocument> {
    const info = describeCertificate(chainPem, keyPem);
    const sealedKey = await this.secrets.seal(Buffer.from(keyPem, 'utf8'), keyContext(info.serial));
    const doc: CertificateDocument = { source, chainPem, sealedKey, ...info, obtainedAt: opts.now };
    return this.documents.put(
      { kind: CERTIFICATE_KIND, id: CERTIFICATE_ID, body: JSON.stringify(doc) },
      { now: opts.now, ...(opts.expectedVersion !== undefined ? { expectedVersion: opts.expectedVersion } : {}) },
    );
  }

  async readAccount(directoryUrl: string, now: number): Promise<{ keyPem: string; accountUrl?: string; version: number } | undefined> {
    const id = accountId(directoryUrl);
    const stored = await this.documents.get(ACCOUNT_KIND, id, now);
    if (!stored) return undefined;
    const doc = parseJson<AccountDocument>(stored);
    const keyPem = Buffer.from(await this.secrets.open(doc.sealedKey, accountKeyContext(id))).toString('utf8');
    return { keyPem, ...(doc.accountUrl ? { accountUrl: doc.accountUrl } : {}), version: stored.version };
  }

  async writeAccount(directoryUrl: string, keyPem: string, accountUrl: string | undefined, opts: { now: number; expectedVersion: number }): Promise<void> {
    const id = accountId(directoryUrl);
    const doc: AccountDocument = {
      directoryUrl,
      sealedKey: await this.secrets.seal(Buffer.from(keyPem, 'utf8'), accountKeyContext(id)),
      ...(accountUrl ? { accountUrl } : {}),
      createdAt: opts.now,
    };
    await this.documents.put({ kind: ACCOUNT_KIND, id, body: JSON.stringify(doc) }, opts);
  }

  async putChallenge(id: string, keyAuthorization: string, opts: { now: number; ttlMs: number }): Promise<void> {
    await this.documents.put({ kind: CHALLENGE_KIND, id, body: JSON.stringify({ keyAuthorization }), expiresAt: opts.now + opts.ttlMs }, { now: opts.now });
  }

  async getChallenge(id: string, now: number): Promise<string | undefined> {
    const stored = await this.documents.get(CHALLENGE_KIND, id, now);
    if (!stored) return undefined;
    const { keyAuthorization } = parseJson<{ keyAuthorization: string }>(stored);
    return typeof keyAuthorization === 'string' ? keyAuthorization : undefined;
  }

  async deleteChallenge(id: string): Promise<void> {
    await this.documents.delete(CHALLENGE_KIND, id);
  }

  async readStatus(now: number): Promise<{ status: RenewalStatus; version: number }> {
    const stored = await this.documents.get(STATUS_KIND, STATUS_ID, now);
    if (!stored) return { status: { consecutiveFailures: 0 }, version: 0 };
    return { status: parseJson<RenewalStatus>(stored), version: stored.version };
  }

  /** Written only by the lease holder, so an unconditional write is safe. */
  async writeStatus(status: RenewalStatus, now: number): Promise<void> {
    await this.documents.put({ kind: STATUS_KIND, id: STATUS_ID, body: JSON.stringify(status) }, { now });
  }
}

export function httpChallengeId(token: string): string {
  return `http-01:${token}`;
}

export function alpnChallengeId(name: string): string {
  return `tls-alpn-01:${name.toLowerCase()}`;
}

function parseJson<T>(doc: StoredDocument): T {
  try {
    return JSON.parse(doc.body) as T;
  } catch (err) {
    throw new ServerCertificateError(`stored ${doc.kind} ${doc.id} is not valid JSON`, { cause: err });
  }
}
