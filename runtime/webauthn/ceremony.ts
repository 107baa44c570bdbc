/**
 * What registration and authentication share: their dependencies, the algorithms we accept,
 * and the single-use challenge that binds a browser's response to the options we issued.
 */
import { randomBytes } from 'node:crypto';

import type { WebAuthnConfig } from '../config/schema.js';
import type { Ceremony, Challenge, Store } from '../store/types.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import { CeremonyError } from './errors.js';
import type { ClientData } from './response-shape.js';

export interface CeremonyDeps {
  readonly store: Store;
  readonly rp: WebAuthnConfig;
  /** Epoch milliseconds; injectable so tests can move time. @default Date.now */
  readonly now?: () => number;
  /**
   * Names, attestation roots and status reports of authenticator models (FIDO MDS3): models
   * reported revoked or compromised can neither register nor sign in. @default built-in names only
   */
  readonly metadata?: AuthenticatorMetadata;
}

/**
 * COSE algorithms offered at registration and accepted at verification, most preferred first:
 * ES256 (every passkey provider and security key), Ed25519, and RS256 (Windows Hello on TPMs).
 * Pinned rather than taking the library default, so that a library upgrade cannot silently
 * start accepting keys the rest of the system has not been tested with.
 */
export const SUPPORTED_ALGORITHM_IDS: readonly number[] = [-7, -8, -257];

/** 32 bytes: WebAuthn §13.4.3 asks for at least 16 random bytes. */
const CHALLENGE_BYTES = 32;

export function clock(deps: CeremonyDeps): number {
  return (deps.now ?? Date.now)();
}

/** A fresh random challenge, as raw bytes for the library. */
export function newChallengeBytes(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(randomBytes(CHALLENGE_BYTES));
}

/** Stores the challenge the browser will echo back, with the ceremony it is valid for. */
export async function storeChallenge(
  deps: CeremonyDeps,
  fields: { challenge: string; ceremony: Ceremony; subject: string; data?: string },
): Promise<Challenge> {
  const now = clock(deps);
  const challenge: Challenge = {
    challenge: fields.challenge,
    ceremony: fields.ceremony,
    subject: fields.subject,
    createdAt: now,
    expiresAt: now + deps.rp.challengeTtlSeconds * 1000,
    ...(fields.data !== undefined ? { data: fields.data } : {}),
  };
  await deps.store.challenges.put(challenge);
  return challenge;
}

/**
 * Consumes the challenge named in clientDataJSON and checks what it was issued for.
 * The challenge is removed before anything else is verified, so every response, good or
 * bad, uses it up: a replay of the same response finds nothing (WebAuthn §13.4.3).
 */
export async function consumeChallenge(
  deps: CeremonyDeps,
  clientData: ClientData,
  expected: { ceremony: Ceremony; subject: string },
): Promise<Challenge> {
  const now = clock(deps);
  const challenge = await deps.store.challenges.consume(clientData.challenge);
  if (!challenge) {
    throw new CeremonyError(
      'challenge-unknown',
      `challenge ${abbreviate(clientData.challenge)} was never issued or has already been used`,
    );
  }
  if (challenge.ceremony !== expected.ceremony) {
    throw new CeremonyError(
      'challenge-wrong-ceremony',
      `expected a ${expected.ceremony} challenge, got one issued for ${challenge.ceremony}`,
    );
  }
  if (now >= challenge.expiresAt) {
    throw new CeremonyError(
      'challenge-expired',
      `challenge expired at ${new Date(challenge.expiresAt).toISOString()}, response arrived at ${new Date(now).toISOString()}`,
    );
  }
  if (challenge.subject !== expected.subject) {
    throw new CeremonyError(
      'challenge-wrong-subject',
      `expected a challenge for subject ${JSON.stringify(expected.subject)}, got one issued for ${JSON.stringify(challenge.subject)}`,
    );
  }
  return challenge;
}

/**
 * The clientDataJSON checks we make ourselves before the library repeats them, so that the
 * reason is exact: WebAuthn §7.1 steps 7 and 9, §7.2 steps 11 and 13.
 */
export function checkClientData(rp: WebAuthnConfig, clientData: ClientData, expectedType: 'webauthn.create' | 'webauthn.get'): void {
  if (clientData.type !== expectedType) {
    throw new CeremonyError(
      'client-data-type-mismatch',
      `expected clientData.type ${JSON.stringify(expectedType)}, got ${JSON.stringify(clientData.type.slice(0, 64))}`,
    );
  }
  if (!rp.origins.includes(clientData.origin)) {
    throw new CeremonyError(
      'origin-mismatch',
      `expected origin ${rp.origins.map((o) => JSON.stringify(o)).join(' or ')}, got ${JSON.stringify(clientData.origin.slice(0, 256))}`,
    );
  }
  // The portal is never meant to run inside another site's frame; a ceremony performed in a
  // cross-origin iframe is refused even when the frame's own origin is ours (WebAuthn §5.8.1).
  if (clientData.crossOrigin || clientData.topOrigin !== undefined) {
    throw new CeremonyError(
      'origin-mismatch',
      `expected a top-level ceremony, got crossOrigin=${clientData.crossOrigin} topOrigin=${JSON.stringify(clientData.topOrigin ?? null)}`,
    );
  }
}

/** A credential id for a log line: whole when short, cut (with its length) when long. */
export function describeId(id: string): string {
  return id.length > 64 ? `${id.slice(0, 64)}… (${id.length} characters)` : id;
}

function abbreviate(value: string): string {
  return value.length > 12 ? `${value.slice(0, 12)}…` : value;
}
