/**
 * Cookie jars in the store's named documents, one per Kanmon session and route, so every node
 * sends the same upstream session and a jar ends with its Kanmon session (it expires at the
 * session's absolute expiry, and sign-out deletes it). A short in-process cache (bounded in
 * time, entries and bytes) keeps the hot path off the store: a jar written or deleted on this
 * node is seen here at once, one changed on another node once the cached copy is older than
 * the bound. Writes are optimistic and merge on a race, so two nodes (or two parallel
 * responses) each setting a cookie lose neither; a change that changes nothing is not written.
 */
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

const EMPTY: JarState = { cookies: [] };

/** Bounds of the per-node jar cache; a jar holds at most JAR_LIMITS' cookies, so the byte bound is what limits memory. */
export const JAR_CACHE_LIMITS = { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 } as const;

interface Cached {
  readonly state: JarState;
  readonly version: number;
}

export class JarStore {
  private readonly cache: ExpiringCache<string, Cached>;
  /** One store read per jar at a time, however many requests of a page arrive together. */
  private readonly loading = new Map<string, Promise<Cached>>();

  constructor(
    private readonly documents: DocumentStore,
    private readonly opts: {
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
      sizeOf: (c) => c.state.cookies.reduce((n, k) => n + 2 * (k.name.length + k.value.length + k.path.length) + 64, 128),
      now: opts.now,
    });
  }

  static idOf(sessionId: string, routeId: string): string {
    return `${sessionId}/${routeId}`;
  }

  async get(id: string): Promise<JarState> {
    const hit = this.cache.get(id);
    if (hit) return hit.state;
    return (await this.load(id)).state;
  }

  /**
   * Applies `change` to the current jar and stores it, re-reading and re-applying when another
   * writer got there first. `expiresAt` is the Kanmon session's absolute expiry.
   */
  async update(id: string, expiresAt: number, change: (state: JarState) => JarState): Promise<JarState> {
    let current = this.cache.get(id) ?? (await this.load(id));
    for (let attempt = 0; ; attempt++) {
      const next = change(current.state);
      // Nothing changed (an upstream re-sending the cookies it set): no write.
      if (JSON.stringify(next) === JSON.stringify(current.state)) return current.state;
      const now = this.opts.now();
      // Show the change to this node's next request at once, before the write lands (a failed write drops it).
      this.cache.set(id, { state: next, version: current.version }, now);
      try {
        const stored = await this.documents.put(
          { kind: JAR_KIND, id, body: JSON.stringify(next), expiresAt },
          { now, expectedVersion: current.version },
        );
        this.loading.delete(id);
        this.cache.set(id, { state: next, version: stored.version }, now);
        return next;
      } catch (err) {
        if (!(err instanceof ConcurrentUpdateError) || attempt >= 4) {
          this.cache.delete(id);
          throw err;
        }
        current = await this.load(id);
      }
    }
  }

  /** Every jar of a session, for sign-out. */
  async listForSession(sessionId: string): Promise<Array<{ id: string; routeId: string; state: JarState }>> {
    const out: Array<{ id: string; routeId: string; state: JarState }> = [];
    let cursor: string | undefined;
    do {
      const page = await this.documents.list(JAR_KIND, { now: this.opts.now(), prefix: `${sessionId}/`, limit: 100, ...(cursor ? { cursor } : {}) });
      for (const doc of page.documents) out.push({ id: doc.id, routeId: doc.id.slice(sessionId.length + 1), state: parse(doc.body) });
      cursor = page.cursor;
    } while (cursor);
    return out;
  }

  async delete(id: string): Promise<void> {
    this.cache.delete(id);
    this.loading.delete(id);
    try {
      await this.documents.delete(JAR_KIND, id);
    } finally {
      // A read that raced the delete must not bring the jar back here.
      this.cache.delete(id);
    }
  }

  private load(id: string): Promise<Cached> {
    const pending = this.loading.get(id);
    if (pending) return pending;
    let p!: Promise<Cached>;
    p = (async () => {
      const now = this.opts.now();
      const doc = await this.documents.get(JAR_KIND, id, now);
      const cached: Cached = doc ? { state: parse(doc.body), version: doc.version } : { state: EMPTY, version: 0 };
      // Not when the jar was deleted or written here meanwhile: what was read is older than that.
      if (this.loading.get(id) === p) this.cache.set(id, cached, now);
      return cached;
    })().finally(() => {
      if (this.loading.get(id) === p) this.loading.delete(id);
    });
    this.loading.set(id, p);
    return p;
  }
}

function parse(body: string): JarState {
  try {
    const v = JSON.parse(body) as JarState;
    return Array.isArray(v.cookies) ? v : EMPTY;
  } catch {
    return EMPTY;
  }
}
