import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { ServiceError } from './errors.js';

/**
 * One-time codes for enrollment links, delivered on a second channel (the letter or e-mail
 * carries the link, a phone call or chat the code), so that either one alone enrolls nothing.
 */
export const ENROLLMENT_CODE_DIGITS = 8;
/** Wrong codes a link takes before it locks for good (an administrator issues a new one). */
export const MAX_ENROLLMENT_CODE_ATTEMPTS = 5;

export type EnrollmentCodeFailure = 'code-required' | 'code-wrong' | 'code-locked';

/** A refused code. The client learns which of the three it was, never anything about the code. */
export class EnrollmentCodeError extends ServiceError {
  constructor(
    readonly reason: EnrollmentCodeFailure,
    readonly attemptsLeft: number,
  ) {
    super('forbidden', reason === 'code-locked' ? 'the enrollment link is locked after too many wrong codes' : reason === 'code-required' ? 'the enrollment link needs its one-time code' : 'the one-time code is wrong');
    this.name = 'EnrollmentCodeError';
  }
}

/** Eight uniformly random digits (randomInt draws without modulo bias). */
export function newEnrollmentCode(): string {
  return String(randomInt(0, 10 ** ENROLLMENT_CODE_DIGITS)).padStart(ENROLLMENT_CODE_DIGITS, '0');
}

/** "1234 5678": easier to read out over the phone. */
export function formatEnrollmentCode(code: string): string {
  return `${code.slice(0, 4)} ${code.slice(4)}`;
}

/**
 * Bound to the link's token id, so a stored hash cannot be tried against another link, and a
 * leaked store gives no code worth guessing: without the link's token the code enrolls nothing.
 */
export function enrollmentCodeHash(tokenId: string, code: string): string {
  return createHash('sha256').update(`kanmon-enrollment-code\u0000${tokenId}\u0000${code}`).digest('base64url');
}

/**
 * What the user typed, as the eight digits it stands for: full-width digits from a Japanese
 * IME become ASCII (NFKC), spaces and hyphens go. Anything else is undefined (a wrong code).
 */
export function normalizeEnrollmentCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 64) return undefined;
  const digits = input.normalize('NFKC').replace(/[\s-]/g, '');
  return new RegExp(`^[0-9]{${ENROLLMENT_CODE_DIGITS}}$`).test(digits) ? digits : undefined;
}

/** Constant-time comparison of the hash of `code` with the stored one. */
export function enrollmentCodeMatches(tokenId: string, code: string, storedHash: string): boolean {
  const a = Buffer.from(enrollmentCodeHash(tokenId, code));
  const b = Buffer.from(storedHash);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The login-throttle record that counts a link's wrong codes (shared by every node through the store). */
export function enrollmentCodeThrottleKey(tokenId: string): string {
  return `enroll-code:${tokenId}`;
}
