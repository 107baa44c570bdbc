import type { PasskeyRequirement } from '../policy/user-requirements.js';
import type { StepUpReason } from '../policy/decide.js';
import { ServiceError } from './errors.js';

/**
 * Where a new passkey should live, as the enrollment page offers it (in this order):
 * - platform: this device's own authenticator (Windows Hello, Touch ID, Android screen lock);
 * - phone: a phone through the browser's QR code (cross-device / hybrid transport);
 * - security-key: a USB or NFC key, whose credential never leaves it.
 */
export const AUTHENTICATOR_CHOICES = ['platform', 'phone', 'security-key'] as const;
export type AuthenticatorChoice = (typeof AUTHENTICATOR_CHOICES)[number];

export interface RegistrationPreferences {
  readonly authenticatorAttachment?: 'platform' | 'cross-platform';
  readonly hints?: readonly ('security-key' | 'client-device' | 'hybrid')[];
  readonly attestation: 'none' | 'direct';
}

/** The choice policy leaves the user: a group rule allows a security key only; otherwise theirs. */
export function effectiveChoice(requirement: PasskeyRequirement, choice: AuthenticatorChoice | undefined): AuthenticatorChoice | undefined {
  if (requirement.groups.length > 0) return 'security-key';
  return choice ?? (requirement.deviceBound ? 'security-key' : undefined);
}

/**
 * Registration options for a choice (WebAuthn §5.4.5 authenticatorAttachment, L3 §5.4 hints).
 * A phone gets no attachment and the 'hybrid' hint: the browser leads with its QR code without
 * ruling out the other choices. A security key is 'cross-platform' with the 'security-key' hint,
 * so a user who needs a device-bound passkey is not steered into a synced one that would be
 * refused where it matters. Attestation is requested when an AAGUID allowlist will need proof.
 */
export function registrationPreferences(requirement: PasskeyRequirement, choice: AuthenticatorChoice | undefined): RegistrationPreferences {
  const attestation = requirement.attestation;
  switch (effectiveChoice(requirement, choice)) {
    case 'platform':
      return { authenticatorAttachment: 'platform', hints: ['client-device'], attestation };
    case 'phone':
      return { hints: ['hybrid'], attestation };
    case 'security-key':
      return { authenticatorAttachment: 'cross-platform', hints: ['security-key'], attestation };
    default:
      return { attestation };
  }
}

/** A new passkey that policy would refuse everywhere this user signs in. */
export class PasskeyPolicyError extends ServiceError {
  constructor(readonly reason: StepUpReason) {
    super('forbidden', `the new passkey does not satisfy the user's passkey policy: ${reason}`);
    this.name = 'PasskeyPolicyError';
  }
}
