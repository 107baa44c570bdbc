import type { Factor, GroupPolicyConfig, MtlsConfig, RouteConfig } from '../config/schema.js';

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
  /** The user's id, which a user certificate must name to prove 'mtls' for this user. */
  readonly userId?: string;
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

/** Whom a client certificate belongs to: one user, or a shared device that proves only itself. */
export type PolicyCertificateOwner = { readonly kind: 'user'; readonly userId: string } | { readonly kind: 'shared'; readonly label: string };

/** The user a user certificate names, looked up by the caller, for certificate-only routes without a session. */
export interface PolicyCertificateHolder {
  readonly userId: string;
  readonly username: string;
  readonly groups: readonly string[];
  readonly disabled: boolean;
}

/**
 * What the policy sees of the device/connection: the client certificate this TLS connection
 * presented in its own handshake (RFC 8446 §4.4.2), as checked against Kanmon's CA and store.
 */
export interface PolicyDevice {
  readonly clientCertificate?: {
    readonly valid: boolean;
    /** Present for certificates Kanmon issued; absent (with valid false) for anything else. */
    readonly owner?: PolicyCertificateOwner;
  };
  /** For a valid user certificate on a request without a session: that user, if it exists. */
  readonly certificateHolder?: PolicyCertificateHolder;
}

/** The rest of the world the decision depends on, passed in so the function stays pure. */
export interface PolicyEnvironment {
  /** Epoch milliseconds, for per-route timeouts. */
  readonly now?: number;
  /** Group rules by group name (config.groups). @default {} */
  readonly groups?: Readonly<Record<string, GroupPolicyConfig>>;
  /** Users and groups who need 'mtls' on every route (config.mtls.requiredFor). @default nobody */
  readonly mtlsRequiredFor?: MtlsConfig['requiredFor'];
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

/**
 * Why the 'mtls' factor is missing:
 * - no-certificate: the connection presented none;
 * - certificate-invalid: one was presented, but it is not a valid certificate of Kanmon's CA
 *   (expired, revoked, unknown, from another CA);
 * - certificate-other-user: a valid certificate, but of another user than the one signed in.
 */
export type CertificateReason = 'no-certificate' | 'certificate-invalid' | 'certificate-other-user';

export type Decision =
  | {
      readonly kind: 'allow';
      /**
       * Set when a certificate-only alternative let a request without a session in: the identity
       * is the certificate's (the holder for a user certificate, the label for a shared one).
       */
      readonly byCertificate?: { readonly owner: PolicyCertificateOwner; readonly holder?: PolicyCertificateHolder };
    }
  | { readonly kind: 'certificate-required'; readonly reason: CertificateReason }
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
 * - no session: a certificate-only alternative (`["mtls"]`, for kiosks) admits a valid shared
 *   certificate, or a valid user certificate whose user exists, is enabled and is on the route's
 *   lists; a route that needs 'mtls' in every alternative asks for a certificate first when
 *   none is valid (signing in could not help); otherwise login;
 * - a disabled user, or one outside the route's users/groups: deny;
 * - a session older than the route's absolute timeout, or idle longer than its idle timeout: login;
 * - factors proven (session methods plus device evidence) cover an alternative: allow. The
 *   'mtls' factor is proven by a valid certificate that is shared or names the signed-in user;
 *   another user's certificate proves nothing. Users and groups in `mtlsRequiredFor` need 'mtls'
 *   in every alternative. The 'passkey' factor counts only when the passkey satisfies the route's
 *   and the user's groups' device-bound and AAGUID rules;
 * - only 'mtls' missing from an alternative: certificate-required, saying why;
 * - otherwise step-up, saying why.
 */
export function decideAccess(
  route: RouteConfig | undefined,
  subject: PolicySubject | undefined,
  device: PolicyDevice = {},
  env: PolicyEnvironment = {},
): Decision {
  if (!route) return { kind: 'deny', reason: 'no-route' };
  const cert = device.clientCertificate;
  if (!subject) return decideWithoutSession(route, device);
  if (subject.disabled) return { kind: 'deny', reason: 'user-disabled' };
  if (!routeAdmits(route, subject)) return { kind: 'deny', reason: 'user-not-allowed' };

  const timedOut = routeTimeout(route, subject, env.now);
  if (timedOut) return { kind: 'login', reason: timedOut };

  const factors = mtlsRequiredOf(subject, env.mtlsRequiredFor) ? withMtls(route.policy.factors) : route.policy.factors;
  const certificateBound = !!cert?.valid && !!cert.owner && (cert.owner.kind === 'shared' || (subject.userId !== undefined && cert.owner.userId === subject.userId));
  const proven = new Set<string>(subject.authMethods);
  if (certificateBound) proven.add('mtls');
  const rule = passkeyRuleFor(route, subject, env.groups);
  const shortfall = proven.has('passkey') ? passkeyShortfall(subject.passkey, rule) : undefined;
  const usable = new Set(proven);
  if (shortfall) usable.delete('passkey');
  if (factors.some((alternative) => alternative.every((f) => usable.has(f)))) return { kind: 'allow' };

  // Only the certificate is missing: signing in again cannot help, so say what can.
  if (!certificateBound && factors.some((alternative) => alternative.every((f) => f === 'mtls' || usable.has(f)))) {
    return { kind: 'certificate-required', reason: certificateReason(cert) };
  }

  // The passkey is the reason only when it would have completed an alternative had it qualified.
  const passkeyWouldDo = shortfall !== undefined && factors.some((alternative) => alternative.every((f) => proven.has(f)));
  return {
    kind: 'step-up',
    alternatives: factors,
    reason: passkeyWouldDo ? shortfall : 'missing-factor',
    ...(rule.deviceBound || rule.aaguidAllowlist.length > 0 ? { passkeyRule: rule } : {}),
  };
}

function decideWithoutSession(route: RouteConfig, device: PolicyDevice): Decision {
  const { factors } = route.policy;
  const cert = device.clientCertificate;
  const owner = cert?.valid ? cert.owner : undefined;
  if (owner && factors.some((alternative) => alternative.every((f) => f === 'mtls'))) {
    if (owner.kind === 'shared') {
      // A shared device is nobody: it passes only routes open to everyone.
      if (route.policy.allowUsers.length > 0 || route.policy.allowGroups.length > 0) return { kind: 'deny', reason: 'user-not-allowed' };
      return { kind: 'allow', byCertificate: { owner } };
    }
    const holder = device.certificateHolder;
    // A certificate of a user who was deleted (holder unknown) or disabled is no one's any more.
    if (!holder || holder.userId !== owner.userId || holder.disabled) return { kind: 'deny', reason: 'user-disabled' };
    if (!routeAdmits(route, holder)) return { kind: 'deny', reason: 'user-not-allowed' };
    return { kind: 'allow', byCertificate: { owner, holder } };
  }
  if (!owner && factors.every((alternative) => alternative.includes('mtls'))) return { kind: 'certificate-required', reason: certificateReason(cert) };
  return { kind: 'login', reason: 'no-session' };
}

function certificateReason(cert: PolicyDevice['clientCertificate']): CertificateReason {
  if (!cert) return 'no-certificate';
  return cert.valid ? 'certificate-other-user' : 'certificate-invalid';
}

/** Whether config.mtls.requiredFor names this user, directly, through a group, or as everyone. */
export function mtlsRequiredOf(subject: { readonly username: string; readonly groups: readonly string[] }, requiredFor: MtlsConfig['requiredFor'] | undefined): boolean {
  if (!requiredFor) return false;
  return requiredFor.all || requiredFor.users.includes(subject.username) || subject.groups.some((g) => requiredFor.groups.includes(g));
}

function withMtls(factors: readonly (readonly Factor[])[]): Factor[][] {
  return factors.map((alternative) => (alternative.includes('mtls') ? [...alternative] : [...alternative, 'mtls']));
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
