import { describe, expect, it } from 'vitest';
import { parseConfig, type Factor, type GroupPolicyConfig } from '../../../runtime/config/schema.js';
import { decideAccess, passkeyShortfall, type PolicyCertificateHolder, type PolicyDevice, type PolicyEnvironment, type PolicyPasskey, type PolicySubject } from '../../../runtime/policy/decide.js';

interface PolicyInput {
  factors?: Factor[][];
  allowUsers?: string[];
  allowGroups?: string[];
  deviceBound?: boolean;
  aaguidAllowlist?: string[];
  idleTimeoutSeconds?: number;
  absoluteTimeoutSeconds?: number;
}
function route(policy: PolicyInput) {
  return parseConfig({ routes: [{ id: 'r', upstream: 'http://x:1', policy }] }).routes[0]!;
}
type Route = ReturnType<typeof route>;

const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
const TITAN = '42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3';
const ZERO = '00000000-0000-0000-0000-000000000000';
const bound: PolicyPasskey = { deviceBound: true, aaguid: YUBIKEY, attested: true };
const boundUnattested: PolicyPasskey = { deviceBound: true, aaguid: YUBIKEY, attested: false };
const boundOtherModel: PolicyPasskey = { deviceBound: true, aaguid: TITAN, attested: true };
const boundNoModel: PolicyPasskey = { deviceBound: true, aaguid: ZERO, attested: false };
const synced: PolicyPasskey = { deviceBound: false, aaguid: ZERO, attested: false };
const syncedListed: PolicyPasskey = { deviceBound: false, aaguid: YUBIKEY, attested: true };

const T = 1_700_000_000_000;
const MIN = 60_000;
const user = (over: Partial<PolicySubject> = {}): PolicySubject => ({ userId: 'u-alice', username: 'alice', groups: ['staff'], disabled: false, authMethods: ['passkey'], ...over });
/** A passkey session started `age` ms before T and last active `idle` ms before T. */
const session = (age: number, idle: number) => ({ createdAt: T - age, lastSeenAt: T - idle });

const groups: Record<string, GroupPolicyConfig> = { admins: { deviceBoundPasskeys: true }, staff: { deviceBoundPasskeys: false } };
const env: PolicyEnvironment = { now: T, groups };
/** Alice's own certificate, someone else's, a shared device's, and one that did not check out. */
const cert: PolicyDevice = { clientCertificate: { valid: true, owner: { kind: 'user', userId: 'u-alice' } } };
const bobsCert: PolicyDevice = { clientCertificate: { valid: true, owner: { kind: 'user', userId: 'u-bob' } } };
const sharedCert: PolicyDevice = { clientCertificate: { valid: true, owner: { kind: 'shared', label: 'kiosk-1' } } };
const badCert: PolicyDevice = { clientCertificate: { valid: false } };
const holder = (over: Partial<PolicyCertificateHolder> = {}): PolicyCertificateHolder => ({ userId: 'u-alice', username: 'alice', groups: ['staff'], disabled: false, ...over });
const certWithHolder = (over: Partial<PolicyCertificateHolder> = {}): PolicyDevice => ({ ...cert, certificateHolder: holder(over) });
const required = (r: Partial<NonNullable<PolicyEnvironment['mtlsRequiredFor']>>): PolicyEnvironment => ({ ...env, mtlsRequiredFor: { all: false, groups: [], users: [], ...r } });

const passkeyOnly = route({});
const passkeyOrOtp = route({ factors: [['passkey'], ['otp']] });
const passkeyAndMtls = route({ factors: [['passkey', 'mtls']] });
const otpAndMtlsOrPasskey = route({ factors: [['passkey'], ['otp', 'mtls']] });
const certOnly = route({ factors: [['mtls']] });
const certOnlyForFinance = route({ factors: [['mtls']], allowGroups: ['finance'] });
const certOrPasskey = route({ factors: [['mtls'], ['passkey']] });
const financeGroup = route({ allowGroups: ['finance'] });
const namedUser = route({ allowUsers: ['alice'] });
const deviceBound = route({ deviceBound: true });
const deviceBoundOrOtp = route({ deviceBound: true, factors: [['passkey'], ['otp']] });
const deviceBoundWithCert = route({ deviceBound: true, factors: [['passkey', 'mtls']] });
const deviceBoundPasskeyAndOtp = route({ deviceBound: true, factors: [['passkey', 'otp']] });
const allowlisted = route({ aaguidAllowlist: [YUBIKEY] });
const allowlistedOrOtp = route({ aaguidAllowlist: [YUBIKEY.toUpperCase()], factors: [['passkey'], ['otp']] });
const adminsOnlyRoute = route({ allowGroups: ['admins'] });
const idle10 = route({ idleTimeoutSeconds: 600 });
const absolute60 = route({ absoluteTimeoutSeconds: 3600 });
const both = route({ idleTimeoutSeconds: 600, absoluteTimeoutSeconds: 3600 });
const absoluteDeviceBound = route({ absoluteTimeoutSeconds: 3600, deviceBound: true });
const idleForFinance = route({ idleTimeoutSeconds: 600, allowGroups: ['finance'] });

// route, subject, device, environment, expected decision: kind and reason
const table: Array<[string, Route | undefined, PolicySubject | undefined, PolicyDevice, PolicyEnvironment, string]> = [
  // Routes, sessions, users and factors.
  ['no route, no session', undefined, undefined, {}, env, 'deny:no-route'],
  ['no route, signed in', undefined, user(), {}, env, 'deny:no-route'],
  ['passkey route, no session', passkeyOnly, undefined, {}, env, 'login:no-session'],
  ['passkey route, passkey session', passkeyOnly, user(), {}, env, 'allow'],
  ['passkey route, passkey session, no environment', passkeyOnly, user(), {}, {}, 'allow'],
  ['passkey route, otp session', passkeyOnly, user({ authMethods: ['otp'] }), {}, env, 'step-up:missing-factor'],
  ['passkey route, disabled user', passkeyOnly, user({ disabled: true }), {}, env, 'deny:user-disabled'],
  ['passkey-or-otp, otp session', passkeyOrOtp, user({ authMethods: ['otp'] }), {}, env, 'allow'],
  ['passkey-or-otp, recovery session', passkeyOrOtp, user({ authMethods: ['recovery'] }), {}, env, 'step-up:missing-factor'],
    // The 'mtls' factor: a valid certificate of this user, or of a shared device.
  ['passkey+mtls, passkey without cert', passkeyAndMtls, user(), {}, env, 'certificate-required:no-certificate'],
  ['passkey+mtls, passkey with invalid cert', passkeyAndMtls, user(), badCert, env, 'certificate-required:certificate-invalid'],
  ['passkey+mtls, passkey with own valid cert', passkeyAndMtls, user(), cert, env, 'allow'],
  ['passkey+mtls, passkey with another user\'s cert', passkeyAndMtls, user(), bobsCert, env, 'certificate-required:certificate-other-user'],
  ['passkey+mtls, another user\'s cert of a subject without id', passkeyAndMtls, user({ userId: undefined }), cert, env, 'certificate-required:certificate-other-user'],
  ['passkey+mtls, passkey with a shared device cert', passkeyAndMtls, user(), sharedCert, env, 'allow'],
  ['passkey+mtls, a valid cert without an owner proves nothing', passkeyAndMtls, user(), { clientCertificate: { valid: true } }, env, 'certificate-required:certificate-other-user'],
  ['passkey+mtls, otp session with own cert', passkeyAndMtls, user({ authMethods: ['otp'] }), cert, env, 'step-up:missing-factor'],
  ['passkey+mtls, no session with valid cert', passkeyAndMtls, undefined, cert, env, 'login:no-session'],
  ['passkey+mtls, no session without cert: the certificate first', passkeyAndMtls, undefined, {}, env, 'certificate-required:no-certificate'],
  ['passkey+mtls, no session with invalid cert', passkeyAndMtls, undefined, badCert, env, 'certificate-required:certificate-invalid'],
  ['passkey | otp+mtls, otp with cert', otpAndMtlsOrPasskey, user({ authMethods: ['otp'] }), cert, env, 'allow'],
  ['passkey | otp+mtls, otp without cert', otpAndMtlsOrPasskey, user({ authMethods: ['otp'] }), {}, env, 'certificate-required:no-certificate'],
  ['passkey | otp+mtls, otp with another user\'s cert', otpAndMtlsOrPasskey, user({ authMethods: ['otp'] }), bobsCert, env, 'certificate-required:certificate-other-user'],
  ['passkey | otp+mtls, no session without cert (passkey alone would do)', otpAndMtlsOrPasskey, undefined, {}, env, 'login:no-session'],
  ['passkey | otp+mtls, recovery session without cert', otpAndMtlsOrPasskey, user({ authMethods: ['recovery'] }), {}, env, 'step-up:missing-factor'],

  // Certificate-only routes (kiosks): no session needed; the certificate is the identity.
  ['cert-only, signed in with own cert', certOnly, user({ authMethods: [] }), cert, env, 'allow'],
  ['cert-only, signed in with another user\'s cert', certOnly, user(), bobsCert, env, 'certificate-required:certificate-other-user'],
  ['cert-only, no session, shared cert', certOnly, undefined, sharedCert, env, 'allow'],
  ['cert-only, no session, user cert of an enabled user', certOnly, undefined, certWithHolder(), env, 'allow'],
  ['cert-only, no session, user cert of a disabled user', certOnly, undefined, certWithHolder({ disabled: true }), env, 'deny:user-disabled'],
  ['cert-only, no session, user cert of a deleted user', certOnly, undefined, cert, env, 'deny:user-disabled'],
  ['cert-only, no session, holder not the certificate\'s user', certOnly, undefined, certWithHolder({ userId: 'u-bob' }), env, 'deny:user-disabled'],
  ['cert-only, no session, no cert', certOnly, undefined, {}, env, 'certificate-required:no-certificate'],
  ['cert-only, no session, invalid cert', certOnly, undefined, badCert, env, 'certificate-required:certificate-invalid'],
  ['cert-only for a group, shared cert (a device is nobody)', certOnlyForFinance, undefined, sharedCert, env, 'deny:user-not-allowed'],
  ['cert-only for a group, member\'s cert', certOnlyForFinance, undefined, certWithHolder({ groups: ['finance'] }), env, 'allow'],
  ['cert-only for a group, non-member\'s cert', certOnlyForFinance, undefined, certWithHolder(), env, 'deny:user-not-allowed'],
  ['cert or passkey, no session, no cert', certOrPasskey, undefined, {}, env, 'login:no-session'],
  ['cert or passkey, no session, shared cert', certOrPasskey, undefined, sharedCert, env, 'allow'],

  // mtls.requiredFor: these users need a certificate on every route.
  ['required for alice, passkey route without cert', passkeyOnly, user(), {}, required({ users: ['alice'] }), 'certificate-required:no-certificate'],
  ['required for alice, passkey route with own cert', passkeyOnly, user(), cert, required({ users: ['alice'] }), 'allow'],
  ['required for alice, passkey route with bob\'s cert', passkeyOnly, user(), bobsCert, required({ users: ['alice'] }), 'certificate-required:certificate-other-user'],
  ['required for bob, alice without cert', passkeyOnly, user(), {}, required({ users: ['bob'] }), 'allow'],
  ['required for staff, member without cert', passkeyOrOtp, user({ authMethods: ['otp'] }), {}, required({ groups: ['staff'] }), 'certificate-required:no-certificate'],
  ['required for finance, staff member without cert', passkeyOnly, user(), {}, required({ groups: ['finance'] }), 'allow'],
  ['required for all, otp session on a passkey route with cert', passkeyOnly, user({ authMethods: ['otp'] }), cert, required({ all: true }), 'step-up:missing-factor'],
  ['required for all, no session', passkeyOnly, undefined, {}, required({ all: true }), 'login:no-session'],
  ['group route, member', financeGroup, user({ groups: ['finance'] }), {}, env, 'allow'],
  ['group route, non-member', financeGroup, user(), {}, env, 'deny:user-not-allowed'],
  ['group route, non-member without the factor', financeGroup, user({ authMethods: ['otp'] }), {}, env, 'deny:user-not-allowed'],
  ['user route, listed user', namedUser, user(), {}, env, 'allow'],
  ['user route, other user', namedUser, user({ username: 'bob' }), {}, env, 'deny:user-not-allowed'],

  // Device-bound routes: the passkey factor counts only from a device-bound passkey.
  ['device-bound route, device-bound passkey', deviceBound, user({ passkey: boundNoModel }), {}, env, 'allow'],
  ['device-bound route, synced passkey', deviceBound, user({ passkey: synced }), {}, env, 'step-up:passkey-not-device-bound'],
  ['device-bound route, passkey session without evidence', deviceBound, user(), {}, env, 'step-up:passkey-not-device-bound'],
  ['device-bound route, otp session', deviceBound, user({ authMethods: ['otp'] }), {}, env, 'step-up:missing-factor'],
  ['device-bound route, no session', deviceBound, undefined, {}, env, 'login:no-session'],
  ['device-bound route, disabled user with a security key', deviceBound, user({ disabled: true, passkey: bound }), {}, env, 'deny:user-disabled'],
  ['device-bound or otp, otp session (the rule is about passkeys)', deviceBoundOrOtp, user({ authMethods: ['otp'] }), {}, env, 'allow'],
  ['device-bound or otp, synced passkey', deviceBoundOrOtp, user({ passkey: synced }), {}, env, 'step-up:passkey-not-device-bound'],
  ['device-bound or otp, synced passkey stepped up with otp', deviceBoundOrOtp, user({ authMethods: ['passkey', 'otp'], passkey: synced }), {}, env, 'allow'],
  ['device-bound+mtls, device-bound passkey with cert', deviceBoundWithCert, user({ passkey: bound }), cert, env, 'allow'],
  ['device-bound+mtls, synced passkey with cert', deviceBoundWithCert, user({ passkey: synced }), cert, env, 'step-up:passkey-not-device-bound'],
  ['device-bound+mtls, synced passkey without cert', deviceBoundWithCert, user({ passkey: synced }), {}, env, 'step-up:missing-factor'],
  ['device-bound+mtls, device-bound passkey without cert', deviceBoundWithCert, user({ passkey: bound }), {}, env, 'certificate-required:no-certificate'],
  ['device-bound passkey+otp, both with a security key', deviceBoundPasskeyAndOtp, user({ authMethods: ['passkey', 'otp'], passkey: bound }), {}, env, 'allow'],
  ['device-bound passkey+otp, both with a synced passkey', deviceBoundPasskeyAndOtp, user({ authMethods: ['passkey', 'otp'], passkey: synced }), {}, env, 'step-up:passkey-not-device-bound'],
  ['device-bound passkey+otp, security key only', deviceBoundPasskeyAndOtp, user({ passkey: bound }), {}, env, 'step-up:missing-factor'],

  // Group rules: members' passkeys must be device-bound wherever they sign in.
  ['group rule, admin with a synced passkey on a plain route', passkeyOnly, user({ groups: ['admins'], passkey: synced }), {}, env, 'step-up:passkey-not-device-bound'],
  ['group rule, admin with a security key on a plain route', passkeyOnly, user({ groups: ['admins'], passkey: bound }), {}, env, 'allow'],
  ['group rule, admin without evidence', passkeyOnly, user({ groups: ['staff', 'admins'] }), {}, env, 'step-up:passkey-not-device-bound'],
  ['group rule, admin with otp on passkey-or-otp', passkeyOrOtp, user({ groups: ['admins'], authMethods: ['otp'] }), {}, env, 'allow'],
  ['group rule, group without the rule', passkeyOnly, user({ groups: ['staff'], passkey: synced }), {}, env, 'allow'],
  ['group rule, rules not given to the function', passkeyOnly, user({ groups: ['admins'], passkey: synced }), {}, { now: T }, 'allow'],
  ['group rule on an admins-only route, synced passkey', adminsOnlyRoute, user({ groups: ['admins'], passkey: synced }), {}, env, 'step-up:passkey-not-device-bound'],
  ['group rule on an admins-only route, non-member', adminsOnlyRoute, user({ passkey: bound }), {}, env, 'deny:user-not-allowed'],
  ['group rule, a group named like an Object property', passkeyOnly, user({ groups: ['constructor', '__proto__', 'toString'], passkey: synced }), {}, env, 'allow'],
  ['group rule plus device-bound route, security key', deviceBound, user({ groups: ['admins'], passkey: bound }), {}, env, 'allow'],

  // AAGUID allowlists: the model must be listed and proven by a verified attestation.
  ['allowlist, listed and attested security key', allowlisted, user({ passkey: bound }), {}, env, 'allow'],
  ['allowlist, listed model without a trusted attestation', allowlisted, user({ passkey: boundUnattested }), {}, env, 'step-up:authenticator-not-attested'],
  ['allowlist, attested model not on the list', allowlisted, user({ passkey: boundOtherModel }), {}, env, 'step-up:authenticator-not-allowed'],
  ['allowlist, device-bound key with no model', allowlisted, user({ passkey: boundNoModel }), {}, env, 'step-up:authenticator-not-allowed'],
  ['allowlist, synced passkey claiming a listed model', allowlisted, user({ passkey: syncedListed }), {}, env, 'step-up:passkey-not-device-bound'],
  ['allowlist, no evidence', allowlisted, user(), {}, env, 'step-up:passkey-not-device-bound'],
  ['allowlist (upper case in config) or otp, listed key', allowlistedOrOtp, user({ passkey: bound }), {}, env, 'allow'],
  ['allowlist or otp, otp session', allowlistedOrOtp, user({ authMethods: ['otp'] }), {}, env, 'allow'],
  ['allowlist or otp, unlisted key', allowlistedOrOtp, user({ passkey: boundOtherModel }), {}, env, 'step-up:authenticator-not-allowed'],

  // Per-route timeouts tighten the global ones.
  ['idle 10 min, active 9 min ago', idle10, user({ session: session(30 * MIN, 9 * MIN) }), {}, env, 'allow'],
  ['idle 10 min, active exactly 10 min ago', idle10, user({ session: session(30 * MIN, 10 * MIN) }), {}, env, 'login:route-idle-timeout'],
  ['idle 10 min, active 11 min ago', idle10, user({ session: session(30 * MIN, 11 * MIN) }), {}, env, 'login:route-idle-timeout'],
  ['absolute 1 h, signed in 59 min ago', absolute60, user({ session: session(59 * MIN, 0) }), {}, env, 'allow'],
  ['absolute 1 h, signed in exactly 1 h ago', absolute60, user({ session: session(60 * MIN, 0) }), {}, env, 'login:route-absolute-timeout'],
  ['absolute 1 h, signed in 2 h ago and active now', absolute60, user({ session: session(120 * MIN, 0) }), {}, env, 'login:route-absolute-timeout'],
  ['both, within both', both, user({ session: session(59 * MIN, 9 * MIN) }), {}, env, 'allow'],
  ['both, idle too long', both, user({ session: session(59 * MIN, 10 * MIN) }), {}, env, 'login:route-idle-timeout'],
  ['both, too old and idle too long: the absolute limit is named', both, user({ session: session(61 * MIN, 11 * MIN) }), {}, env, 'login:route-absolute-timeout'],
  ['timeouts, session times unknown (fail closed)', idle10, user(), {}, env, 'login:route-idle-timeout'],
  ['timeouts, clock not given (fail closed)', absolute60, user({ session: session(0, 0) }), {}, {}, 'login:route-absolute-timeout'],
  ['no route timeouts, old idle session (the global ones are the session service\'s)', passkeyOnly, user({ session: session(24 * 60 * MIN, 60 * MIN) }), {}, env, 'allow'],
  ['timeouts, fresh session with the wrong factor', idle10, user({ authMethods: ['otp'], session: session(0, 0) }), {}, env, 'step-up:missing-factor'],
  ['timeouts, non-member with an old session', idleForFinance, user({ session: session(0, 60 * MIN) }), {}, env, 'deny:user-not-allowed'],
  ['timeouts, disabled user with an old session', idle10, user({ disabled: true, session: session(0, 60 * MIN) }), {}, env, 'deny:user-disabled'],
  ['timeouts on a device-bound route, old session with a security key', absoluteDeviceBound, user({ passkey: bound, session: session(2 * 60 * MIN, 0) }), {}, env, 'login:route-absolute-timeout'],
  ['timeouts on a device-bound route, fresh session with a synced passkey', absoluteDeviceBound, user({ passkey: synced, session: session(MIN, 0) }), {}, env, 'step-up:passkey-not-device-bound'],
  ['timeouts on a device-bound route, fresh session with a security key', absoluteDeviceBound, user({ passkey: bound, session: session(MIN, 0) }), {}, env, 'allow'],
];

describe('decideAccess', () => {
  it.each(table)('%s', (_name, r, subject, device, environment, expected) => {
    const d = decideAccess(r, subject, device, environment);
    const got = d.kind === 'allow' ? 'allow' : `${d.kind}:${d.reason}`;
    expect(got).toBe(expected);
    if (d.kind === 'step-up' && !environment.mtlsRequiredFor) expect(d.alternatives).toEqual(r!.policy.factors);
  });

  it('names who demands device-bound passkeys: the route and each group rule', () => {
    const d = decideAccess(deviceBound, user({ groups: ['admins', 'staff'], passkey: synced }), {}, env);
    expect(d).toMatchObject({ kind: 'step-up', reason: 'passkey-not-device-bound', passkeyRule: { deviceBound: true, requiredBy: ['route', 'group:admins'], aaguidAllowlist: [] } });
    const plain = decideAccess(passkeyOnly, user({ authMethods: ['otp'] }), {}, env);
    expect(plain).toMatchObject({ kind: 'step-up', reason: 'missing-factor' });
    expect('passkeyRule' in plain).toBe(false);
    const listed = decideAccess(allowlisted, user({ passkey: boundOtherModel }), {}, env);
    expect(listed).toMatchObject({ passkeyRule: { aaguidAllowlist: [YUBIKEY] } });
  });

  it('leaves its inputs alone (pure)', () => {
    const subject = user({ groups: ['admins'], passkey: synced, session: session(MIN, 0) });
    const copy = structuredClone(subject);
    decideAccess(both, subject, cert, env);
    decideAccess(both, subject, cert, env);
    expect(subject).toEqual(copy);
  });
});

describe('passkeyShortfall', () => {
  const rule = { deviceBound: true, requiredBy: ['route'], aaguidAllowlist: [YUBIKEY] };
  it.each([
    ['no rule', { deviceBound: false, requiredBy: [], aaguidAllowlist: [] }, synced, undefined],
    ['no rule, no evidence', { deviceBound: false, requiredBy: [], aaguidAllowlist: [] }, undefined, undefined],
    ['device-bound only, security key', { deviceBound: true, requiredBy: ['route'], aaguidAllowlist: [] }, boundNoModel, undefined],
    ['allowlist, listed', rule, bound, undefined],
    ['allowlist, AAGUID in another case', rule, { ...bound, aaguid: YUBIKEY.toUpperCase() }, undefined],
    ['allowlist, unattested', rule, boundUnattested, 'authenticator-not-attested'],
    ['allowlist, unlisted', rule, boundOtherModel, 'authenticator-not-allowed'],
    ['allowlist, synced', rule, syncedListed, 'passkey-not-device-bound'],
    ['allowlist, no evidence', rule, undefined, 'passkey-not-device-bound'],
  ] as const)('%s', (_name, r, passkey, expected) => {
    expect(passkeyShortfall(passkey, r)).toBe(expected);
  });
});

describe('decideAccess with certificates', () => {
  it('names the certificate as the identity of a certificate-only request', () => {
    expect(decideAccess(certOnly, undefined, sharedCert, env)).toEqual({ kind: 'allow', byCertificate: { owner: { kind: 'shared', label: 'kiosk-1' } } });
    expect(decideAccess(certOnly, undefined, certWithHolder(), env)).toEqual({ kind: 'allow', byCertificate: { owner: { kind: 'user', userId: 'u-alice' }, holder: holder() } });
    // With a session, the session is the identity.
    expect(decideAccess(certOnly, user(), cert, env)).toEqual({ kind: 'allow' });
  });

  it('adds mtls to every alternative for users it is required of', () => {
    const d = decideAccess(passkeyOrOtp, user({ authMethods: ['recovery'] }), cert, required({ users: ['alice'] }));
    expect(d).toMatchObject({ kind: 'step-up', alternatives: [['passkey', 'mtls'], ['otp', 'mtls']] });
  });
});
