import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { SecretBox } from '../secrets/secret-box.js';
import { KeyExistsError } from '../store/errors.js';
import type { SigningKey, Store } from '../store/types.js';

const DAY = 86_400_000;

export interface SigningKeyServiceDeps {
  readonly store: Pick<Store, 'signingKeys'>;
  readonly secrets: SecretBox;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** A key signs for this long, then only verifies. @default 90 */
  readonly rotateAfterDays?: number;
  /**
   * How long a retired key stays in the JWKS. Tokens live at most five minutes, but backends
   * cache the JWKS; at least one day. @default 7
   */
  readonly verifyAfterRetirementDays?: number;
}

/** The key that signs now. */
export interface ActiveSigningKey {
  readonly kid: string;
  readonly alg: 'ES256';
  readonly privateKey: KeyObject;
  readonly retiresAt: number;
}

/** A public key as published in the JWKS (RFC 7517 §4, RFC 7518 §6.2.1). */
export interface PublicSigningJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
  readonly kid: string;
  readonly alg: 'ES256';
  readonly use: 'sig';
}

export interface Jwks {
  readonly keys: readonly PublicSigningJwk[];
}

/** A stored signing key cannot be used: its sealed private key does not open, or does not match its public key. */
export class SigningKeyUnusableError extends Error {
  constructor(readonly kid: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SigningKeyUnusableError';
  }
}

/** The SecretBox context of a signing key, so a sealed key cannot be swapped into another row. */
export function signingKeyContext(kid: string): string {
  return `jwt-signing-key:${kid}`;
}

interface LoadedState {
  /** Every stored key, in selection order: newest createdAt first, then the greater kid. */
  readonly keys: readonly SigningKey[];
  readonly active?: ActiveSigningKey;
}

/**
 * The ES256 keys that sign X-Kanmon-Jwt, shared by every node through the store.
 *
 * Keys are kept in memory; the store is read by `ensureActiveKey` and `refresh`, which the
 * server runs at start and then on a timer (`startBackgroundRefresh`). Every node picks the
 * active key with the same rule (the newest unretired key, ties broken by kid), and a new key's
 * kid is derived from what the store already holds, so two nodes rotating at the same moment
 * try to create the same kid: one wins, the other gets KeyExistsError and adopts the winner's.
 */
export class SigningKeyService {
  readonly #store: Pick<Store, 'signingKeys'>;
  readonly #secrets: SecretBox;
  readonly #now: () => number;
  readonly #rotateAfterMs: number;
  readonly #graceMs: number;
  /** Opened private keys by kid, so a refresh does not open them again. */
  readonly #privateKeys = new Map<string, KeyObject>();
  #state: LoadedState = { keys: [] };
  #jwksCache?: { readonly validUntil: number; readonly validFrom: number; readonly keysRef: readonly SigningKey[]; readonly jwks: Jwks };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(deps: SigningKeyServiceDeps) {
    const rotateAfterDays = deps.rotateAfterDays ?? 90;
    const graceDays = deps.verifyAfterRetirementDays ?? 7;
    if (!Number.isFinite(rotateAfterDays) || rotateAfterDays <= 0) {
      throw new RangeError(`SigningKeyService: rotateAfterDays must be a positive number of days, got ${String(rotateAfterDays)}`);
    }
    if (!Number.isFinite(graceDays) || graceDays < 1) {
      throw new RangeError(`SigningKeyService: verifyAfterRetirementDays must be at least 1, got ${String(graceDays)}`);
    }
    this.#store = deps.store;
    this.#secrets = deps.secrets;
    this.#now = deps.now ?? Date.now;
    this.#rotateAfterMs = rotateAfterDays * DAY;
    this.#graceMs = graceDays * DAY;
  }

  /**
   * Re-reads the store and returns the active key, creating one when no stored key is active
   * (first start, or the last one retired).
   */
  ensureActiveKey(): Promise<ActiveSigningKey> {
    return this.#exclusive(async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const active = await this.#load();
        if (active) return active;
        try {
          await this.#create(this.#state.keys);
        } catch (err) {
          // Another node created this kid first; the next load adopts its key.
          if (!(err instanceof KeyExistsError)) throw err;
        }
      }
      const active = await this.#load();
      if (active) return active;
      throw new Error('SigningKeyService: could not create or find an active signing key after 3 attempts');
    });
  }

  /** Re-reads the store, picking up keys another node created; never creates one. */
  refresh(): Promise<void> {
    return this.#exclusive(async () => {
      await this.#load();
    });
  }

  /**
   * The key to sign with now, from memory (the hot path never waits for the store).
   * @throws Error when `ensureActiveKey` has not completed yet.
   */
  current(): ActiveSigningKey {
    const active = this.#state.active;
    if (!active) throw new Error('SigningKeyService: no active signing key loaded; await ensureActiveKey() at start-up');
    return active;
  }

  /** The public keys that verify tokens: the active key and recently retired ones (RFC 7517 §5). */
  jwks(): Jwks {
    const now = this.#now();
    const keys = this.#state.keys;
    const cached = this.#jwksCache;
    if (cached && cached.keysRef === keys && now >= cached.validFrom && now < cached.validUntil) return cached.jwks;
    const published = keys.filter((k) => now < k.retiresAt + this.#graceMs || k.kid === this.#state.active?.kid);
    const jwks: Jwks = Object.freeze({ keys: Object.freeze(published.map(toPublicJwk)) });
    // Valid until the next published key drops out.
    const validUntil = Math.min(Infinity, ...published.map((k) => k.retiresAt + this.#graceMs));
    this.#jwksCache = { keysRef: keys, validFrom: now, validUntil, jwks };
    return jwks;
  }

  /**
   * Runs `ensureActiveKey` every `intervalMs`, so this node rotates on time and adopts keys
   * made by other nodes. The timer does not keep the process alive.
   * @returns a function that stops it.
   */
  startBackgroundRefresh(intervalMs = 60_000, onError: (err: unknown) => void = () => undefined): () => void {
    const timer = setInterval(() => {
      this.ensureActiveKey().catch(onError);
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(fn, fn);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Reads the store into memory; returns the active key when an unretired one exists. When
   * every key has retired, the last active key stays in `current()` (the JWKS still publishes
   * it) so requests keep flowing until ensureActiveKey stores its successor.
   */
  async #load(): Promise<ActiveSigningKey | undefined> {
    const now = this.#now();
    // A row whose public key cannot be read verifies nothing and must not be chosen; every node
    // sees the same row, so skipping it keeps their choice identical.
    const keys = [...(await this.#store.signingKeys.list())].filter((k) => k.alg === 'ES256' && hasUsablePublicJwk(k)).sort(selectionOrder);
    const chosen = keys.find((k) => now < k.retiresAt);
    let active: ActiveSigningKey | undefined;
    if (chosen) {
      const privateKey = this.#privateKeys.get(chosen.kid) ?? (await this.#openPrivateKey(chosen));
      this.#privateKeys.set(chosen.kid, privateKey);
      active = Object.freeze({ kid: chosen.kid, alg: 'ES256' as const, privateKey, retiresAt: chosen.retiresAt });
    }
    const kept = active ?? this.#state.active;
    // Private keys that no longer sign are dropped from memory.
    for (const kid of this.#privateKeys.keys()) if (kid !== kept?.kid) this.#privateKeys.delete(kid);
    this.#state = { keys: Object.freeze(keys), ...(kept ? { active: kept } : {}) };
    return active;
  }

  async #openPrivateKey(key: SigningKey): Promise<KeyObject> {
    let der: Uint8Array;
    try {
      der = await this.#secrets.open(key.sealedPrivateKey, signingKeyContext(key.kid));
    } catch (cause) {
      throw new SigningKeyUnusableError(key.kid, `signing key ${key.kid} cannot be opened: the secret key of this installation is not the one that sealed it, or the stored value was altered`, { cause });
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    } catch (cause) {
      throw new SigningKeyUnusableError(key.kid, `signing key ${key.kid} is not a PKCS#8 private key`, { cause });
    } finally {
      der.fill(0);
    }
    // A private key that does not match the published public key would mint tokens nobody can verify.
    const derived = createPublicKey(privateKey).export({ format: 'jwk' });
    const stored = parsePublicJwk(key);
    if (privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1' || derived.x !== stored.x || derived.y !== stored.y) {
      throw new SigningKeyUnusableError(key.kid, `signing key ${key.kid}: the private key does not match its public key`);
    }
    return privateKey;
  }

  async #create(existing: readonly SigningKey[]): Promise<void> {
    const now = this.#now();
    const kid = nextKid(existing, now);
    // ES256 is ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    let sealedPrivateKey: string;
    try {
      sealedPrivateKey = await this.#secrets.seal(der, signingKeyContext(kid));
    } finally {
      der.fill(0);
    }
    const jwk = publicKey.export({ format: 'jwk' });
    await this.#store.signingKeys.create({
      kid,
      alg: 'ES256',
      publicJwk: JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }),
      sealedPrivateKey,
      createdAt: now,
      retiresAt: now + this.#rotateAfterMs,
    });
  }
}

/** Newest createdAt first, then the greater kid: every node sorts the same list the same way. */
function selectionOrder(a: SigningKey, b: SigningKey): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.kid < b.kid ? 1 : a.kid > b.kid ? -1 : 0;
}

/**
 * The kid of the next key is a pure function of the stored keys: the generation number, and
 * the day the predecessor retired (or today, for the first key). Nodes that see the same store
 * compute the same kid, so only one of their keys is stored. The date keeps kids distinct from
 * those of an earlier installation that a backend may still have cached.
 */
function nextKid(existing: readonly SigningKey[], now: number): string {
  const predecessor = existing[0];
  const day = new Date(predecessor ? predecessor.retiresAt : now).toISOString().slice(0, 10).replaceAll('-', '');
  const taken = new Set(existing.map((k) => k.kid));
  let generation = existing.length + 1;
  while (taken.has(`k${generation}-${day}`)) generation++;
  return `k${generation}-${day}`;
}

function hasUsablePublicJwk(key: SigningKey): boolean {
  try {
    parsePublicJwk(key);
    return true;
  } catch {
    return false;
  }
}

function parsePublicJwk(key: SigningKey): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  let jwk: unknown;
  try {
    jwk = JSON.parse(key.publicJwk);
  } catch (cause) {
    throw new SigningKeyUnusableError(key.kid, `signing key ${key.kid}: the stored public JWK is not JSON`, { cause });
  }
  const { kty, crv, x, y } = (jwk ?? {}) as Record<string, unknown>;
  if (kty !== 'EC' || crv !== 'P-256' || typeof x !== 'string' || typeof y !== 'string') {
    throw new SigningKeyUnusableError(key.kid, `signing key ${key.kid}: the stored public JWK is not an EC P-256 key`);
  }
  return { kty, crv, x, y };
}

function toPublicJwk(key: SigningKey): PublicSigningJwk {
  const { x, y } = parsePublicJwk(key);
  // Only the public members (RFC 7518 §6.2.1); "d" never leaves the service.
  return Object.freeze({ kty: 'EC', crv: 'P-256', x, y, kid: key.kid, alg: 'ES256', use: 'sig' });
}
