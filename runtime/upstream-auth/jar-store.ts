/**
 * Cookie jars in the store's named documents, one per Kanmon session and route, so every node
 * sends the same upstream session and a jar ends with its Kanmon session (it expires at the
 * session's absolute expiry, and sign-out deletes it). A short in-process cache keeps the hot
 * path off the store; writes are optimistic and merge on a race, so two nodes (or two
 * parallel responses) each setting a cookie lose neither.
 */
import { setBounded } from '../cache/bounded-map.js';
import { ConcurrentUpdateError } from '../store/errors.js';
import type { DocumentStore } from '../store/types.js';
import type { JarCookie } from './cookie-jar.js';

export const JAR_KIND = 'upstream-auth-jar';

export interface JarState {
  readonly cookies: readonly JarCookie[];
  /** When Kanmon last signed in to the upstream for this session; absent: not signed in. */
  readonly signedInAt?: number;
  /** An answer came through after the last sign-in without the upstream asking to sign in again. */
  readonly confirmed?: boolean;
}

const EMPTY: JarState = { cookies: [] };

interface Cached {
  readonly state: JarState;
  readonly version: number;
  readonly fetchedAt: number;
}

export class JarStore {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly documents: DocumentStore,
    private readonly opts: { readonly cacheMs: number; readonly maxEntries: number; readonly now: () => number },
  ) {}

  static idOf(sessionId: string, routeId: string): string {
    return `${sessionId}/${routeId}`;
  }

  async get(id: string): Promise<JarState> {
    const now = this.opts.now();
    const hit = this.cache.get(id);
    if (hit && now - hit.fetchedAt < this.opts.cacheMs) return hit.state;
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
      const now = this.opts.now();
      // Show the change to this node's next request at once, before the write lands.
      setBounded(this.cache, id, { state: next, version: current.version, fetchedAt: current.fetchedAt }, this.opts.maxEntries);
      try {
        const stored = await this.documents.put(
          { kind: JAR_KIND, id, body: JSON.stringify(next), expiresAt },
          { now, expectedVersion: current.version },
        );
        setBounded(this.cache, id, { state: next, version: stored.version, fetchedAt: now }, this.opts.maxEntries);
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
    await this.documents.delete(JAR_KIND, id);
  }

  private async load(id: string): Promise<Cached> {
    const now = this.opts.now();
    const doc = await this.documents.get(JAR_KIND, id, now);
    const cached: Cached = doc ? { state: parse(doc.body), version: doc.version, fetchedAt: now } : { state: EMPTY, version: 0, fetchedAt: now };
    setBounded(this.cache, id, cached, this.opts.maxEntries);
    return cached;
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
