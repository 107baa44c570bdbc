import { createHash, randomBytes } from 'node:crypto';
import type { CertificateOwner } from '../store/types.js';

/**
 * How a client certificate names its owner, so that the TLS listener can bind it to the user who
 * is signed in: one URI in the subjectAltName (RFC 5280 §4.2.1.6, uniformResourceIdentifier).
 *
 * - a user's certificate:   `urn:kanmon:user:<userId>` (the immutable user id, not the username);
 * - a shared device's one:  `urn:kanmon:shared:<label>`.
 *
 * User ids are base64url and labels are limited to [A-Za-z0-9._-], so both are valid URN
 * namespace-specific strings (RFC 8141 §2) without any escaping. The subject CN only helps
 * people pick the certificate on their device; nothing is decided by it.
 */
export const OWNER_URI_PREFIX = { user: 'urn:kanmon:user:', shared: 'urn:kanmon:shared:' } as const;

/** Labels of shared devices and of devices: short, printable, safe in file names and URNs. */
const SHARED_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const USER_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function ownerUri(owner: CertificateOwner): string {
  return owner.kind === 'user' ? OWNER_URI_PREFIX.user + owner.userId : OWNER_URI_PREFIX.shared + owner.label;
}

/** The owner a SAN URI names, or undefined for any other URI. */
export function ownerFromUri(uri: string): CertificateOwner | undefined {
  if (uri.startsWith(OWNER_URI_PREFIX.user)) {
    const userId = uri.slice(OWNER_URI_PREFIX.user.length);
    return USER_ID.test(userId) ? { kind: 'user', userId } : undefined;
  }
  if (uri.startsWith(OWNER_URI_PREFIX.shared)) {
    const label = uri.slice(OWNER_URI_PREFIX.shared.length);
    return SHARED_LABEL.test(label) ? { kind: 'shared', label } : undefined;
  }
  return undefined;
}

export function isSharedLabel(label: string): boolean {
  return SHARED_LABEL.test(label);
}

export function sameOwner(a: CertificateOwner, b: CertificateOwner): boolean {
  return a.kind === 'user' ? b.kind === 'user' && a.userId === b.userId : b.kind === 'shared' && a.label === b.label;
}

/** 'user:<id>' or 'shared:<label>', for messages and audit details. */
export function ownerKey(owner: CertificateOwner): string {
  return owner.kind === 'user' ? `user:${owner.userId}` : `shared:${owner.label}`;
}

/**
 * A new serial number: RFC 5280 §4.1.2.2 asks for a positive integer of at most 20 octets, unique
 * per CA; the CA/Browser Forum asks for at least 64 random bits. 16 random octets with the top
 * bit cleared (positive, no padding octet in DER) and the next bit set (never shorter, so the
 * hex form has no leading zero) carry 126 random bits. Uniqueness is still checked by the store.
 */
export function randomSerialHex(): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial.toString('hex');
}

/** One spelling of a serial: lower-case hex without leading zeros (node prints upper case). */
export function normalizeSerial(hex: string): string {
  const clean = hex.replace(/[:\s]/g, '').toLowerCase().replace(/^0+(?=.)/, '');
  if (!/^[0-9a-f]{1,40}$/.test(clean)) throw new TypeError(`a certificate serial is 1-40 hex digits, got ${JSON.stringify(hex.slice(0, 60))}`);
  return clean;
}

/** SHA-256 over the DER certificate, lower-case hex: what `openssl x509 -fingerprint -sha256` shows. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** A file name for a certificate, from the owner's name and the device label, with the serial's start to keep it unique. */
export function pkcs12FileName(ownerName: string, deviceLabel: string, serial: string): string {
  const safe = (text: string) =>
    text
      .normalize('NFKC')
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[-.]+|[-.]+$/g, '')
      .slice(0, 40);
  return [safe(ownerName) || 'certificate', safe(deviceLabel), serial.slice(0, 8)].filter(Boolean).join('-') + '.p12';
}
