import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { otpUsableFor, passkeyRequirementFor, passkeyShortfallsByRoute, routesOf } from '../../../runtime/policy/user-requirements.js';

const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
const TITAN = '42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3';
const config = parseConfig({
  groups: { admins: { deviceBoundPasskeys: true }, staff: { deviceBoundPasskeys: false } },
  routes: [
    { id: 'wiki', upstream: 'http://x:1', policy: { factors: [['passkey'], ['otp']] } },
    { id: 'finance', match: { pathPrefix: '/finance' }, upstream: 'http://x:1', policy: { allowGroups: ['finance'], deviceBound: true } },
    { id: 'vault', match: { pathPrefix: '/vault' }, upstream: 'http://x:1', policy: { allowUsers: ['kenji'], aaguidAllowlist: [YUBIKEY, TITAN] } },
    { id: 'kiosk', match: { pathPrefix: '/kiosk' }, upstream: 'http://x:1', policy: { factors: [['mtls']], deviceBound: true } },
  ],
});
const policy = { routes: config.routes, groups: config.groups };

describe('passkeyRequirementFor', () => {
  it.each([
    ['an ordinary user', { username: 'aiko', groups: ['staff'] }, { deviceBound: false, groups: [], routes: [], aaguidAllowlist: [], attestation: 'none' }],
    ['a finance user (route rule)', { username: 'aiko', groups: ['finance'] }, { deviceBound: true, groups: [], routes: ['finance'], aaguidAllowlist: [], attestation: 'none' }],
    ['an administrator (group rule: every route with a passkey)', { username: 'root', groups: ['admins'] }, { deviceBound: true, groups: ['admins'], routes: ['wiki'], aaguidAllowlist: [], attestation: 'none' }],
    ['a user with an AAGUID allowlist', { username: 'kenji', groups: [] }, { deviceBound: true, groups: [], routes: ['vault'], aaguidAllowlist: [TITAN, YUBIKEY].sort(), attestation: 'direct' }],
    ['a group named like an Object property', { username: 'x', groups: ['__proto__', 'constructor'] }, { deviceBound: false, groups: [], routes: [], aaguidAllowlist: [], attestation: 'none' }],
  ] as const)('%s', (_name, user, expected) => {
    expect(passkeyRequirementFor(user, policy)).toEqual(expected);
  });

  it('ignores routes where a passkey is not one of the ways in (mtls only)', () => {
    expect(passkeyRequirementFor({ username: 'aiko', groups: [] }, policy).routes).not.toContain('kiosk');
  });
});

describe('routesOf, otpUsableFor', () => {
  it('lists the routes the users/groups lists let a user use', () => {
    expect(routesOf({ username: 'kenji', groups: ['finance'] }, policy).map((r) => r.id)).toEqual(['wiki', 'finance', 'vault', 'kiosk']);
    expect(routesOf({ username: 'aiko', groups: [] }, policy).map((r) => r.id)).toEqual(['wiki', 'kiosk']);
  });

  it('offers an authenticator app only where a route takes a code in place of a passkey', () => {
    expect(otpUsableFor({ username: 'aiko', groups: [] }, policy)).toBe(true);
    const passkeyOnly = parseConfig({ routes: [{ id: 'a', upstream: 'http://x:1', policy: { factors: [['passkey', 'otp']] } }] });
    expect(otpUsableFor({ username: 'aiko', groups: [] }, { routes: passkeyOnly.routes, groups: {} })).toBe(false);
    expect(otpUsableFor({ username: 'aiko', groups: [] }, { routes: [], groups: {} })).toBe(false);
  });
});

describe('passkeyShortfallsByRoute', () => {
  it('names each route a passkey does not satisfy, and why', () => {
    const synced = { deviceBound: false, aaguid: '00000000-0000-0000-0000-000000000000', attested: false };
    const key = { deviceBound: true, aaguid: YUBIKEY, attested: false };
    expect(passkeyShortfallsByRoute(synced, { username: 'kenji', groups: ['finance'] }, policy)).toEqual([
      { route: 'finance', reason: 'passkey-not-device-bound' },
      { route: 'vault', reason: 'passkey-not-device-bound' },
    ]);
    expect(passkeyShortfallsByRoute(key, { username: 'kenji', groups: ['finance'] }, policy)).toEqual([{ route: 'vault', reason: 'authenticator-not-attested' }]);
    expect(passkeyShortfallsByRoute({ ...key, attested: true }, { username: 'kenji', groups: ['admins'] }, policy)).toEqual([]);
    expect(passkeyShortfallsByRoute(synced, { username: 'root', groups: ['admins'] }, policy)).toEqual([{ route: 'wiki', reason: 'passkey-not-device-bound' }]);
  });
});
