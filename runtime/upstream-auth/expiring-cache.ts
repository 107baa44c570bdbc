/**
 * A per-node cache whose entries are trusted for a bounded time, bounded in entries and in
 * (estimated) bytes. Upstream sign-in keeps opened credentials and cookie jars in it so a
 * signed-in user's requests cost no store round trip; the time bound is how long a change
 * made on another node can go unseen here. An expired entry is dropped, not merely ignored:
 * on every access the oldest entries are checked, and a timer (which never keeps the process
 * alive) sweeps the rest, so secrets do not linger in memory after their bound.
 */
/** A bound given in seconds (a number, or a getter of a live setting) as the milliseconds getter `ttlMs` takes. */
export function boundMs(seconds: number | (() => number)): () => number {
  return typeof seconds === 'function' ? () => seconds() * 1000 : () => seconds * 1000;
}

export interface ExpiringCacheOptions<V> {
  /** How long an entry is trusted, read at each use (a live setting); 0 turns caching off. */
  readonly ttlMs: () => number;
  readonly maxEntries: number;
  /** Upper bound on the sum of `sizeOf` over all entries. */
  readonly maxBytes: number;
  /** Estimated bytes an entry holds. */
  readonly sizeOf: (value: V) => number;
  readonly now: () => number;
}

interface Entry<V> {
  readonly value: V;
  readonly fetchedAt: number;
  readonly bytes: number;
}

export class ExpiringCache<K, V> {
  readonly #entries = new Map<K, Entry<V>>();
  /** Fetches under way (load), one per key. */
  readonly #loading = new Map<K, Promise<V>>();
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ExpiringCacheOptions<V>) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The value if it was fetched less than the bound ago; an expired entry is dropped. */
  get(key: K): V | undefined {
    const now = this.opts.now();
    this.#sweepOldest(now);
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (!this.#fresh(hit, now)) {
      this.#drop(key);
      return undefined;
    }
    return hit.value;
  }

  /**
   * Stores `value` as fetched at `fetchedAt` (the time the store was read; a change made here
   * may keep the time of the read it was based on). Not kept at all when caching is off or
   * the value alone exceeds the byte bound; the oldest entries make room.
   */
  set(key: K, value: V, fetchedAt = this.opts.now()): void {
    this.delete(key);
    const bytes = this.opts.sizeOf(value);
    if (this.opts.ttlMs() <= 0 || bytes > this.opts.maxBytes) return;
    while (this.#entries.size > 0 && (this.#entries.size >= this.opts.maxEntries || this.#bytes + bytes > this.opts.maxBytes)) {
      this.#drop(this.#entries.keys().next().value as K);
    }
    this.#entries.set(key, { value, fetchedAt, bytes });
    this.#bytes += bytes;
    this.#arm();
  }

  /**
   * The fresh value of `key`, else what `fetch` gives, kept as fetched when the fetch began;
   * one fetch per key at a time, however many callers ask together. A set() or delete() of the
   * key while a fetch is under way wins: the fetch's callers get what it read, but it is not kept,
   * since it may be older than that change.
   */
  load(key: K, fetch: () => Promise<V>): Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    const pending = this.#loading.get(key);
    if (pending) return pending;
    const fetchedAt = this.opts.now();
    const p: Promise<V> = fetch()
      .then((value) => {
        if (this.#loading.get(key) === p) this.set(key, value, fetchedAt);
        return value;
      })
      .finally(() => {
        if (this.#loading.get(key) === p) this.#loading.delete(key);
      });
    this.#loading.set(key, p);
    return p;
  }

  /** Drops the entry, and keeps a fetch of it under way from being kept. */
  delete(key: K): void {
    this.#loading.delete(key);
    this.#drop(key);
  }

  #drop(key: K): void {
    const hit = this.#entries.get(key);
    if (!hit) return;
    this.#entries.delete(key);
    this.#bytes -= hit.bytes;
  }

  /** Drops every entry (and stops the sweep timer). */
  clear(): void {
    this.#entries.clear();
    this.#loading.clear();
    this.#bytes = 0;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Drops every expired entry. */
  sweep(): void {
    const now = this.opts.now();
    for (const [key, entry] of this.#entries) if (!this.#fresh(entry, now)) this.#drop(key);
  }

  #fresh(entry: Entry<V>, now: number): boolean {
    const age = now - entry.fetchedAt;
    return age >= 0 && age < this.opts.ttlMs();
  }

  /** Entries are mostly in fetch order, so expired ones gather at the front: a cheap look there on every access. */
  #sweepOldest(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (this.#fresh(entry, now)) return;
      this.#drop(key);
    }
  }

  #arm(): void {
    if (this.#timer) return;
    const period = Math.max(1000, this.opts.ttlMs());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sweep();
      if (this.#entries.size > 0) this.#arm();
    }, period);
    this.#timer.unref();
  }
}
