import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdentityTokenCache, mintIdentityToken, SigningKeyService, type TokenIdentity } from '../../../runtime/jwt/index.js';
import { openLocalSecretBox } from '../../../runtime/secrets/index.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';
import { verifyWithJwks } from './jwks-verify.js';

const DAY = 86_400_000;
const ISSUER = 'https://gate.example.test';
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 250);

let dir: string;
let store: Store;
let keys: SigningKeyService;
let clock: number;
const now = () => clock;

const alice: TokenIdentity = { userId: 'u-alice', username: 'alice', groups: ['staff', 'wiki-editors'], authMethods: ['passkey'] };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kanmon-identity-token-'));
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  clock = T0;
  keys = new SigningKeyService({ store, secrets: await openLocalSecretBox(dir), now, rotateAfterDays: 30 });
  await keys.ensureActiveKey();
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function tamper(token: string, edit: (payload: Record<string, unknown>) => void): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  edit(payload);
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
}

describe('mintIdentityToken', () => {
  it('mints an ES256 JWT that verifies with the JWKS alone, with every claim', () => {
    const { token, kid, expiresAt } = mintIdentityToken({ key: keys.current(), issuer: ISSUER, audience: 'wiki', identity: alice, now: clock });
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    const { header, payload } = verifyWithJwks(token, keys.jwks());
    expect(header).toEqual({ alg: 'ES256', typ: 'JWT', kid: keys.current().kid });
    expect(kid).toBe(keys.current().kid);
    const iat = Math.floor(T0 / 1000);
    expect(payload).toEqual({
      iss: ISSUER,
      aud: 'wiki',
      sub: 'u-alice',
      name: 'alice',
      groups: ['staff', 'wiki-editors'],
      amr: ['passkey'],
      iat,
      exp: iat + 300,
    });
    expect(expiresAt).toBe(iat + 300);
    expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(300);
    expect((payload.exp as number) * 1000).toBeLessThanOrEqual(clock + 300_000);
  });

  it('honours a shorter lifetime and refuses one over five minutes', () => {
    const { token } = mintIdentityToken({ key: keys.current(), issuer: ISSUER, audience: 'wiki', identity: alice, now: clock, ttlSeconds: 60 });
    const { payload } = verifyWithJwks(token, keys.jwks());
    expect((payload.exp as number) - (payload.iat as number)).toBe(60);
    expect(() => mintIdentityToken({ key: keys.current(), issuer: ISSUER, audience: 'wiki', identity: alice, now: clock, ttlSeconds: 301 })).toThrow(RangeError);
    expect(() => new IdentityTokenCache({ keys, issuer: ISSUER, ttlSeconds: 3600 })).toThrow(RangeError);
  });

  it('a tampered payload, signature or key does not verify', () => {
    const { token } = mintIdentityToken({ key: keys.current(), issuer: ISSUER, audience: 'wiki', identity: alice, now: clock });
    expect(() => verifyWithJwks(tamper(token, (p) => (p.groups = ['admins'])), keys.jwks())).toThrow(/does not verify/);
    expect(() => verifyWithJwks(tamper(token, (p) => (p.exp = (p.exp as number) + 3600)), keys.jwks())).toThrow(/does not verify/);
    expect(() => verifyWithJwks(tamper(token, (p) => (p.aud = 'payroll')), keys.jwks())).toThrow(/does not verify/);

    const [h, p, s] = token.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    sig[10]! ^= 0x01;
    expect(() => verifyWithJwks(`${h}.${p}.${sig.toString('base64url')}`, keys.jwks())).toThrow(/does not verify/);

    // A key an attacker made, claiming our kid.
    const forged = mintIdentityToken({
      key: { kid: keys.current().kid, privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey },
      issuer: ISSUER,
      audience: 'wiki',
      identity: { ...alice, groups: ['admins'] },
      now: clock,
    });
    expect(() => verifyWithJwks(forged.token, keys.jwks())).toThrow(/does not verify/);
  });

  it('refuses a key that cannot make ES256 signatures', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    for (const privateKey of [rsa, p384]) {
      expect(() => mintIdentityToken({ key: { kid: 'x', privateKey }, issuer: ISSUER, audience: 'wiki', identity: alice, now: clock })).toThrow(/P-256/);
    }
  });
});

describe('IdentityTokenCache', () => {
  it('returns the same token on repeated calls, signing once', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now });
    const first = cache.get('s-1', 'wiki', alice);
    for (let i = 0; i < 100; i++) {
      clock += 1000;
      expect(cache.get('s-1', 'wiki', alice)).toBe(first);
    }
    expect(cache.mintCount).toBe(1);
    expect(verifyWithJwks(first, keys.jwks()).payload.aud).toBe('wiki');
  });

  it('mints a new token once the cached one is within 60 s of exp', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now });
    const first = cache.get('s-1', 'wiki', alice);
    const exp = verifyWithJwks(first, keys.jwks()).payload.exp as number;

    clock = (exp - 61) * 1000;
    expect(cache.get('s-1', 'wiki', alice)).toBe(first);
    clock = (exp - 60) * 1000;
    const second = cache.get('s-1', 'wiki', alice);
    expect(second).not.toBe(first);
    const { payload } = verifyWithJwks(second, keys.jwks());
    expect(payload.iat).toBe(exp - 60);
    expect(payload.exp).toBe(exp - 60 + 300);
    expect(cache.mintCount).toBe(2);
    expect(cache.size).toBe(1);
  });

  it('keeps one token per session and route, with the route as audience', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now });
    const wiki = cache.get('s-1', 'wiki', alice);
    const mail = cache.get('s-1', 'mail', alice);
    const otherSession = cache.get('s-2', 'wiki', alice);
    expect(new Set([wiki, mail, otherSession]).size).toBe(3);
    expect(verifyWithJwks(mail, keys.jwks()).payload.aud).toBe('mail');
    expect(cache.get('s-1', 'wiki', alice)).toBe(wiki);
    expect(cache.mintCount).toBe(3);
  });

  it('mints again when the signing key changes', async () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now });
    const before = cache.get('s-1', 'wiki', alice);
    const oldKid = keys.current().kid;
    clock = T0 + 30 * DAY; // the key retires; the next ensureActiveKey rotates
    await keys.ensureActiveKey();
    const after = cache.get('s-1', 'wiki', alice);
    expect(after).not.toBe(before);
    expect(verifyWithJwks(after, keys.jwks()).header.kid).not.toBe(oldKid);
  });

  it('mints again when the identity changes within a session', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now });
    const before = cache.get('s-1', 'wiki', alice);
    const after = cache.get('s-1', 'wiki', { ...alice, groups: ['staff'] });
    expect(after).not.toBe(before);
    expect(verifyWithJwks(after, keys.jwks()).payload.groups).toEqual(['staff']);
  });

  it('stays within maxEntries, evicting the oldest', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now, maxEntries: 3 });
    const tokens = ['s-1', 's-2', 's-3', 's-4', 's-5'].map((s) => cache.get(s, 'wiki', alice));
    expect(cache.size).toBe(3);
    expect(cache.mintCount).toBe(5);
    // s-5 is still cached; s-1 was evicted and is minted anew.
    expect(cache.get('s-5', 'wiki', alice)).toBe(tokens[4]);
    expect(cache.mintCount).toBe(5);
    clock += 1000;
    expect(cache.get('s-1', 'wiki', alice)).not.toBe(tokens[0]);
    expect(cache.mintCount).toBe(6);
    expect(cache.size).toBe(3);

    for (let i = 0; i < 1000; i++) cache.get(`bulk-${i}`, 'wiki', alice);
    expect(cache.size).toBe(3);
  });

  it('forgets the tokens of a session', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now });
    cache.get('s-1', 'wiki', alice);
    cache.get('s-1', 'mail', alice);
    cache.get('s-2', 'wiki', alice);
    cache.forgetSession('s-1');
    expect(cache.size).toBe(1);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it('uses a shorter reuse margin when the lifetime is short', () => {
    const cache = new IdentityTokenCache({ keys, issuer: ISSUER, now, ttlSeconds: 30 });
    const first = cache.get('s-1', 'wiki', alice);
    clock += 10_000;
    expect(cache.get('s-1', 'wiki', alice)).toBe(first);
    clock += 5_000;
    expect(cache.get('s-1', 'wiki', alice)).not.toBe(first);
  });
});
