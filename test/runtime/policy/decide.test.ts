import { describe, expect, it } from 'vitest';
import { parseConfig, type Factor } from '../../../runtime/config/schema.js';
import { decideAccess, type PolicySubject } from '../../../runtime/policy/decide.js';

function route(policy: { factors?: Factor[][]; allowUsers?: string[]; allowGroups?: string[] }) {
  return parseConfig({ routes: [{ id: 'r', upstream: 'http://x:1', policy }] }).routes[0]!;
}
const user = (over: Partial<PolicySubject> = {}): PolicySubject => ({ username: 'alice', groups: ['staff'], disabled: false, authMethods: ['passkey'], ...over });

const passkeyOnly = route({});
const passkeyOrOtp = route({ factors: [['passkey'], ['otp']] });
const passkeyAndMtls = route({ factors: [['passkey', 'mtls']] });
const otpAndMtlsOrPasskey = route({ factors: [['passkey'], ['otp', 'mtls']] });
const certOnly = route({ factors: [['mtls']] });
const financeGroup = route({ allowGroups: ['finance'] });
const namedUser = route({ allowUsers: ['alice'] });

// route, subject, device, expected decision kind (and reason)
const table: Array<[string, ReturnType<typeof route> | undefined, PolicySubject | undefined, { clientCertificate?: { valid: boolean } }, string]> = [
  ['no route, no session', undefined, undefined, {}, 'deny:no-route'],
  ['no route, signed in', undefined, user(), {}, 'deny:no-route'],
  ['passkey route, no session', passkeyOnly, undefined, {}, 'login'],
  ['passkey route, passkey session', passkeyOnly, user(), {}, 'allow'],
  ['passkey route, otp session', passkeyOnly, user({ authMethods: ['otp'] }), {}, 'step-up'],
  ['passkey route, disabled user', passkeyOnly, user({ disabled: true }), {}, 'deny:user-disabled'],
  ['passkey-or-otp, otp session', passkeyOrOtp, user({ authMethods: ['otp'] }), {}, 'allow'],
  ['passkey-or-otp, recovery session', passkeyOrOtp, user({ authMethods: ['recovery'] }), {}, 'step-up'],
  ['passkey+mtls, passkey without cert', passkeyAndMtls, user(), {}, 'step-up'],
  ['passkey+mtls, passkey with invalid cert', passkeyAndMtls, user(), { clientCertificate: { valid: false } }, 'step-up'],
  ['passkey+mtls, passkey with valid cert', passkeyAndMtls, user(), { clientCertificate: { valid: true } }, 'allow'],
  ['passkey+mtls, no session with valid cert', passkeyAndMtls, undefined, { clientCertificate: { valid: true } }, 'login'],
  ['passkey | otp+mtls, otp with cert', otpAndMtlsOrPasskey, user({ authMethods: ['otp'] }), { clientCertificate: { valid: true } }, 'allow'],
  ['passkey | otp+mtls, otp without cert', otpAndMtlsOrPasskey, user({ authMethods: ['otp'] }), {}, 'step-up'],
  ['cert-only, signed in with cert', certOnly, user({ authMethods: [] }), { clientCertificate: { valid: true } }, 'allow'],
  ['group route, member', financeGroup, user({ groups: ['finance'] }), {}, 'allow'],
  ['group route, non-member', financeGroup, user(), {}, 'deny:user-not-allowed'],
  ['group route, non-member without the factor', financeGroup, user({ authMethods: ['otp'] }), {}, 'deny:user-not-allowed'],
  ['user route, listed user', namedUser, user(), {}, 'allow'],
  ['user route, other user', namedUser, user({ username: 'bob' }), {}, 'deny:user-not-allowed'],
];

describe('decideAccess', () => {
  it.each(table)('%s', (_name, r, subject, device, expected) => {
    const d = decideAccess(r, subject, device);
    const got = d.kind === 'deny' ? `deny:${d.reason}` : d.kind;
    expect(got).toBe(expected);
    if (d.kind === 'step-up') expect(d.alternatives).toEqual(r!.policy.factors);
  });
});
