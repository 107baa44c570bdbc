/**
 * Why a WebAuthn ceremony was refused. The reason is machine-readable and goes into the
 * audit event; the message says what was expected and what arrived and goes to the log.
 * Clients only ever see a generic text, so neither may be echoed back to them.
 */
export type CeremonyFailureReason =
  /** The posted JSON, base64url or CBOR is not what a browser sends. */
  | 'malformed'
  /** The challenge was never issued, or was already consumed (a replay). */
  | 'challenge-unknown'
  | 'challenge-expired'
  /** A registration challenge used for login, or the other way round. */
  | 'challenge-wrong-ceremony'
  /** The challenge was issued for another user, enrollment token, or for usernameless login. */
  | 'challenge-wrong-subject'
  /** clientDataJSON.type is not the one for this ceremony (webauthn.create / webauthn.get). */
  | 'client-data-type-mismatch'
  | 'origin-mismatch'
  | 'rp-id-mismatch'
  | 'user-verification-missing'
  | 'user-presence-missing'
  | 'credential-unknown'
  /** The credential belongs to a user other than the one the ceremony was started for. */
  | 'credential-not-allowed'
  | 'credential-exists'
  /** The authenticator's userHandle names a user other than the credential's owner. */
  | 'user-handle-mismatch'
  /** The signature counter did not move forward: possibly a cloned authenticator. */
  | 'counter-regression'
  | 'signature-invalid'
  | 'user-disabled'
  | 'user-unknown'
  /** The authenticator model is refused: revoked or compromised in the metadata, or not what policy needs. */
  | 'authenticator-refused'
  /** Anything else the verifier refused (attestation statement, key algorithm, …). */
  | 'verification-failed';

export const CEREMONY_FAILURE_REASONS: readonly CeremonyFailureReason[] = [
  'malformed',
  'challenge-unknown',
  'challenge-expired',
  'challenge-wrong-ceremony',
  'challenge-wrong-subject',
  'client-data-type-mismatch',
  'origin-mismatch',
  'rp-id-mismatch',
  'user-verification-missing',
  'user-presence-missing',
  'credential-unknown',
  'credential-not-allowed',
  'credential-exists',
  'user-handle-mismatch',
  'counter-regression',
  'signature-invalid',
  'user-disabled',
  'user-unknown',
  'authenticator-refused',
  'verification-failed',
];

/** The only error the ceremony functions throw for bad client input. */
export class CeremonyError extends Error {
  override readonly name = 'CeremonyError';

  constructor(
    readonly reason: CeremonyFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isCeremonyError(err: unknown): err is CeremonyError {
  return err instanceof CeremonyError;
}

/**
 * Turns whatever @simplewebauthn/server threw into a CeremonyError. The library reports every
 * refusal as a plain Error whose message says what was expected and what arrived; we keep that
 * message as the detail and derive the reason from it. Our own checks run first for the rules
 * we can state precisely (challenge, type, origin), so this mapping mostly sees the RP ID hash,
 * the UP/UV flags, and structural problems inside CBOR, authenticator data or signatures.
 */
export function fromVerifierError(err: unknown): CeremonyError {
  if (err instanceof CeremonyError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : '';
  return new CeremonyError(classifyVerifierError(name, message, err), `verifier refused the response: ${message}`, {
    cause: err,
  });
}

function classifyVerifierError(name: string, message: string, err: unknown): CeremonyFailureReason {
  if (name === 'UnexpectedRPIDHash' || /RP ID hash/i.test(message)) return 'rp-id-mismatch';
  if (/origin/i.test(message)) return 'origin-mismatch';
  if (/user verification/i.test(message)) return 'user-verification-missing';
  if (/user presence|user not present|user was not present/i.test(message)) return 'user-presence-missing';
  if (/response type/i.test(message)) return 'client-data-type-mismatch';
  if (/challenge/i.test(message)) return 'challenge-unknown';
  if (/counter/i.test(message)) return 'counter-regression';
  // A well-formed key of an algorithm we did not offer (WebAuthn §7.1 step 16).
  if (/public key alg/i.test(message)) return 'verification-failed';
  // A DER signature that does not parse, or whose r/s do not fit the curve.
  if (name === 'AsnSchemaValidationError' || /signature|ASN\.?1/i.test(message)) return 'signature-invalid';
  // WebAuthn L3 §6.1: BS without BE is an impossible flag combination.
  if (name === 'InvalidBackupFlags') return 'malformed';
  // CBOR that does not decode, authenticator data of the wrong length, or structures of the
  // wrong type inside otherwise well-formed CBOR (the library then trips over them).
  if (
    err instanceof TypeError ||
    err instanceof RangeError ||
    err instanceof SyntaxError ||
    /CBOR|well formed|no data|data was decoded|float|leftover bytes|authenticator data was|base64url|credential ID|no public key/i.test(
      message,
    )
  ) {
    return 'malformed';
  }
  return 'verification-failed';
}
