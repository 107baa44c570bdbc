/**
 * The registration ceremony (WebAuthn §7.1): options for navigator.credentials.create(), then
 * verification of what the browser returns. The verified credential is returned, not stored:
 * at enrollment the user record may not exist yet, so the caller stores both in order.
 */
import {
  generateRegistrationOptions,
  verifyRegistrationResponse,
  type PublicKeyCredentialCreationOptionsJSON,
  type VerifiedRegistrationResponse,
} from '@simplewebauthn/server';

import type { Challenge, PasskeyCredential } from '../store/types.js';
import { authenticatorName } from './aaguids.js';
import { judgeAttestation } from './attestation-trust.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import {
  checkClientData,
  clock,
  consumeChallenge,
  describeId,
  newChallengeBytes,
  storeChallenge,
  SUPPORTED_ALGORITHM_IDS,
  type CeremonyDeps,
} from './ceremony.js';
import { CeremonyError, fromVerifierError } from './errors.js';
import { parseRegistrationResponse } from './response-shape.js';

export interface StartPasskeyRegistrationInput {
  readonly user: { readonly id: string; readonly username: string; readonly displayName: string };
  /** What the challenge is bound to: the user id, or the enrollment token id. */
  readonly subject: string;
  /** The user's current passkeys, so the authenticator refuses to make a second one. */
  readonly existing: readonly PasskeyCredential[];
  /** Small JSON kept with the challenge and handed back at verification. */
  readonly data?: string;
  readonly authenticatorAttachment?: 'platform' | 'cross-platform';
  /**
   * WebAuthn L3 §5.4 hints: which UI the browser should lead with ('security-key' for a USB/NFC
   * key, 'hybrid' for a phone's QR code, 'client-device' for this device's own authenticator).
   */
  readonly hints?: readonly ('security-key' | 'client-device' | 'hybrid')[];
  /** 'direct' when an AAGUID allowlist must later be proven by the attestation (§5.4.7). @default 'none' */
  readonly attestation?: 'none' | 'direct';
}

export interface VerifyPasskeyRegistrationInput {
  /** The untrusted RegistrationResponseJSON as posted by the browser. */
  readonly response: unknown;
  /** Must equal the subject given at start. */
  readonly subject: string;
  /** The user the new credential will belong to. */
  readonly userId: string;
  /** The label the user gave; when empty, the authenticator's name is used. */
  readonly name: string;
  /** Names, attestation roots and status reports of authenticator models. @default deps.metadata */
  readonly metadata?: AuthenticatorMetadata;
}

export interface VerifiedPasskeyRegistration {
  /** Ready to store with store.credentials.create(). */
  readonly credential: PasskeyCredential;
  /** The consumed challenge, for its `data`. */
  readonly challenge: Challenge;
  /** Why the attestation is or is not trusted, for the audit event. */
  readonly attestationDetail: string;
}

/** WebAuthn §5.4.3: user.id is at most 64 bytes. */
const MAX_USER_HANDLE_BYTES = 64;

/**
 * The user handle we give authenticators: the UTF-8 bytes of our user id. It comes back as
 * userHandle in every discoverable login and is compared with the credential's owner.
 */
export function userHandleFor(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId, 'utf8'));
}

export async function startPasskeyRegistration(
  deps: CeremonyDeps,
  input: StartPasskeyRegistrationInput,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const userID = userHandleFor(input.user.id);
  if (userID.byteLength === 0 || userID.byteLength > MAX_USER_HANDLE_BYTES) {
    throw new RangeError(`user id must be 1 to ${MAX_USER_HANDLE_BYTES} bytes, got ${userID.byteLength}`);
  }
  const options = await generateRegistrationOptions({
    rpName: deps.rp.rpName,
    rpID: deps.rp.rpId,
    userName: input.user.username,
    userID,
    userDisplayName: input.user.displayName,
    challenge: newChallengeBytes(),
    timeout: deps.rp.challengeTtlSeconds * 1000,
    attestationType: input.attestation ?? 'none',
    excludeCredentials: input.existing.map((credential) => ({
      id: credential.id,
      transports: [...credential.transports],
    })),
    authenticatorSelection: {
      // Discoverable credentials make usernameless login possible (WebAuthn §6.2.2).
      residentKey: 'required',
      requireResidentKey: true,
      userVerification: deps.rp.userVerification,
      ...(input.authenticatorAttachment ? { authenticatorAttachment: input.authenticatorAttachment } : {}),
    },
    supportedAlgorithmIDs: [...SUPPORTED_ALGORITHM_IDS],
  });
  await storeChallenge(deps, {
    challenge: options.challenge,
    ceremony: 'registration',
    subject: input.subject,
    ...(input.data !== undefined ? { data: input.data } : {}),
  });
  // Set here rather than through the library's preferredAuthenticatorType, which cannot say
  // "no attachment, hint hybrid" (a phone's QR code without ruling out other choices).
  return input.hints && input.hints.length > 0 ? { ...options, hints: [...input.hints] } : options;
}

export async function verifyPasskeyRegistration(
  deps: CeremonyDeps,
  input: VerifyPasskeyRegistrationInput,
): Promise<VerifiedPasskeyRegistration> {
  const parsed = parseRegistrationResponse(input.response);
  const challenge = await consumeChallenge(deps, parsed.clientData, {
    ceremony: 'registration',
    subject: input.subject,
  });
  checkClientData(deps.rp, parsed.clientData, 'webauthn.create');

  let verification: VerifiedRegistrationResponse;
  try {
    verification = await verifyRegistrationResponse({
      response: parsed.json,
      expectedChallenge: challenge.challenge,
      expectedOrigin: [...deps.rp.origins],
      expectedRPID: deps.rp.rpId,
      expectedType: 'webauthn.create',
      // WebAuthn §7.1 steps 14-15: UP always, UV when the configuration requires it.
      requireUserPresence: true,
      requireUserVerification: deps.rp.userVerification === 'required',
      supportedAlgorithmIDs: [...SUPPORTED_ALGORITHM_IDS],
    });
  } catch (err) {
    throw fromVerifierError(err);
  }
  if (!verification.verified) {
    // WebAuthn §7.1 step 19: the attestation statement did not verify.
    throw new CeremonyError('verification-failed', 'the attestation statement did not verify');
  }
  const info = verification.registrationInfo;

  // The library takes the credential id from the authenticator data; the id the client put in
  // the JSON must be the same, or the client is describing a credential it did not create.
  if (info.credential.id !== parsed.credentialId) {
    throw new CeremonyError(
      'malformed',
      `expected the credential id in authenticator data to equal id ${describeId(parsed.credentialId)}, got ${describeId(info.credential.id)}`,
    );
  }

  // WebAuthn §7.1 step 22: a credential id registered to any user must not be registered again.
  const existing = await deps.store.credentials.get(info.credential.id);
  if (existing) {
    throw new CeremonyError(
      'credential-exists',
      `credential ${describeId(info.credential.id)} is already registered${existing.userId === input.userId ? ' to this user' : ' to another user'}`,
    );
  }

  const now = clock(deps);
  const metadata = input.metadata ?? deps.metadata;
  // FIDO MDS3 §3.1.4: a model whose status report says it is revoked or compromised gets no new credential.
  const status = metadata?.statusOf(info.aaguid);
  if (status?.refused) {
    throw new CeremonyError('authenticator-refused', `authenticator model ${info.aaguid} has metadata status ${status.status}`);
  }
  const attestation = metadata
    ? judgeAttestation({ format: info.fmt, attestationObject: info.attestationObject, aaguid: info.aaguid, metadata, now })
    : { format: info.fmt, trusted: false, detail: 'no metadata configured' };

  const name = input.name.trim() || metadata?.nameOf(info.aaguid) || authenticatorName(info.aaguid) || 'Passkey';
  const credential: PasskeyCredential = {
    id: info.credential.id,
    userId: input.userId,
    publicKey: new Uint8Array(info.credential.publicKey),
    counter: info.credential.counter,
    transports: parsed.transports,
    // WebAuthn §6.1.3: BE says whether the credential can be synced, BS whether it is.
    deviceType: info.credentialDeviceType,
    backedUp: info.credentialBackedUp,
    aaguid: info.aaguid,
    name,
    createdAt: now,
    attestationFormat: attestation.format,
    attestationTrusted: attestation.trusted,
  };
  return { credential, challenge, attestationDetail: attestation.detail };
}
