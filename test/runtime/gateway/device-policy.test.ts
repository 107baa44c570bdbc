/**
 * The gateway applies device-bound, AAGUID and per-route timeout rules from real sessions:
 * the passkey evidence a session carries, group rules from config, and session times.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionIdFromToken, SESSION_COOKIE } from '../../../runtime/services/sessions.js';
import type { SessionPasskey, User } from '../../../runtime/store/types.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';

const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
const securityKey: SessionPasskey = { credentialId: 'key-1', deviceBound: true, aaguid: YUBIKEY, attested: true };
const unattestedKey: SessionPasskey = { ...securityKey, credentialId: 'key-2', attested: false };
const syncedPasskey: SessionPasskey = { credentialId: 'phone-1', deviceBound: false, aaguid: '00000000-0000-0000-0000-000000000000', attested: false };
const ctx = { ip: '127.0.0.1', userAgent: 'test' };

let h: KanmonHarness;
let alice: User;
let root: User;

beforeAll(async () => {
  h = await KanmonHarness.start({
    groups: { admins: { deviceBoundPasskeys: true } },
    routes: [
      { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' },
      // The demo backend answers 404 for these paths: a 404 means the gateway forwarded the request.
      { id: 'vault', match: { pathPrefix: '/vault' }, upstream: 'demo', policy: { deviceBound: true } },
      { id: 'keys', match: { pathPrefix: '/keys' }, upstream: 'demo', policy: { aaguidAllowlist: [YUBIKEY] } },
      { id: 'quick', match: { pathPrefix: '/quick' }, upstream: 'demo', policy: { idleTimeoutSeconds: 60, absoluteTimeoutSeconds: 120 } },
    ],
  });
  alice = await h.app.services.users.addUser({ username: 'alice', groups: ['staff'] });
  root = await h.app.services.users.addUser({ username: 'root', groups: ['admins'] });
});
afterAll(async () => h?.close());

async function cookieWith(user: User, passkey?: SessionPasskey, methods: string[] = ['passkey']): Promise<string> {
  const started = await h.app.services.sessions.start(user, methods, ctx, undefined, passkey ? { passkey } : {});
  return started.cookie;
}

/** A session written straight to the store with the given age and idle time (the clock is real). */
async function agedCookie(user: User, ageMs: number, idleMs: number): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  const now = Date.now();
  await h.app.store.sessions.create({
    id: sessionIdFromToken(token),
    userId: user.id,
    authMethods: ['passkey', 'hwk'],
    createdAt: now - ageMs,
    lastSeenAt: now - idleMs,
    absoluteExpiresAt: now + 3_600_000,
    ip: '127.0.0.1',
    userAgent: 'test',
    passkey: securityKey,
  });
  return `${SESSION_COOKIE}=${token}`;
}

const page = { accept: 'text/html' };
const FORWARDED = 404;

describe('device-bound routes', () => {
  it('lets a security-key session in, and tells the backend so (hwk in the methods and the JWT amr)', async () => {
    const cookie = await cookieWith(alice, securityKey);
    expect((await h.get('/vault/', { cookie, headers: page })).status).toBe(FORWARDED);
    const res = await h.get('/headers', { cookie });
    const headers = res.json().headers;
    expect(headers['x-kanmon-auth']).toBe('passkey,hwk');
    const claims = JSON.parse(Buffer.from(headers['x-kanmon-jwt'].split('.')[1], 'base64url').toString('utf8'));
    expect(claims.amr).toEqual(['passkey', 'hwk']);
  });

  it('asks a synced-passkey session to step up, saying why and what would qualify', async () => {
    const cookie = await cookieWith(alice, syncedPasskey);
    expect((await h.get('/headers', { cookie })).json().headers['x-kanmon-auth']).toBe('passkey,swk');
    const res = await h.get('/vault/', { cookie, headers: page });
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="passkey-not-device-bound"');
    expect(res.text).toContain('synced between your devices');
    expect(res.text).toContain('a security key, such as a YubiKey');
    expect(res.text).toContain('href="/.kanmon/account"');
    const ja = await h.get('/vault/', { cookie, headers: { ...page, 'accept-language': 'ja' } });
    expect(ja.text).toContain('デバイス間で同期されるパスキー');
    expect(ja.text).toContain('セキュリティキー（USB または NFC）');
  });

  it('treats a passkey session without evidence as not device-bound', async () => {
    const res = await h.get('/vault/', { cookie: await cookieWith(alice), headers: page });
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="passkey-not-device-bound"');
  });

  it('asks an authenticator-app session for the missing factor, without a passkey explanation', async () => {
    const res = await h.get('/vault/', { cookie: await cookieWith(alice, undefined, ['otp']), headers: page });
    expect(res.status).toBe(403);
    expect(res.text).not.toContain('step-up-reason');
  });
});

describe('group rules', () => {
  it("refuses an administrator's synced passkey on every route, and accepts their security key", async () => {
    const synced = await cookieWith(root, syncedPasskey);
    expect((await h.get('/headers', { cookie: synced, headers: page })).status).toBe(403);
    expect((await h.get('/headers', { cookie: await cookieWith(root, securityKey) })).status).toBe(200);
    // Other users are not bound by the administrators' rule.
    expect((await h.get('/headers', { cookie: await cookieWith(alice, syncedPasskey) })).status).toBe(200);
  });
});

describe('AAGUID allowlists', () => {
  it('accepts an attested key of a listed model and explains the refusal of an unattested one', async () => {
    expect((await h.get('/keys/', { cookie: await cookieWith(alice, securityKey), headers: page })).status).toBe(FORWARDED);
    const res = await h.get('/keys/', { cookie: await cookieWith(alice, unattestedKey), headers: page });
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="authenticator-not-attested"');
    const other = await h.get('/keys/', { cookie: await cookieWith(alice, { ...securityKey, aaguid: '42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3' }), headers: page });
    expect(other.text).toContain('data-reason="authenticator-not-allowed"');
  });
});

describe('per-route timeouts', () => {
  it('sends a session older than the route allows to sign in again, while other routes still take it', async () => {
    const cookie = await agedCookie(alice, 150_000, 1_000);
    const res = await h.get('/quick/x', { cookie, headers: page });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/.kanmon/login?return=%2Fquick%2Fx');
    expect((await h.get('/headers', { cookie })).status).toBe(200);
  });

  it('sends a session idle longer than the route allows to sign in again', async () => {
    const cookie = await agedCookie(alice, 100_000, 90_000);
    expect((await h.get('/quick/x', { cookie, headers: page })).status).toBe(302);
  });

  it('lets a fresh, active session through', async () => {
    const cookie = await agedCookie(alice, 10_000, 1_000);
    expect((await h.get('/quick/x', { cookie, headers: page })).status).toBe(FORWARDED);
  });
});
