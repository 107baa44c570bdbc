import { createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mintIdentityToken, SigningKeyService, SigningKeyUnusableError } from '../../../runtime/jwt/index.js';
import { openLocalSecretBox, type SecretBox } from '../../../runtime/secrets/index.js';
import { KeyExistsError } from '../../../runtime/store/errors.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { SigningKeyStore, Store } from '../../../runtime/store/types.js';
import { verifyWithJwks } from './jwks-verify.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 10, 9, 0, 0);

let dir: string;
let stores: Store[];
let secrets: SecretBox;
let clock: number;
const now = () => clock;

async function openStore(): Promise<Store> {
  const store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  stores.push(store);
  return store;
}

const identity = { userId: 'u-1', username: 'alice', groups: ['staff'], authMethods: ['passkey'] };
/** Stores a key the way SigningKeyService would, with chosen kid and times. */
async function insertKey(store: Store, kid: string, createdAt: number): Promise<void> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  await store.signingKeys.create({
    kid,
    alg: 'ES256',
    publicJwk: JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }),
    sealedPrivateKey: await secrets.seal(privateKey.export({ format: 'der', type: 'pkcs8' }), `jwt-signing-key:${kid}`),
    createdAt,
    retiresAt: createdAt + 90 * DAY,
  });
}

const mint = (service: SigningKeyService) =>
  mintIdentityToken({ key: service.current(), issuer: 'https://gate.example.test', audience: 'wiki', identity, now: clock }).token;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kanmon-signing-keys-'));
  stores = [];
  secrets = await openLocalSecretBox(dir);
  clock = T0;
});
afterEach(async () => {
  for (const store of stores) await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('SigningKeyService', () => {
  it('creates one ES256 key, sealed, and reuses it', async () => {
    const store = await openStore();
    const service = new SigningKeyService({ store, secrets, now });
    const active = await service.ensureActiveKey();
    expect(active.alg).toBe('ES256');
    expect(active.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(active.retiresAt).toBe(T0 + 90 * DAY);
    expect(service.current()).toBe(active);

    const [row, ...rest] = await store.signingKeys.list();
    expect(rest).toHaveLength(0);
    expect(row!.kid).toBe(active.kid);
    expect(row!.createdAt).toBe(T0);
    expect(row!.retiresAt).toBe(T0 + 90 * DAY);
    // The store holds the public key and a sealed private key, never the private key itself.
    expect(JSON.parse(row!.publicJwk)).not.toHaveProperty('d');
    const pkcs8 = active.privateKey.export({ format: 'der', type: 'pkcs8' });
    expect(row!.sealedPrivateKey).toMatch(/^v1\./);
    expect(row!.sealedPrivateKey).not.toContain(pkcs8.toString('base64url'));
    expect(Buffer.from(await secrets.open(row!.sealedPrivateKey, `jwt-signing-key:${row!.kid}`))).toEqual(pkcs8);
    await expect(secrets.open(row!.sealedPrivateKey, 'jwt-signing-key:other')).rejects.toThrow();

    clock += 10 * DAY;
    expect((await service.ensureActiveKey()).kid).toBe(active.kid);
    expect(await new SigningKeyService({ store, secrets, now }).ensureActiveKey()).toMatchObject({ kid: active.kid });
    expect(await store.signingKeys.list()).toHaveLength(1);
  });

  it('publishes only public members, with kid, alg and use', async () => {
    const service = new SigningKeyService({ store: await openStore(), secrets, now });
    const active = await service.ensureActiveKey();
    const { keys } = service.jwks();
    expect(keys).toHaveLength(1);
    expect(Object.keys(keys[0]!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', kid: active.kid, alg: 'ES256', use: 'sig' });
    const fromJwks = createPublicKey({ key: keys[0] as unknown as JsonWebKey, format: 'jwk' });
    expect(fromJwks.equals(createPublicKey(active.privateKey))).toBe(true);
    expect(JSON.stringify(service.jwks())).not.toMatch(/"d"/);
  });

  it('two instances on one store agree on the active key', async () => {
    const a = new SigningKeyService({ store: await openStore(), secrets, now });
    const b = new SigningKeyService({ store: await openStore(), secrets, now });
    const [ka, kb] = await Promise.all([a.ensureActiveKey(), b.ensureActiveKey()]);
    expect(ka.kid).toBe(kb.kid);
    expect(await stores[0]!.signingKeys.list()).toHaveLength(1);
    // A token from one node verifies with the other node's JWKS.
    expect(verifyWithJwks(mint(a), b.jwks()).header.kid).toBe(kb.kid);
  });

  it('a node that loses the creation race adopts the winner key (KeyExistsError)', async () => {
    // Both nodes list an empty store before either writes: they compute the same kid, and the
    // second insert fails the uniqueness check.
    const shared = await openStore();
    let listed = 0;
    let releaseLists!: () => void;
    const bothListed = new Promise<void>((resolve) => (releaseLists = resolve));
    const createResults: string[] = [];
    const racing = (): SigningKeyStore => ({
      list: async () => {
        const keys = await shared.signingKeys.list();
        if (keys.length === 0 && ++listed === 2) releaseLists();
        return keys;
      },
      create: async (key) => {
        await bothListed;
        try {
          await shared.signingKeys.create(key);
          createResults.push('created');
        } catch (err) {
          createResults.push(err instanceof KeyExistsError ? 'exists' : 'other');
          throw err;
        }
      },
    });
    const a = new SigningKeyService({ store: { signingKeys: racing() }, secrets, now });
    const b = new SigningKeyService({ store: { signingKeys: racing() }, secrets, now: () => clock + 5 });
    const [ka, kb] = await Promise.all([a.ensureActiveKey(), b.ensureActiveKey()]);
    expect(createResults.sort()).toEqual(['created', 'exists']);
    expect(ka.kid).toBe(kb.kid);
    expect(createPublicKey(ka.privateKey).equals(createPublicKey(kb.privateKey))).toBe(true);
    expect(await shared.signingKeys.list()).toHaveLength(1);
  });

  it('chooses deterministically: newest createdAt, then the greater kid', async () => {
    const store = await openStore();
    const first = await new SigningKeyService({ store, secrets, now }).ensureActiveKey();
    // Two keys created in the same millisecond, as nodes writing by hand or by an older scheme might.
    await insertKey(store, 'k2-a', T0 + 1000);
    await insertKey(store, 'k2-b', T0 + 1000);
    const x = new SigningKeyService({ store: await openStore(), secrets, now });
    const y = new SigningKeyService({ store, secrets, now });
    expect((await x.ensureActiveKey()).kid).toBe('k2-b');
    expect((await y.ensureActiveKey()).kid).toBe('k2-b');
    expect(x.jwks().keys.map((k) => k.kid)).toEqual(['k2-b', 'k2-a', first.kid]);
    // The next kid is derived from the store and does not collide with the ones present.
    clock = T0 + 1000 + 90 * DAY;
    expect((await x.ensureActiveKey()).kid).toBe('k4-20260410');
  });

  it('rotates after rotateAfterDays and keeps the old key in the JWKS for the grace period', async () => {
    const store = await openStore();
    const service = new SigningKeyService({ store, secrets, now, rotateAfterDays: 30, verifyAfterRetirementDays: 2 });
    const old = await service.ensureActiveKey();
    const oldToken = mint(service);

    clock = T0 + 30 * DAY - 1;
    expect((await service.ensureActiveKey()).kid).toBe(old.kid);

    clock = T0 + 30 * DAY;
    const fresh = await service.ensureActiveKey();
    expect(fresh.kid).not.toBe(old.kid);
    expect(fresh.retiresAt).toBe(clock + 30 * DAY);
    expect(service.jwks().keys.map((k) => k.kid)).toEqual([fresh.kid, old.kid]);
    // A token signed just before rotation still verifies with the published set.
    expect(verifyWithJwks(oldToken, service.jwks()).header.kid).toBe(old.kid);
    expect(verifyWithJwks(mint(service), service.jwks()).header.kid).toBe(fresh.kid);

    clock = T0 + 32 * DAY - 1;
    expect(service.jwks().keys.map((k) => k.kid)).toEqual([fresh.kid, old.kid]);
    clock = T0 + 32 * DAY;
    expect(service.jwks().keys.map((k) => k.kid)).toEqual([fresh.kid]);
    expect(() => verifyWithJwks(oldToken, service.jwks())).toThrow(/no key/);
  });

  it('defaults to 90 days of signing and keeps a retired key for at least a day', async () => {
    const service = new SigningKeyService({ store: await openStore(), secrets, now });
    const old = await service.ensureActiveKey();
    clock = T0 + 90 * DAY;
    const fresh = await service.ensureActiveKey();
    expect(fresh.kid).not.toBe(old.kid);
    clock = T0 + 91 * DAY;
    expect(service.jwks().keys.map((k) => k.kid)).toContain(old.kid);
    expect(() => new SigningKeyService({ store: stores[0]!, secrets, verifyAfterRetirementDays: 0.5 })).toThrow(RangeError);
    expect(() => new SigningKeyService({ store: stores[0]!, secrets, rotateAfterDays: 0 })).toThrow(RangeError);
  });

  it('refresh() adopts a key another node rotated to, without creating one', async () => {
    const a = new SigningKeyService({ store: await openStore(), secrets, now, rotateAfterDays: 30 });
    const b = new SigningKeyService({ store: await openStore(), secrets, now, rotateAfterDays: 30 });
    const first = await a.ensureActiveKey();
    await b.ensureActiveKey();
    clock = T0 + 31 * DAY;
    const second = await a.ensureActiveKey();
    expect(b.current().kid).toBe(first.kid);
    await b.refresh();
    expect(b.current().kid).toBe(second.kid);
    expect(b.jwks()).toEqual(a.jwks());
    expect(await stores[0]!.signingKeys.list()).toHaveLength(2);

    // When every key has retired, refresh() keeps the last one signing rather than failing
    // requests; ensureActiveKey() then makes the successor.
    clock = T0 + 62 * DAY;
    await b.refresh();
    expect(b.current().kid).toBe(second.kid);
    expect(b.jwks().keys.map((k) => k.kid)).toContain(second.kid);
    expect((await b.ensureActiveKey()).kid).not.toBe(second.kid);
  });

  it('fails closed when the secret key is not the one that sealed the signing key', async () => {
    const store = await openStore();
    await new SigningKeyService({ store, secrets, now }).ensureActiveKey();
    const otherSecrets = await openLocalSecretBox(join(dir, 'elsewhere'));
    const service = new SigningKeyService({ store, secrets: otherSecrets, now });
    await expect(service.ensureActiveKey()).rejects.toBeInstanceOf(SigningKeyUnusableError);
    expect(() => service.current()).toThrow(/ensureActiveKey/);
    // It did not paper over the problem by creating a key of its own.
    expect(await store.signingKeys.list()).toHaveLength(1);
  });

  it('refuses a sealed key moved to another kid (the context is bound)', async () => {
    const store = await openStore();
    await new SigningKeyService({ store, secrets, now }).ensureActiveKey();
    const [row] = await store.signingKeys.list();
    await store.signingKeys.create({ ...row!, kid: 'k9-moved', createdAt: row!.createdAt + 1 });
    await expect(new SigningKeyService({ store, secrets, now }).ensureActiveKey()).rejects.toThrow(/k9-moved cannot be opened/);
  });

  it('throws from current() before the first load', () => {
    const service = new SigningKeyService({ store: { signingKeys: { list: async () => [], create: async () => undefined } }, secrets, now });
    expect(() => service.current()).toThrow(/no active signing key/);
    expect(service.jwks()).toEqual({ keys: [] });
  });
});
