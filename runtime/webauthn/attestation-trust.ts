/**
 * Whether a verified attestation statement can be believed (WebAuthn §7.1 steps 20-21): the
 * library has checked the statement's signature and its certificate's fields for the format;
 * here the attestation certificate chain (x5c) must reach a root the FIDO Metadata Service
 * lists for the authenticator's AAGUID. Only then is the AAGUID proven, and only a proven
 * AAGUID can satisfy an allowlist.
 *
 * The library can also chain certificates itself, but its chain check fetches CRLs over the
 * network; Kanmon makes no network requests at run time, so every format's library roots are
 * emptied (which makes the library skip its own chain step) and the chain is checked here,
 * offline, against the metadata's roots only.
 */
import { X509Certificate } from 'node:crypto';
import { SettingsService } from '@simplewebauthn/server';
import { decodeAttestationObject } from '@simplewebauthn/server/helpers';

import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import { verifyChain } from './metadata-blob.js';

/** Every attestation format the library verifies, plus its MDS BLOB verifier's entry. */
const LIBRARY_ROOT_IDENTIFIERS = ['packed', 'fido-u2f', 'android-key', 'android-safetynet', 'apple', 'tpm', 'mds'] as const;
for (const identifier of LIBRARY_ROOT_IDENTIFIERS) SettingsService.setRootCertificates({ identifier, certificates: [] });

export interface AttestationVerdict {
  /** The attestation statement format ('none', 'packed', 'tpm', …). */
  readonly format: string;
  /** The chain reached a root the metadata lists for this AAGUID. */
  readonly trusted: boolean;
  /** Why it is (not) trusted, for the log and the audit event. */
  readonly detail: string;
}

/**
 * Judges the attestation of a registration the library has already verified.
 * `attestationObject` is the CBOR the library returned in registrationInfo.
 */
export function judgeAttestation(input: {
  readonly format: string;
  readonly attestationObject: Uint8Array;
  readonly aaguid: string;
  readonly metadata: AuthenticatorMetadata;
  readonly now: number;
}): AttestationVerdict {
  const { format } = input;
  if (format === 'none') return { format, trusted: false, detail: 'no attestation was sent' };
  let x5c: Uint8Array[] | undefined;
  try {
    x5c = decodeAttestationObject(new Uint8Array(input.attestationObject)).get('attStmt').get('x5c');
  } catch {
    return { format, trusted: false, detail: 'the attestation statement could not be read again' };
  }
  // Self attestation (WebAuthn §8.2: packed without x5c) is signed by the credential key itself.
  if (!x5c || x5c.length === 0) return { format, trusted: false, detail: 'self attestation: no certificate to chain' };
  const anchors = input.metadata.trustAnchorsFor(input.aaguid);
  if (anchors.length === 0) return { format, trusted: false, detail: `no metadata lists attestation roots for AAGUID ${input.aaguid}` };
  let chain: X509Certificate[];
  try {
    chain = x5c.map((der) => new X509Certificate(der));
  } catch {
    return { format, trusted: false, detail: 'an x5c certificate does not parse' };
  }
  try {
    const root = verifyChain(chain, anchors, input.now);
    return { format, trusted: true, detail: `chained to ${root.subject.replace(/\n/g, ', ')}` };
  } catch (err) {
    return { format, trusted: false, detail: (err as Error).message };
  }
}
