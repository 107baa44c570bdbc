import { describe, expect, it } from 'vitest';
import { adminAccess, adminRoute } from '../../../runtime/admin/access.js';
import { backPath, usernameList } from '../../../runtime/admin/console.js';
import { csrfTokenFor, csrfTokenMatches } from '../../../runtime/admin/csrf.js';
import { auditCsv } from '../../../runtime/admin/pages/audit.js';
import type { ActiveSession } from '../../../runtime/services/sessions.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';

const now = 1_800_000_000_000;

function session(o: { isAdmin?: boolean; methods?: string[]; deviceBound?: boolean; disabled?: boolean } = {}): ActiveSession {
  return {
    user: { id: 'u1', username: 'kanri', displayName: 'K', groups: [], isAdmin: o.isAdmin ?? true, disabled: o.disabled ?? false, createdAt: 0, updatedAt: 0 },
    session: {
      id: 's1',
      userId: 'u1',
      authMethods: o.methods ?? ['passkey'],
      createdAt: now - 1000,
      lastSeenAt: now - 1000,
      absoluteExpiresAt: now + 3_600_000,
      ip: '127.0.0.1',
      userAgent: 't',
      ...((o.methods ?? ['passkey']).includes('passkey') ? { passkey: { credentialId: 'c', deviceBound: o.deviceBound ?? false, aaguid: '00000000-0000-0000-0000-000000000000', attested: false } } : {}),
    },
  };
}

describe('console access rule', () => {
  const plain = adminRoute({ deviceBound: false, requireMtls: false, reauthSeconds: 600 });
  const strict = adminRoute({ deviceBound: true, requireMtls: true, reauthSeconds: 600 });

  it('lets an administrator with a passkey session in, and nobody else', () => {
    expect(adminAccess(plain, session(), {}, { now })).toEqual({ kind: 'allow' });
    expect(adminAccess(plain, undefined, {}, { now })).toEqual({ kind: 'login' });
    expect(adminAccess(plain, session({ isAdmin: false }), {}, { now })).toEqual({ kind: 'not-admin' });
    expect(adminAccess(plain, session({ disabled: true }), {}, { now })).toEqual({ kind: 'not-admin' });
    for (const methods of [['otp'], ['recovery'], ['otp', 'mtls']]) {
      expect(adminAccess(plain, session({ methods }), {}, { now }).kind).toBe('refused');
    }
  });

  it('demands a device-bound passkey and a valid certificate of the administrator when configured', () => {
    const cert = { clientCertificate: { valid: true, owner: { kind: 'user' as const, userId: 'u1' } } };
    expect(adminAccess(strict, session({ deviceBound: true }), cert, { now })).toEqual({ kind: 'allow' });
    const synced = adminAccess(strict, session({ deviceBound: false }), cert, { now });
    expect(synced).toMatchObject({ kind: 'refused', decision: { kind: 'step-up', reason: 'passkey-not-device-bound' } });
    expect(adminAccess(strict, session({ deviceBound: true }), {}, { now })).toMatchObject({ kind: 'refused', decision: { kind: 'certificate-required', reason: 'no-certificate' } });
    const otherUsers = { clientCertificate: { valid: true, owner: { kind: 'user' as const, userId: 'u2' } } };
    expect(adminAccess(strict, session({ deviceBound: true }), otherUsers, { now }).kind).toBe('refused');
  });
});

describe('console CSRF token', () => {
  it('is bound to the session cookie and is not the store key', () => {
    const token = 'a'.repeat(43);
    const csrf = csrfTokenFor(token);
    expect(csrfTokenMatches(token, csrf)).toBe(true);
    expect(csrfTokenMatches('b'.repeat(43), csrf)).toBe(false);
    expect(csrf).not.toBe(sessionIdFromToken(token));
    for (const bad of [undefined, '', 42, ['x'], csrf.slice(1), `${csrf}x`]) expect(csrfTokenMatches(token, bad)).toBe(false);
  });
});

describe('console helpers', () => {
  it('returns only to console paths after re-authentication', () => {
    expect(backPath('/.kanmon/admin/users?q=a')).toBe('/.kanmon/admin/users?q=a');
    expect(backPath('/.kanmon/admin')).toBe('/.kanmon/admin');
    for (const bad of ['https://evil.example/.kanmon/admin', '//evil.example', '/.kanmon/adminx', '/.kanmon/admin\\..', '/.kanmon/admin/\n', 42, undefined, `/.kanmon/admin/${'a'.repeat(2000)}`]) {
      expect(backPath(bad)).toBe('/.kanmon/admin');
    }
  });

  it('splits user name lists and bounds them', () => {
    expect(usernameList('a\nb, c;a  d')).toEqual(['a', 'b', 'c', 'd']);
    expect(() => usernameList(' \n ')).toThrow(/at least one/);
    expect(() => usernameList('a b c', 2)).toThrow(/at most 2/);
  });

  it('exports audit CSV that spreadsheets do not run as formulas', () => {
    const csv = auditCsv([{ id: '1', time: 0, type: 'user.edit', result: 'success', username: '=HYPERLINK("x")', details: { after: { displayName: '@SUM(1)' } } }]);
    const [header, row] = csv.trim().split('\r\n');
    expect(header).toBe('time,event,result,user,actor,address,method,reason,details');
    expect(row).toContain(`"'=HYPERLINK(""x"")"`);
    expect(row).not.toMatch(/,=|,@|,"=|,"@/);
  });
});
