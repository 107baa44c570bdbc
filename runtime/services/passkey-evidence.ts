import type { PasskeyCredential, SessionPasskey } from '../store/types.js';

/** RFC 8176 §2 authentication method reference values a passkey session carries besides 'passkey'. */
export const HARDWARE_KEY_AMR = 'hwk';
export const SOFTWARE_KEY_AMR = 'swk';

/** What a session keeps of the passkey that signed it in: the evidence device policies are checked against. */
export function passkeyEvidence(credential: PasskeyCredential): SessionPasskey {
  return {
    credentialId: credential.id,
    // WebAuthn §6.1.3: BE = 0 (singleDevice) means the key can never leave the authenticator.
    deviceBound: credential.deviceType === 'singleDevice',
    aaguid: credential.aaguid,
    attested: credential.attestationTrusted === true,
  };
}

/**
 * RFC 8176 §2: 'hwk' is proof of possession of a hardware-secured key, 'swk' of a software-secured
 * one. A synced passkey's private key is copied between devices by its provider, so it is not
 * bound to hardware even when each device keeps it in a secure element.
 */
export function amrForPasskey(evidence: SessionPasskey): string {
  return evidence.deviceBound ? HARDWARE_KEY_AMR : SOFTWARE_KEY_AMR;
}

/** The methods with the key-kind value matching the evidence (and no stale one of the pair). */
export function withPasskeyAmr(authMethods: readonly string[], evidence: SessionPasskey | undefined): string[] {
  const rest = authMethods.filter((m) => m !== HARDWARE_KEY_AMR && m !== SOFTWARE_KEY_AMR);
  return evidence && rest.includes('passkey') ? [...rest, amrForPasskey(evidence)] : rest;
}
