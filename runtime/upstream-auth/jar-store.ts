/**
 * Cookie jars in the store's named documents, one per Kanmon session and route, so every node
 * sends the same upstream session and a jar ends with its Kanmon session (it expires at the
 * session's absolute expiry, and sign-out deletes it). A short in-process cache (bounded in
 * time, entries and bytes) keeps the hot path off the store: a jar written or deleted on this
 * node is seen here at once, one changed on another node once the cached copy is older than
 * the bound. Writes are optimistic and merge on a race, so two nodes (or two parallel
 * responses) each setting a cookie lose neither.
 *
 * The cookies are the legacy app's bearer credentials, so a jar is sealed with the secret box
 * before it reaches the store, bound to its owner (the Kanmon user), the route's credential set,
 * the session and the route: a sealed jar copied into another session's document does not
 * open. A jar that does not open (copied, altered, or stored unsealed by an earlier version) is
 * logged without its contents and read as empty, so Kanmon signs in to the app again.
 *
 * A change is written only when it matters to another node (see `mustStore`): a cookie added,
 * removed or changed, the sign-in state, or an expiry the stored copy would otherwise let lapse.
 * An app that pushes its cookies' expiry forward on every answer costs a write per quarter of
 * the cookie's lifetime, not one per request; this node's cache holds the latest at once.
 */
import type { Logger } from 'pino';
import { SecretOpenError, type SecretBox } from '../secrets/secret-box.js';
import { ConcurrentUpdateError } from '../store/errors.js';
import type { DocumentStore } from '../store/types.js';
import type { JarCookie } from './cookie-jar.js';
import { ExpiringCache } from './expiring-cache.js';

export const JAR_KIND = 'upstream-auth-jar';

export interface JarState {
  readonly cookies: readonly JarCookie[];
  /** When Kanmon last signed in to the upstream for this session; absent: not signed in. */
  readonly signedInAt?: number;
  /** An answer came through after the last sign-in without the upstream asking to sign in again. */
  readonly confirmed?: boolean;
}

/** Which jar: the Kanmon session and route it belongs to, and what its seal is bound to. */
export interface JarKey {
  readonly sessionId: string;
  readonly routeId: string;
  /** The Kanmon user whose session holds the jar. */
  readonly userId: string;
  /** The route's credential set. */
  readonly credentialSet: string;
}

/** A jar document's body: the owner in the clear (sign-out needs it to open the jar), the state sealed. */
interface SealedJar {
  readonly v: 2;
  readonly owner: string;
  readonly sealed: string;
}

const EMPTY: JarState = { cookies: [] };

/** Bounds of the per-node jar cache; a jar holds at most JAR_LIMITS' cookies, so the byte bound is what limits memory. */
export const JAR_CACHE_LIMITS = { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 } as const;

/**
 * An expiry-only change is written once the stored expiry has less than this share of the new
 * lifetime left, i.e. once a quarter of the lifetime has passed since it was stored.
 */
export const EXPIRY_WRITE_SHARE = 0.75;

interface Cached {
  /** The latest jar on this node. */
  readonly state: JarState;
  /** What the store holds at `version` (equal to `state` unless an expiry-only change was kept here). */
  readonly stored: JarState;
  readonly version: number;
  readonly context: string;
  readonly fetchedAt: number;
}

export class JarStore {
  private readonly cache: ExpiringCache<string, Cached>;

  constructor(
    private readonly documents: DocumentStore,
    private readonly opts: {
      readonly secrets: SecretBox;
      readonly logger: Logger;
      /** How long a read jar is trusted, read at each use (a live setting). */
      readonly cacheMs: () => number;
      readonly maxEntries?: number;
      readonly maxBytes?: number;
      readonly now: () => number;
    },
  ) {
    this.cache = new ExpiringCache<string, Cached>({
      ttlMs: opts.cacheMs,
      maxEntries: opts.maxEntries ?? JAR_CACHE_LIMITS.maxEntries,
      maxBytes: opts.maxBytes ?? JAR_CACHE_LIMITS.maxBytes,
      // The latest and the stored copy may differ (in expiries only): counted twice.
      sizeOf: (c) => 2 * c.state.cookies.reduce((n, k) => n + 2 * (k.name.length + k.value.length + k.path.length) + 64, 128),
      now: opts.now,
    });
  }

  static idOf(sessionId: string, routeId: string): string {
    return `${sessionId}/${routeId}`;
  }

  /** The secret-box context of a jar: a sealed jar opens only for the same owner, credential set, session and route. */
  static contextOf(key: JarKey): string {
    return `upstream-auth-jar:${key.credentialSet}/user/${key.userId}/${JarStore.idOf(key.sessionId, key.routeId)}`;
  }

  async get(key: JarKey): Promise<JarState> {
    return (this.cached(key) ?? (await this.load(key))).state;
  }

  /**
   * Applies `change` to the current jar and stores it when that matters (`mustStore`),
   * re-reading and re-applying when another writer got there first. `expiresAt` is the Kanmon
   * session's absolute expiry.
   */
  async update(key: JarKey, expiresAt: number, change: (state: JarState) => JarState): Promise<JarState> {
    const id = JarStore.idOf(key.sessionId, key.routeId);
    const context = JarStore.contextOf(key);
    let current = this.cached(key) ?? (await this.load(key));
    for (let attempt = 0; ; attempt++) {
      const next = change(current.state);
      const now = this.opts.now();
      if (!mustStore(current.stored, next, now)) {
        // Nothing another node needs yet: this node keeps the latest, trusted as long as the read it came from.
        if (next !== current.state) this.cache.set(id, { ...current, state: next }, current.fetchedAt);
        return next;
      }
      // Show the change to this node's next request at once, before the write lands (a failed write drops it).
      this.cache.set(id, { ...current, state: next }, current.fetchedAt);
      try {
        const sealed = await this.opts.secrets.seal(new TextEncoder().encode(JSON.stringify(next)), context);
        const body: SealedJar = { v: 2, owner: key.userId, sealed };
        const stored = await this.documents.put({ kind: JAR_KIND, id, body: JSON.stringify(body), expiresAt }, { now, expectedVersion: current.version });
        this.cache.set(id, { state: next, stored: next, version: stored.version, context, fetchedAt: now }, now);
        return next;
      } catch (err) {
        if (!(err instanceof ConcurrentUpdateError) || attempt >= 4) {
          this.cache.delete(id);
          throw err;
        }
        current = await this.load(key);
      }
    }
  }

  /**
   * Every jar of a session, for sign-out. `credentialSetOf` names a route's credential set;
   * a jar of a route that no longer has one, or that does not open, is listed as empty.
   */
  async listForSession(sessionId: string, credentialSetOf: (routeId: string) => string | undefined): Promise<Array<{ id: string; routeId: string; state: JarState }>> {
    const out: Array<{ id: string; routeId: string; state: JarState }> = [];
    let cursor: string | undefined;
    do {
      const page = await this.documents.list(JAR_KIND, { now: this.opts.now(), prefix: `${sessionId}/`, limit: 100, ...(cursor ? { cursor } : {}) });
      for (const doc of page.documents) {
        const routeId = doc.id.slice(sessionId.length + 1);
        const set = credentialSetOf(routeId);
        const owner = ownerOf(doc.body);
        const state = set !== undefined && owner !== undefined ? await this.open(doc.body, { sessionId, routeId, userId: owner, credentialSet: set }) : EMPTY;
        out.push({ id: doc.id, routeId, state });
      }
      cursor = page.cursor;
    } while (cursor);
    return out;
  }

  async delete(id: string): Promise<void> {
    this.cache.delete(id);
    try {
      await this.documents.delete(JAR_KIND, id);
    } finally {
      // A read that raced the delete must not bring the jar back here.
      this.cache.delete(id);
    }
  }

  /** This node's copy while fresh, when it was opened for the same owner and set. */
  private cached(key: JarKey): Cached | undefined {
    const hit = this.cache.get(JarStore.idOf(key.sessionId, key.routeId));
    return hit && hit.context === JarStore.contextOf(key) ? hit : undefined;
  }

  /** One store read per jar at a time; a jar written or deleted here meanwhile keeps it from being kept. */
  private async load(key: JarKey): Promise<Cached> {
    const id = JarStore.idOf(key.sessionId, key.routeId);
    const context = JarStore.contextOf(key);
    const loaded = await this.cache.load(id, () => this.read(key));
    if (loaded.context === context) return loaded;
    // Read for another owner or credential set of the same session and route (the route's set changed): this one's replaces it.
    this.cache.delete(id);
    const again = await this.cache.load(id, () => this.read(key));
    return again.context === context ? again : this.read(key);
  }

  private async read(key: JarKey): Promise<Cached> {
    const now = this.opts.now();
    const doc = await this.documents.get(JAR_KIND, JarStore.idOf(key.sessionId, key.routeId), now);
    // An unreadable jar keeps its version, so the sign-in that follows replaces it.
    const state = doc ? await this.open(doc.body, key) : EMPTY;
    return { state, stored: state, version: doc?.version ?? 0, context: JarStore.contextOf(key), fetchedAt: now };
  }

  /** A stored jar's state; empty (and logged, without its contents) when it does not open. */
  private async open(body: string, key: JarKey): Promise<JarState> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
    const unreadable = (reason: string) => {
      this.opts.logger.warn({ route: key.routeId, userId: key.userId, reason }, 'an upstream cookie jar could not be opened; it is treated as empty and Kanmon signs in to the app again');
      return EMPTY;
    };
    if (!isSealedJar(parsed)) {
      return unreadable(isRecord(parsed) && Array.isArray(parsed.cookies) ? 'stored unsealed by an earlier version' : 'malformed');
    }
    let plain: Uint8Array;
    try {
      plain = await this.opts.secrets.open(parsed.sealed, JarStore.contextOf(key));
    } catch (err) {
      // Only a seal that fails; a secret box that cannot be reached (KMS) is an outage, not an empty jar.
      if (err instanceof SecretOpenError) return unreadable(err.reason === 'authentication-failed' ? 'sealed for another owner, or altered' : err.reason);
      throw err;
    }
    try {
      const state = JSON.parse(new TextDecoder().decode(plain)) as JarState;
      return isRecord(state) && Array.isArray(state.cookies) ? state : unreadable('malformed');
    } catch {
      return unreadable('malformed');
    }
  }
}

/**
 * Whether a change must reach the store: anything but an expiry pushed forward does (a cookie
 * added, removed, or with another value; a session cookie becoming persistent or back; an
 * expiry brought forward; the sign-in state). An expiry pushed forward is written only once the
 * stored one has less than three quarters of the new lifetime left.
 *
 * Why that rule: the stored copy is what other nodes use, and what this node uses again once
 * its cached copy is older than session.cacheSeconds. A stored expiry never lags the app's by
 * more than a quarter of the cookie's lifetime, so it lapses early only after the user was
 * idle for three quarters of it (then Kanmon signs in to the app again, which a user does not
 * see), and an active user's cookie never lapses in the store. In exchange, an app that
 * refreshes a 30-minute cookie on every answer costs one write per 7.5 minutes of activity
 * per jar instead of one per request. The rule depends on the cookie's lifetime only, so
 * it holds whatever the cache bound is.
 */
export function mustStore(stored: JarState, next: JarState, now: number): boolean {
  if (stored.signedInAt !== next.signedInAt || (stored.confirmed ?? false) !== (next.confirmed ?? false)) return true;
  if (stored.cookies.length !== next.cookies.length) return true;
  const byKey = new Map(stored.cookies.map((c) => [cookieKey(c), c]));
  if (byKey.size !== stored.cookies.length) return true;
  for (const c of next.cookies) {
    const s = byKey.get(cookieKey(c));
    if (!s || s.value !== c.value) return true;
    if (s.expiresAt === c.expiresAt) continue;
    if (s.expiresAt === undefined || c.expiresAt === undefined || c.expiresAt < s.expiresAt) return true;
    if (s.expiresAt - now < (c.expiresAt - now) * EXPIRY_WRITE_SHARE) return true;
  }
  return false;
}

function cookieKey(c: JarCookie): string {
  return `${c.name}\u0000${c.path}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSealedJar(v: unknown): v is SealedJar {
  return isRecord(v) && v.v === 2 && typeof v.owner === 'string' && typeof v.sealed === 'string';
}

function ownerOf(body: string): string | undefined {
  try {
    const v: unknown = JSON.parse(body);
    return isSealedJar(v) ? v.owner : undefined;
  } catch {
    return undefined;
  }
}
