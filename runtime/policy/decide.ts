import type { Factor, RouteConfig } from '../config/schema.js';

/** What the policy sees of a signed-in user. */
export interface PolicySubject {
  readonly username: string;
  readonly groups: readonly string[];
  readonly disabled: boolean;
  /** Factors proven in this session, e.g. ['passkey']. */
  readonly authMethods: readonly string[];
}

/** What the policy sees of the device/connection (client certificate arrives with mTLS). */
export interface PolicyDevice {
  readonly clientCertificate?: { readonly valid: boolean };
}

export type Decision =
  | { readonly kind: 'allow' }
  | { readonly kind: 'login' }
  | { readonly kind: 'step-up'; readonly alternatives: readonly (readonly Factor[])[] }
  | { readonly kind: 'deny'; readonly reason: 'no-route' | 'user-not-allowed' | 'user-disabled' };

/**
 * The access decision: a pure function of (route, session, device), tested as a table.
 * - no route: deny (nothing passes through unconfigured);
 * - no session: login;
 * - a user outside the route's users/groups: deny;
 * - factors proven (session methods plus device evidence) cover no alternative: step-up;
 * - otherwise allow.
 */
export function decideAccess(route: RouteConfig | undefined, subject: PolicySubject | undefined, device: PolicyDevice = {}): Decision {
  if (!route) return { kind: 'deny', reason: 'no-route' };
  if (!subject) return { kind: 'login' };
  if (subject.disabled) return { kind: 'deny', reason: 'user-disabled' };
  const { allowUsers, allowGroups, factors } = route.policy;
  if (allowUsers.length > 0 || allowGroups.length > 0) {
    const byUser = allowUsers.includes(subject.username);
    const byGroup = subject.groups.some((g) => allowGroups.includes(g));
    if (!byUser && !byGroup) return { kind: 'deny', reason: 'user-not-allowed' };
  }
  const proven = new Set<string>(subject.authMethods);
  if (device.clientCertificate?.valid) proven.add('mtls');
  if (factors.some((alternative) => alternative.every((f) => proven.has(f)))) return { kind: 'allow' };
  return { kind: 'step-up', alternatives: factors };
}
