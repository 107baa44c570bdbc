/**
 * The authentication ceremony (WebAuthn §7.2): options for navigator.credentials.get(), then
 * verification of the assertion, the signature counter, and the compare-and-set that records
 * the credential's use.
 */
import {
  generateAuthenticationOptions,
  verifyAuthenticationResponse,
  type PublicKeyCredentialRequestOptionsJSON,
  type VerifiedAuthenticationResponse,
} from '@simplewebauthn/server';
import { decodeCredentialPublicKey } from '@simplewebauthn/server/helpers';

import { ConcurrentUpdateError, NotFoundError } from '../store/errors.js';
import type { PasskeyCredential, User } from '../store/types.js';
import {
  checkClientData,
  clock,
  consumeChallenge,
  describeId,
  newChallengeBytes,
  storeChallenge,
  type CeremonyDeps,
} from './ceremony.js';
import { CeremonyError, fromVerifierError } from './errors.js';
import { userHandleFor } from './registration.js';
import { parseAuthenticationResponse } from './response-shape.js';

export interface StartPasskeyAuthenticationInput {
  /** The user, when known (step-up, re-authentication); absent for usernameless login. */
  readonly userId?: string;
  /** That user's passkeys, offered to the browser; ignored without userId. */
  readonly allowCredentials?: readonly PasskeyCredential[];
}

export interface VerifyPasskeyAuthenticationInput {
  /** The untrusted AuthenticationResponseJSON as posted by the browser. */
  readonly response: unknown;
  /** The userId given at start; absent for usernameless login. */
  readonly subject?: string;
}

export interface VerifiedPasskeyAuthentication {
  readonly user: User;
  /** The credential as now stored: new counter and lastUsedAt. */
  readonly credential: PasskeyCredential;
}

export async function startPasskeyAuthentication(
  deps: CeremonyDeps,
  input: StartPasskeyAuthenticationInput,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const userId = input.userId;
  // Usernameless login sends no allowCredentials: the authenticator offers its discoverable
  // credentials, and naming none keeps us from revealing which accounts exist.
  const allow = userId === undefined ? [] : (input.allowCredentials ?? []).filter((c) => c.userId === userId);
  const options = await generateAuthenticationOptions({
    rpID: deps.rp.rpId,
    challenge: newChallengeBytes(),
    timeout: deps.rp.challengeTtlSeconds * 1000,
    userVerification: deps.rp.userVerification,
    allowCredentials: allow.map((credential) => ({ id: credential.id, transports: [...credential.transports] })),
  });
  await storeChallenge(deps, { challenge: options.challenge, ceremony: 'authentication', subject: userId ?? '' });
  return options;
}

export async function verifyPasskeyAuthentication(
  deps: CeremonyDeps,
  input: VerifyPasskeyAuthenticationInput,
): Promise<VerifiedPasskeyAuthentication> {
  const parsed = parseAuthenticationResponse(input.response);
  const challenge = await consumeChallenge(deps, parsed.clientData, {
    ceremony: 'authentication',
    subject: input.subject ?? '',
  });
  checkClientData(deps.rp, parsed.clientData, 'webauthn.get');

  // WebAuthn §7.2 step 7: the credential id names the public key to verify with.
  const credential = await deps.store.credentials.get(parsed.credentialId);
  if (!credential) {
    throw new CeremonyError('credential-unknown', `credential ${describeId(parsed.credentialId)} is not registered`);
  }
  // WebAuthn §7.2 steps 5-6: when the ceremony was started for a known user, only that user's
  // credentials may answer it.
  if (challenge.subject !== '' && credential.userId !== challenge.subject) {
    throw new CeremonyError(
      'credential-not-allowed',
      `expected a credential of user ${challenge.subject}, got one of user ${credential.userId}`,
    );
  }
  const user = await deps.store.users.getById(credential.userId);
  if (!user) {
    throw new CeremonyError('user-unknown', `credential ${describeId(credential.id)} belongs to user ${credential.userId}, who does not exist`);
  }
  if (user.disabled) {
    throw new CeremonyError('user-disabled', `user ${user.id} (${user.username}) is disabled`);
  }
  // WebAuthn §7.2 step 6: the authenticator's userHandle, when given, must name the owner.
  if (parsed.userHandle && !Buffer.from(parsed.userHandle).equals(userHandleFor(credential.userId))) {
    throw new CeremonyError(
      'user-handle-mismatch',
      `expected userHandle of user ${credential.userId}, got ${Buffer.from(parsed.userHandle).toString('base64url')}`,
    );
  }

  // FIDO MDS3 §3.1.4: a model reported revoked or compromised after registration no longer signs in.
  const status = deps.metadata?.statusOf(credential.aaguid);
  if (status?.refused) {
    throw new CeremonyError('authenticator-refused', `credential ${describeId(credential.id)} is of authenticator model ${credential.aaguid}, whose metadata status is ${status.status}`);
  }

  checkSignatureFormat(credential, parsed.signature);

  let verification: VerifiedAuthenticationResponse;
  try {
    verification = await verifyAuthenticationResponse({
      response: parsed.json,
      expectedChallenge: challenge.challenge,
      expectedOrigin: [...deps.rp.origins],
      expectedRPID: deps.rp.rpId,
      expectedType: 'webauthn.get',
      credential: {
        id: credential.id,
        publicKey: new Uint8Array(credential.publicKey),
        // The counter rule (step 21) runs below, after the signature is known to be good, so an
        // unsigned response can never raise a clone alarm. Counter 0 turns the library's own
        // check off: it only fires when the stored or the new counter is non-zero and the new
        // one is not above the stored one, which with 0 stored means never.
        counter: 0,
        transports: [...credential.transports],
      },
      // WebAuthn §7.2 steps 16-17: UP always, UV when the configuration requires it.
      requireUserVerification: deps.rp.userVerification === 'required',
    });
  } catch (err) {
    throw fromVerifierError(err);
  }
  // WebAuthn §7.2 step 20.
  if (!verification.verified) {
    throw new CeremonyError('signature-invalid', `the assertion signature does not verify with credential ${describeId(credential.id)}'s public key`);
  }

  // WebAuthn §7.2 step 21: a counter that does not move forward means two copies of the key
  // may exist. Authenticators without a counter (most synced passkeys) report 0 every time.
  const newCounter = verification.authenticationInfo.newCounter;
  const bothZero = newCounter === 0 && credential.counter === 0;
  if (!bothZero && newCounter <= credential.counter) {
    throw new CeremonyError(
      'counter-regression',
      `expected a signature counter above ${credential.counter}, got ${newCounter}: the authenticator may have been cloned`,
    );
  }

  const now = clock(deps);
  try {
    await deps.store.credentials.recordUse(credential.id, {
      expectedCounter: credential.counter,
      counter: newCounter,
      lastUsedAt: now,
    });
  } catch (err) {
    if (err instanceof ConcurrentUpdateError) {
      // Another assertion with this credential was accepted in between: the same counter
      // value cannot be used twice.
      throw new CeremonyError(
        'counter-regression',
        `credential ${describeId(credential.id)}'s counter changed from ${credential.counter} while this assertion (counter ${newCounter}) was verified`,
        { cause: err },
      );
    }
    if (err instanceof NotFoundError) {
      throw new CeremonyError('credential-unknown', `credential ${describeId(credential.id)} was deleted during the ceremony`, {
        cause: err,
      });
    }
    throw err;
  }
  return { user, credential: { ...credential, counter: newCounter, lastUsedAt: now } };
}

/** COSE algorithm ids (RFC 9053) whose signatures are DER ECDSA-Sig-Value. */
const ECDSA_ALGORITHMS: ReadonlySet<number> = new Set([-7, -35, -36]);
const EDDSA = -8;

/**
 * WebAuthn §6.5.6: an ECDSA signature is a DER-encoded ECDSA-Sig-Value (RFC 3279 §2.2.3) and an
 * Ed25519 signature is 64 raw bytes. Checking the form first means a signature that cannot even
 * be parsed is reported as what it is, rather than as whatever the ASN.1 parser complains of.
 */
function checkSignatureFormat(credential: PasskeyCredential, signature: Uint8Array): void {
  let alg: unknown;
  try {
    alg = decodeCredentialPublicKey(new Uint8Array(credential.publicKey)).get(3);
  } catch {
    // Our own stored key; if it does not decode, the verifier will say so.
    return;
  }
  if (typeof alg !== 'number') return;
  if (ECDSA_ALGORITHMS.has(alg) && !isDerEcdsaSignature(signature)) {
    throw new CeremonyError('signature-invalid', `expected a DER ECDSA signature for alg ${alg}, got ${signature.byteLength} bytes that are not one`);
  }
  if (alg === EDDSA && signature.byteLength !== 64) {
    throw new CeremonyError('signature-invalid', `expected a 64-byte Ed25519 signature, got ${signature.byteLength} bytes`);
  }
}

/**
 * SEQUENCE { INTEGER r, INTEGER s } with consistent lengths. Deliberately no stricter than
 * that (e.g. about minimal integer encoding), since the verifier accepts such signatures and
 * some authenticators produce them.
 */
function isDerEcdsaSignature(sig: Uint8Array): boolean {
  let i = 0;
  const byte = () => (i < sig.length ? sig[i++]! : -1);
  if (byte() !== 0x30) return false;
  let length = byte();
  // P-521 signatures exceed 127 bytes and use the one-byte long form.
  if (length === 0x81) length = byte();
  else if (length > 0x7f) return false;
  if (length < 0 || i + length !== sig.length) return false;
  for (let n = 0; n < 2; n += 1) {
    if (byte() !== 0x02) return false;
    const size = byte();
    // 66 bytes for a P-521 component, plus a leading zero.
    if (size < 1 || size > 67 || i + size > sig.length) return false;
    i += size;
  }
  return i === sig.length;
}
