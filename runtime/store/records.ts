/**
 * Rules both store implementations apply to record fields, so a bad argument is the same error
 * and a damaged stored value reads the same safe way in either store.
 */
import { StoreError } from './errors.js';
import type { CertificateOwner, EnrollmentPurpose, RevocationReason } from './types.js';

/** Unknown purposes read as 'enroll', the least privileged one: never as bootstrap-admin or recovery. */
export function purposeOf(value: string): EnrollmentPurpose {
  return value === 'bootstrap-admin' || value === 'recovery' ? value : 'enroll';
}

/** Time steps are non-negative integers (RFC 6238 §4.2: T = floor((now - T0) / X)). */
export function requireStep(step: number): void {
  if (!Number.isSafeInteger(step) || step < 0) throw new StoreError(`TOTP time step must be a non-negative integer, got ${step}`);
}

export function requireWindow(windowMs: number): number {
  if (!Number.isFinite(windowMs) || windowMs < 0) throw new StoreError(`throttle window must be a non-negative number of ms, got ${windowMs}`);
  return windowMs;
}

export const REVOCATION_REASONS: readonly RevocationReason[] = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
];

/** Unknown reasons read as 'unspecified' (RFC 5280 §5.3.1: the reason code that says nothing more). */
export function revocationReasonOf(value: string): RevocationReason {
  return (REVOCATION_REASONS as readonly string[]).includes(value) ? (value as RevocationReason) : 'unspecified';
}

/** 'user:<userId>' or 'shared:<label>': one key that both orders and selects by owner. */
export function certificateOwnerKey(owner: CertificateOwner): string {
  return owner.kind === 'user' ? `user:${owner.userId}` : `shared:${owner.label}`;
}
