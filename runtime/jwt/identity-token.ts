import { sign, type KeyObject } from 'node:crypto';
import { setBounded } from '../cache/bounded-map.js';

/** Longest lifetime of an identity token: a leaked header is useless after five minutes. */
export const MAX_IDENTITY_TOKEN_TTL_SECONDS = 300;
/** A cached token is replaced once it has less than this left, so backends never get a nearly expired one. */
const REUSE_MARGIN_SECONDS = 60;

/** Who the token speaks for. */
export interface TokenIdentity {
  /** `sub`: the user id, stable across renames. */
  readonly userId: string;
  /** `name`: the username. */
  readonly username: string;
  readonly groups: readonly string[];
  /** `amr`: the methods used at login, e.g. ['passkey'] (RFC 8176 §1 allows values of our own). */
  readonly authMethods: readonly string[];
}

/** What signs: the active key of a SigningKeyService, or any ES256 P-256 key with a kid. */
export interface TokenSigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
}

export interface MintIdentityTokenInput {
  readonly key: TokenSigningKey;
  /** `iss`. */
  readonly issuer: string;
  /** `aud`: the route id, so a token for one backend is refused by another. */
  readonly audience: string;
  readonly identity: TokenIdentity;
  /** Epoch milliseconds. */
  readonly now: number;
  /** @default 300, at most 300 */
  readonly ttlSeconds?: number;
}

export interface IdentityToken {
  readonly token: string;
  readonly kid: string;
  /** `exp`, in epoch seconds. */
  readonly expiresAt: number;
}

/** The claims of X-Kanmon-Jwt, in the order they are written. */
export interface IdentityTokenClaims {
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly name: string;
  readonly groups: readonly string[];
  readonly amr: readonly string[];
  readonly iat: number;
  readonly exp: number;
}

/**
 * Mints the X-Kanmon-Jwt token: a JWS in compact serialisation (RFC 7515 §7.1) signed with
 * ES256 (RFC 7518 §3.4). Signing costs tens of microseconds, so the proxy goes through
 * IdentityTokenCache instead of calling this per request.
 */
export function mintIdentityToken(input: MintIdentityTokenInput): IdentityToken {
  const ttl = input.ttlSeconds ?? MAX_IDENTITY_TOKEN_TTL_SECONDS;
  checkTtl(ttl);
  if (!input.issuer) throw new TypeError('mintIdentityToken: issuer must be a non-empty string');
  if (!input.audience) throw new TypeError('mintIdentityToken: audience (the route id) must be a non-empty string');
  if (!input.identity.userId) throw new TypeError('mintIdentityToken: identity.userId must be a non-empty string');
  if (!input.key.kid) throw new TypeError('mintIdentityToken: key.kid must be a non-empty string');
  const { asymmetricKeyType, asymmetricKeyDetails } = input.key.privateKey;
  if (asymmetricKeyType !== 'ec' || asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('mintIdentityToken: ES256 needs an EC P-256 private key');
  }

  // NumericDate is whole seconds (RFC 7519 §2).
  const iat = Math.floor(input.now / 1000);
  const claims: IdentityTokenClaims = {
    iss: input.issuer,
    aud: input.audience,
    sub: input.identity.userId,
    name: input.identity.username,
    groups: [...input.identity.groups],
    amr: [...input.identity.authMethods],
    iat,
    exp: iat + ttl,
  };
  // RFC 7515 §4.1.4: kid tells the backend which JWKS key to verify with.
  const header = { alg: 'ES256', typ: 'JWT', kid: input.key.kid };
  const signingInput = `${base64urlJson(header)}.${base64urlJson(claims)}`;
  // RFC 7518 §3.4: the signature is R || S, 32 octets each, not the DER that OpenSSL emits by default.
  const signature = sign('sha256', Buffer.from(signingInput, 'ascii'), { key: input.key.privateKey, dsaEncoding: 'ieee-p1363' });
  return { token: `${signingInput}.${signature.toString('base64url')}`, kid: input.key.kid, expiresAt: claims.exp };
}

export interface IdentityTokenCacheOptions {
  /** Where the current signing key comes from; a SigningKeyService fits. */
  readonly keys: { current(): TokenSigningKey };
  readonly issuer: string;
  /** @default 300, at most 300 */
  readonly ttlSeconds?: number;
  /** Upper bound on cached tokens; the oldest is evicted first. @default 10000 */
  readonly maxEntries?: number;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

interface CacheEntry {
  readonly token: string;
  readonly kid: string;
  readonly expiresAt: number;
  /** The identity the token was minted for; a change (say, new groups) mints a new token. */
  readonly identity: string;
}

/**
 * One identity token per (session, route), reused until it has less than a minute left or the
 * signing key changes, so a busy session costs one signature every four minutes per route
 * instead of one per request. The map is bounded: beyond `maxEntries` the entry minted longest
 * ago is dropped, so memory stays flat however many sessions pass through.
 */
export class IdentityTokenCache {
  readonly #keys: { current(): TokenSigningKey };
  readonly #issuer: string;
  readonly #ttl: number;
  readonly #margin: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Insertion order is mint order (entries are re-inserted when re-minted), so the first key is the oldest. */
  readonly #entries = new Map<string, CacheEntry>();
  #mints = 0;

  constructor(options: IdentityTokenCacheOptions) {
    this.#ttl = options.ttlSeconds ?? MAX_IDENTITY_TOKEN_TTL_SECONDS;
    checkTtl(this.#ttl);
    const maxEntries = options.maxEntries ?? 10_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`IdentityTokenCache: maxEntries must be a positive integer, got ${String(maxEntries)}`);
    }
    if (!options.issuer) throw new TypeError('IdentityTokenCache: issuer must be a non-empty string');
    this.#keys = options.keys;
    this.#issuer = options.issuer;
    // With a short lifetime, a full minute of margin would mean minting on every request.
    this.#margin = Math.min(REUSE_MARGIN_SECONDS, Math.floor(this.#ttl / 2));
    this.#maxEntries = maxEntries;
    this.#now = options.now ?? Date.now;
  }

  /** The token for this session on this route, minted only when the cached one will not do. */
  get(sessionId: string, routeId: string, identity: TokenIdentity): string {
    const now = this.#now();
    const key = this.#keys.current();
    const cacheKey = `${sessionId}\u0000${routeId}`;
    const fingerprint = identityFingerprint(identity);
    const cached = this.#entries.get(cacheKey);
    if (cached && cached.kid === key.kid && cached.identity === fingerprint && Math.floor(now / 1000) < cached.expiresAt - this.#margin) {
      return cached.token;
    }

    const minted = mintIdentityToken({ key, issuer: this.#issuer, audience: routeId, identity, now, ttlSeconds: this.#ttl });
    this.#mints++;
    setBounded(this.#entries, cacheKey, { token: minted.token, kid: minted.kid, expiresAt: minted.expiresAt, identity: fingerprint }, this.#maxEntries);
    return minted.token;
  }

  /** Drops every cached token of a session, e.g. at logout (a scan; logouts are rare next to requests). */
  forgetSession(sessionId: string): void {
    const prefix = `${sessionId}\u0000`;
    for (const key of this.#entries.keys()) if (key.startsWith(prefix)) this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** How many tokens were signed so far; for metrics and tests. */
  get mintCount(): number {
    return this.#mints;
  }
}

function checkTtl(ttl: number): void {
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_IDENTITY_TOKEN_TTL_SECONDS) {
    throw new RangeError(`identity token lifetime must be a whole number of seconds from 1 to ${MAX_IDENTITY_TOKEN_TTL_SECONDS}, got ${String(ttl)}`);
  }
}

function identityFingerprint(identity: TokenIdentity): string {
  return JSON.stringify([identity.userId, identity.username, identity.groups, identity.authMethods]);
}

function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}
