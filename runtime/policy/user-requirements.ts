import type { GroupPolicyConfig, RouteConfig } from '../config/schema.js';
import { passkeyRuleFor, passkeyShortfall, routeAdmits, type PolicyPasskey, type StepUpReason } from './decide.js';

/** The parts of the configuration that say what a user's factors must be. */
export interface PolicyTable {
  readonly routes: readonly RouteConfig[];
  readonly groups: Readonly<Record<string, GroupPolicyConfig>>;
}

export interface PolicyUser {
  readonly username: string;
  readonly groups: readonly string[];
}

/**
 * What a user's passkeys must be, over every route the user may use: the input to registration
 * options (ask for a security key, request attestation) and to the account page's explanations.
 */
export interface PasskeyRequirement {
  /** Some route or group rule needs this user's passkey to be device-bound. */
  readonly deviceBound: boolean;
  /** Groups of the user whose rule demands device-bound passkeys on every route. */
  readonly groups: readonly string[];
  /** Routes the user may use that demand device-bound passkeys (their own flag or a group rule). */
  readonly routes: readonly string[];
  /** Every AAGUID some route of this user lists; registration then asks for attestation. */
  readonly aaguidAllowlist: readonly string[];
  /** 'direct' when some route checks AAGUIDs: its evidence is only as good as a verified attestation. */
  readonly attestation: 'direct' | 'none';
}

/** The routes a user may use at all (users/groups lists); factors are not considered here. */
export function routesOf(user: PolicyUser, policy: PolicyTable): RouteConfig[] {
  return policy.routes.filter((route) => routeAdmits(route, user));
}

export function passkeyRequirementFor(user: PolicyUser, policy: PolicyTable): PasskeyRequirement {
  const groups = user.groups.filter((g) => Object.hasOwn(policy.groups, g) && policy.groups[g]!.deviceBoundPasskeys);
  const routes: string[] = [];
  const aaguids = new Set<string>();
  for (const route of routesOf(user, policy)) {
    // Only routes where a passkey is one of the ways in can make demands of it.
    if (!route.policy.factors.some((alt) => alt.includes('passkey'))) continue;
    const rule = passkeyRuleFor(route, user, policy.groups);
    if (rule.deviceBound) routes.push(route.id);
    for (const a of rule.aaguidAllowlist) aaguids.add(a.toLowerCase());
  }
  return {
    deviceBound: groups.length > 0 || routes.length > 0,
    groups,
    routes,
    aaguidAllowlist: [...aaguids].sort(),
    attestation: aaguids.size > 0 ? 'direct' : 'none',
  };
}

/** Whether some route the user may use lets an authenticator app code stand in for a passkey. */
export function otpUsableFor(user: PolicyUser, policy: PolicyTable): boolean {
  return routesOf(user, policy).some((route) => route.policy.factors.some((alt) => alt.includes('otp') && !alt.includes('passkey')));
}

/** For one passkey: the routes (of those the user may use) it does not satisfy, and why. */
export function passkeyShortfallsByRoute(passkey: PolicyPasskey, user: PolicyUser, policy: PolicyTable): Array<{ route: string; reason: StepUpReason }> {
  const out: Array<{ route: string; reason: StepUpReason }> = [];
  for (const route of routesOf(user, policy)) {
    if (!route.policy.factors.some((alt) => alt.includes('passkey'))) continue;
    const reason = passkeyShortfall(passkey, passkeyRuleFor(route, user, policy.groups));
    if (reason) out.push({ route: route.id, reason });
  }
  return out;
}
