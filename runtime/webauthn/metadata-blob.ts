/**
 * A FIDO Metadata Service BLOB (FIDO MDS3 §3.1.6): a JWT whose payload lists authenticator
 * models by AAGUID with their metadata statements (names, attestation roots) and status
 * reports. Kanmon reads one from a file at start-up and never fetches anything at run time.
 *
 * The BLOB is used only when its signature verifies and its x5c chain reaches a trusted root
 * (MDS3 §3.2 "Metadata BLOB object processing rules", steps 4-5); otherwise loading fails and
 * Kanmon refuses to start, so an administrator never runs on a file they believe is in force.
 * What is not done, because it would need the network: the CRL checks of step 4, and
 * downloading a fresh BLOB when nextUpdate has passed (a stale BLOB is reported, not refused).
 */
import { createHash, verify as verifySignature, X509Certificate, constants } from 'node:crypto';

export class MetadataBlobError extends Error {
  override readonly name = 'MetadataBlobError';
}

/** MDS3 §3.1.4 AuthenticatorStatus values that mean the model must not be trusted with a new credential. */
export const REFUSED_STATUSES: ReadonlySet<string> = new Set([
  'REVOKED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
]);

export interface MetadataStatusReport {
  readonly status: string;
  readonly effectiveDate?: string;
}

/** One FIDO2 entry of the BLOB (entries without an AAGUID are U2F/UAF models and are skipped). */
export interface MetadataEntry {
  /** Lower case, hyphenated. */
  readonly aaguid: string;
  readonly description?: string;
  /** DER of the roots this model's attestation certificates chain to (MDS3 metadata statement). */
  readonly attestationRootCertificates: readonly Uint8Array[];
  readonly statusReports: readonly MetadataStatusReport[];
}

export interface VerifiedMetadataBlob {
  /** The BLOB's serial number (`no`). */
  readonly serial: number;
  /** ISO date after which a newer BLOB exists. */
  readonly nextUpdate: string;
  readonly entries: readonly MetadataEntry[];
  /** Subject of the certificate that signed the BLOB, and of the root it chained to. */
  readonly signer: string;
  readonly root: string;
}

export interface VerifyMetadataBlobOptions {
  /** PEM certificates the BLOB's chain may end at. */
  readonly roots: readonly string[];
  /** Epoch ms, for certificate validity. */
  readonly now: number;
}

/** JWS algorithms (RFC 7518 §3.1) a BLOB may be signed with, and how node:crypto verifies each. */
const JWS_ALGORITHMS: Readonly<Record<string, { hash: string; kind: 'ec' | 'rsa' | 'pss'; saltLength?: number }>> = {
  ES256: { hash: 'sha256', kind: 'ec' },
  ES384: { hash: 'sha384', kind: 'ec' },
  ES512: { hash: 'sha512', kind: 'ec' },
  RS256: { hash: 'sha256', kind: 'rsa' },
  RS384: { hash: 'sha384', kind: 'rsa' },
  RS512: { hash: 'sha512', kind: 'rsa' },
  PS256: { hash: 'sha256', kind: 'pss', saltLength: 32 },
  PS384: { hash: 'sha384', kind: 'pss', saltLength: 48 },
  PS512: { hash: 'sha512', kind: 'pss', saltLength: 64 },
};

const AAGUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Verifies the BLOB's chain and signature, then parses its entries. @throws MetadataBlobError */
export function verifyMetadataBlob(jwt: string, opts: VerifyMetadataBlobOptions): VerifiedMetadataBlob {
  const parts = jwt.trim().split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    throw new MetadataBlobError('the metadata BLOB is not a JWT in compact serialisation (three base64url parts)');
  }
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = parseJsonPart(headerPart, 'header');

  const alg = typeof header.alg === 'string' ? header.alg : '';
  const algorithm = JWS_ALGORITHMS[alg];
  if (!algorithm) throw new MetadataBlobError(`the metadata BLOB's alg must be one of ${Object.keys(JWS_ALGORITHMS).join(', ')}, got ${JSON.stringify(header.alg)}`);

  // MDS3 §3.2 step 4: the chain comes from x5c (x5u would mean a download, which we never do).
  if (!Array.isArray(header.x5c) || header.x5c.length === 0 || !header.x5c.every((c) => typeof c === 'string')) {
    throw new MetadataBlobError('the metadata BLOB has no x5c certificate chain in its header');
  }
  const chain = (header.x5c as string[]).map((c, i) => {
    try {
      // RFC 7515 §4.1.6: x5c entries are standard base64 (not base64url) DER.
      return new X509Certificate(Buffer.from(c, 'base64'));
    } catch (err) {
      throw new MetadataBlobError(`x5c[${i}] of the metadata BLOB is not an X.509 certificate`, { cause: err });
    }
  });
  const anchors = opts.roots.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw new MetadataBlobError(`trusted root ${i} for the metadata BLOB is not a PEM certificate`, { cause: err });
    }
  });
  const root = verifyChain(chain, anchors, opts.now);

  // MDS3 §3.2 step 5: the signature over the JWS signing input, with the leaf's key.
  const signingInput = Buffer.from(`${headerPart}.${payloadPart}`, 'ascii');
  const signature = Buffer.from(signaturePart, 'base64url');
  const key = chain[0]!.publicKey;
  let ok = false;
  try {
    ok = verifySignature(
      algorithm.hash,
      signingInput,
      algorithm.kind === 'ec'
        ? { key, dsaEncoding: 'ieee-p1363' }
        : algorithm.kind === 'pss'
          ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.saltLength! }
          : { key },
      signature,
    );
  } catch (err) {
    throw new MetadataBlobError(`the metadata BLOB's ${alg} signature could not be checked with the key of ${chain[0]!.subject.replace(/\n/g, ', ')}`, { cause: err });
  }
  if (!ok) throw new MetadataBlobError(`the metadata BLOB's ${alg} signature does not verify with the key of ${chain[0]!.subject.replace(/\n/g, ', ')}`);

  const payload = parseJsonPart(payloadPart, 'payload');
  if (typeof payload.no !== 'number' || !Number.isInteger(payload.no)) throw new MetadataBlobError(`the metadata BLOB's "no" must be an integer, got ${show(payload.no)}`);
  if (typeof payload.nextUpdate !== 'string') throw new MetadataBlobError(`the metadata BLOB's "nextUpdate" must be a date, got ${show(payload.nextUpdate)}`);
  if (!Array.isArray(payload.entries)) throw new MetadataBlobError(`the metadata BLOB's "entries" must be a list, got ${show(payload.entries)}`);

  const entries: MetadataEntry[] = [];
  payload.entries.forEach((raw: unknown, i: number) => {
    const entry = parseEntry(raw, i);
    if (entry) entries.push(entry);
  });
  return {
    serial: payload.no,
    nextUpdate: payload.nextUpdate,
    entries,
    signer: oneLine(chain[0]!.subject),
    root: oneLine(root.subject),
  };
}

/**
 * Checks that each certificate is in its validity period and signed by the next one, and that
 * the last is signed by (or is) one of the anchors. Returns the anchor reached.
 */
export function verifyChain(chain: readonly X509Certificate[], anchors: readonly X509Certificate[], now: number): X509Certificate {
  const within = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (!within(cert)) throw new MetadataBlobError(`certificate ${oneLine(cert.subject)} is outside its validity period (${cert.validFrom} to ${cert.validTo})`);
    const anchor = anchors.find((a) => a.raw.equals(cert.raw));
    if (anchor) return anchor;
    const next = chain[i + 1];
    if (next) {
      if (!next.ca || !cert.checkIssued(next) || !cert.verify(next.publicKey)) {
        throw new MetadataBlobError(`certificate ${oneLine(cert.subject)} is not signed by the next certificate in the chain, ${oneLine(next.subject)}`);
      }
      continue;
    }
    const issuer = anchors.find((a) => a.ca && cert.checkIssued(a) && cert.verify(a.publicKey));
    if (!issuer) {
      throw new MetadataBlobError(`the chain ends at ${oneLine(cert.subject)}, issued by ${oneLine(cert.issuer)}, which is not a trusted root`);
    }
    if (!within(issuer)) throw new MetadataBlobError(`the root ${oneLine(issuer.subject)} is outside its validity period`);
    return issuer;
  }
  throw new MetadataBlobError('the certificate chain is empty');
}

function parseEntry(raw: unknown, index: number): MetadataEntry | undefined {
  if (!raw || typeof raw !== 'object') throw new MetadataBlobError(`entries[${index}] of the metadata BLOB is not an object`);
  const e = raw as Record<string, unknown>;
  if (typeof e.aaguid !== 'string') return undefined;
  const aaguid = e.aaguid.toLowerCase();
  if (!AAGUID.test(aaguid)) throw new MetadataBlobError(`entries[${index}].aaguid must be an AAGUID, got ${show(e.aaguid)}`);
  const statement = (e.metadataStatement && typeof e.metadataStatement === 'object' ? e.metadataStatement : {}) as Record<string, unknown>;
  const roots = Array.isArray(statement.attestationRootCertificates) ? statement.attestationRootCertificates : [];
  const reports = Array.isArray(e.statusReports) ? e.statusReports : [];
  return {
    aaguid,
    ...(typeof statement.description === 'string' && statement.description.trim() ? { description: statement.description.trim().slice(0, 200) } : {}),
    attestationRootCertificates: roots.filter((r): r is string => typeof r === 'string').map((r) => new Uint8Array(Buffer.from(r, 'base64'))),
    statusReports: reports
      .filter((r): r is Record<string, unknown> => !!r && typeof r === 'object' && typeof (r as Record<string, unknown>).status === 'string')
      .map((r) => ({ status: r.status as string, ...(typeof r.effectiveDate === 'string' ? { effectiveDate: r.effectiveDate } : {}) })),
  };
}

function parseJsonPart(part: string, what: string): Record<string, any> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (err) {
    throw new MetadataBlobError(`the metadata BLOB's ${what} is not base64url JSON`, { cause: err });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new MetadataBlobError(`the metadata BLOB's ${what} is not a JSON object`);
  return value as Record<string, any>;
}

/** A short, stable fingerprint of a BLOB for logs: SHA-256 of the file, first 16 hex digits. */
export function blobFingerprint(jwt: string): string {
  return createHash('sha256').update(jwt.trim()).digest('hex').slice(0, 16);
}

function oneLine(name: string): string {
  return name.replace(/\n/g, ', ');
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
