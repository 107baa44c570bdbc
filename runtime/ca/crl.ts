import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import type { RevocationReason, RevokedCertificateEntry } from '../store/types.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** RFC 5280 §5.3.1 CRLReason codes. */
const REASON_CODES: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
};

export interface CrlInput {
  readonly caCertificate: x509.X509Certificate;
  readonly signingKey: CryptoKey;
  readonly entries: readonly RevokedCertificateEntry[];
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** cRLNumber (RFC 5280 §5.2.3): a positive integer that grows with every CRL the CA issues. */
  readonly crlNumber: bigint;
}

/** The ECDSA signature both certificates and CRLs of the CA carry (RFC 5758 §3.2). */
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * Builds a v2 CRL (RFC 5280 §5.1) signed by the CA: issuer equal to the CA's subject, the two
 * extensions a conforming CA must include (authorityKeyIdentifier §5.2.1, cRLNumber §5.2.3),
 * and one entry per revoked serial with its reason code (§5.3.1).
 */
export async function buildCrl(input: CrlInput): Promise<Uint8Array> {
  const keyId = input.caCertificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  if (!keyId) throw new Error('the CA certificate has no subjectKeyIdentifier, which RFC 5280 §4.2.1.2 requires of a CA');
  const crl = await x509.X509CrlGenerator.create({
    // The issuer must equal the CA's subject byte for byte (RFC 5280 §5.1.2.3, §6.3.3 (b)).
    issuer: input.caCertificate.subjectName,
    thisUpdate: input.thisUpdate,
    nextUpdate: input.nextUpdate,
    signingAlgorithm: SIGNING_ALGORITHM,
    signingKey: input.signingKey,
    extensions: [new x509.AuthorityKeyIdentifierExtension(keyId), new x509.Extension('2.5.29.20', false, derInteger(input.crlNumber))],
    entries: input.entries.map((entry) => ({
      serialNumber: entry.serial,
      revocationDate: new Date(entry.revokedAt),
      // RFC 5280 §5.3.1: "the reason code CRL entry extension SHOULD be absent instead of using
      // the unspecified (0) reasonCode value".
      ...(entry.reason === 'unspecified' ? {} : { reason: REASON_CODES[entry.reason] }),
    })),
  });
  return new Uint8Array(crl.rawData);
}

/** DER INTEGER of a non-negative value (X.690 §8.3): minimal octets, a leading zero when the top bit is set. */
export function derInteger(value: bigint): Uint8Array<ArrayBuffer> {
  if (value < 0n) throw new RangeError('only non-negative integers are encoded here');
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, 'hex');
  if (body.length > 127) throw new RangeError('integer too large for a short-form length');
  return new Uint8Array([0x02, body.length, ...body]);
}
