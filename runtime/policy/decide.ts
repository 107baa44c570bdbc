import type { Factor, GroupPolicyConfig, RouteConfig } from '../config/schema.js';

/** What the policy knows of the passkey that proved the 'passkey' factor of a session. */
export interface PolicyPasskey {
  /** BE = 0 at registration (WebAuthn §6.1.3): the key cannot be synced off the authenticator. */
  readonly deviceBound: boolean;
  readonly aaguid: string;
  /** The attestation verified and chained to a trusted root, so `aaguid` is proven, not claimed. */
  readonly attested: boolean;
}

/** What the policy sees of a signed-in user. */
export interface PolicySubject {
  readonly username: string;
  readonly groups: readonly string[];
  readonly disabled: boolean;
  /** Factors proven in this session, e.g. ['passkey']. */
  readonly authMethods: readonly string[];
  /** The passkey behind the 'passkey' factor; absent means there is no device evidence. */
  readonly passkey?: PolicyPasskey;
  /**
   * When the session began and when it was last active before this request (epoch ms), for
   * per-route timeouts. A route with a timeout treats a subject without them as timed out.
   */
  readonly session?: { readonly createdAt: number; readonly lastSeenAt: number };
}

/** What the policy sees of the device/connection (client certificate arrives with mTLS). */
export interface PolicyDevice {
  readonly clientCertificate?: { readonly valid: boolean };
}

/** The rest of the world the decision depends on, passed in so the function stays pure. */
export interface PolicyEnvironment {
  /** Epoch milliseconds, for per-route timeouts. */
  readonly now?: number;
  /** Group rules by group name (config.groups). @default {} */
  readonly groups?: Readonly<Record<string, GroupPolicyConfig>>;
}

export type DenyReason = 'no-route' | 'user-not-allowed' | 'user-disabled';
export type LoginReason = 'no-session' | 'route-idle-timeout' | 'route-absolute-timeout';
/**
 * Why a signed-in user must sign in again with something else:
 * - missing-factor: the session lacks a factor every alternative needs;
 * - passkey-not-device-bound: the passkey is synced (BE = 1), or the session has no evidence of it;
 * - authenticator-not-allowed: the passkey's AAGUID is not on the route's allowlist;
 * - authenticator-not-attested: the AAGUID is listed, but no verified attestation proves it.
 */
export type StepUpReason = 'missing-factor' | 'passkey-not-device-bound' | 'authenticator-not-allowed' | 'authenticator-not-attested';

/** What a route demands of the passkey factor for one user, and who demands it. */
export interface PasskeyRule {
  readonly deviceBound: boolean;
  /** 'route' and/or 'group:<name>' for each group rule that applies. */
  readonly requiredBy: readonly string[];
  /** AAGUIDs (lower case) that must be proven by attestation; empty means any model. */
  readonly aaguidAllowlist: readonly string[];
}

export type Decision =
  | { readonly kind: 'allow' }
  | { readonly kind: 'login'; readonly reason: LoginReason }
  | {
      readonly kind: 'step-up';
      readonly alternatives: readonly (readonly Factor[])[];
      readonly reason: StepUpReason;
      /** Present when the route or a group demands device-bound passkeys of this user. */
      readonly passkeyRule?: PasskeyRule;
    }
  | { readonly kind: 'deny'; readonly reason: DenyReason };

/** Whether the route's users/groups list lets this user in (empty lists let every signed-in user in). */
export function routeAdmits(route: RouteConfig, subject: { readonly username: string; readonly groups: readonly string[] }): boolean {
  const { allowUsers, allowGroups } = route.policy;
  if (allowUsers.length === 0 && allowGroups.length === 0) return true;
  return allowUsers.includes(subject.username) || subject.groups.some((g) => allowGroups.includes(g));
}

/** The passkey rule of a route for a user: the route's own flags plus every group rule of the user's groups. */
export function passkeyRuleFor(
  route: RouteConfig,
  subject: { readonly groups: readonly string[] },
  groups: Readonly<Record<string, GroupPolicyConfig>> = {},
): PasskeyRule {
  const requiredBy: string[] = [];
  if (route.policy.deviceBound) requiredBy.push('route');
  for (const g of subject.groups) {
    if (Object.hasOwn(groups, g) && groups[g]!.deviceBoundPasskeys) requiredBy.push(`group:${g}`);
  }
  return { deviceBound: requiredBy.length > 0, requiredBy, aaguidAllowlist: route.policy.aaguidAllowlist };
}

/** Why a passkey does not satisfy a rule, or undefined when it does. */
export function passkeyShortfall(passkey: PolicyPasskey | undefined, rule: PasskeyRule): StepUpReason | undefined {
  if (!rule.deviceBound && rule.aaguidAllowlist.length === 0) return undefined;
  // No evidence (a session from before evidence was recorded) never counts as device-bound.
  if (!passkey || !passkey.deviceBound) return 'passkey-not-device-bound';
  if (rule.aaguidAllowlist.length > 0) {
    if (!rule.aaguidAllowlist.includes(passkey.aaguid.toLowerCase())) return 'authenticator-not-allowed';
    if (!passkey.attested) return 'authenticator-not-attested';
  }
  return undefined;
}

/**
 * The access decision: a pure function of (route, session, device, environment), tested as a table.
 * - no route: deny (nothing passes through unconfigured);
 * - no session: login;
 * - a disabled user, or one outside the route's users/groups: deny;
 * - a session older than the route's absolute timeout, or idle longer than its idle timeout: login;
 * - factors proven (session methods plus device evidence) cover an alternative: allow. The
 *   'passkey' factor counts only when the passkey satisfies the route's and the user's groups'
 *   device-bound and AAGUID rules; the other factors are not affected by those rules;
 * - otherwise step-up, saying why.
 */
export function decideAccess(
  route: RouteConfig | undefined,
  subject: PolicySubject | undefined,
  device: PolicyDevice = {},
  env: PolicyEnvironment = {},
): Decision {
  if (!route) return { kind: 'deny', reason: 'no-route' };
  if (!subject) return { kind: 'login', reason: 'no-session' };
  if (subject.disabled) return { kind: 'deny', reason: 'user-disabled' };
  if (!routeAdmits(route, subject)) return { kind: 'deny', reason: 'user-not-allowed' };

  const timedOut = routeTimeout(route, subject, env.now);
  if (timedOut) return { kind: 'login', reason: timedOut };

  const { factors } = route.policy;
  const proven = new Set<string>(subject.authMethods);
  if (device.clientCertificate?.valid) proven.add('mtls');
  const rule = passkeyRuleFor(route, subject, env.groups);
  const shortfall = proven.has('passkey') ? passkeyShortfall(subject.passkey, rule) : undefined;
  const usable = new Set(proven);
  if (shortfall) usable.delete('passkey');
  if (factors.some((alternative) => alternative.every((f) => usable.has(f)))) return { kind: 'allow' };

  // The passkey is the reason only when it would have completed an alternative had it qualified.
  const passkeyWouldDo = shortfall !== undefined && factors.some((alternative) => alternative.every((f) => proven.has(f)));
  return {
    kind: 'step-up',
    alternatives: factors,
    reason: passkeyWouldDo ? shortfall : 'missing-factor',
    ...(rule.deviceBound || rule.aaguidAllowlist.length > 0 ? { passkeyRule: rule } : {}),
  };
}

/** Per-route timeouts tighten the global ones (which the session service already enforces). */
function routeTimeout(route: RouteConfig, subject: PolicySubject, now: number | undefined): LoginReason | undefined {
  const { absoluteTimeoutSeconds, idleTimeoutSeconds } = route.policy;
  if (absoluteTimeoutSeconds === undefined && idleTimeoutSeconds === undefined) return undefined;
  const s = subject.session;
  // Without the session's times or a clock the limit cannot be shown to hold: fail closed.
  if (!s || now === undefined) return absoluteTimeoutSeconds !== undefined ? 'route-absolute-timeout' : 'route-idle-timeout';
  if (absoluteTimeoutSeconds !== undefined && now - s.createdAt >= absoluteTimeoutSeconds * 1000) return 'route-absolute-timeout';
  if (idleTimeoutSeconds !== undefined && now - s.lastSeenAt >= idleTimeoutSeconds * 1000) return 'route-idle-timeout';
  return undefined;
}
