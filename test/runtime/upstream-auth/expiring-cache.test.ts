/**
 * The per-node cache upstream sign-in keeps opened credentials and jars in: bounded in time,
 * entries and bytes, and an expired entry is dropped from memory, not merely ignored.
 * A clock the test controls; no wall-clock time is asserted.
 */
import { describe, expect, it } from 'vitest';
import { ExpiringCache } from '../../../runtime/upstream-auth/expiring-cache.js';

function cache(opts: { ttlMs?: number; maxEntries?: number; maxBytes?: number } = {}) {
  let t = 1_000_000;
  let ttl = opts.ttlMs ?? 5000;
  const c = new ExpiringCache<string, string>({
    ttlMs: () => ttl,
    maxEntries: opts.maxEntries ?? 100,
    maxBytes: opts.maxBytes ?? 1_000_000,
    sizeOf: (v) => v.length,
    now: () => t,
  });
  return { c, advance: (ms: number) => (t += ms), setTtl: (ms: number) => (ttl = ms) };
}

describe('the expiring cache', () => {
  it('load: one fetch for callers asking together, kept as fetched when it began, then served from memory', async () => {
    const { c, advance } = cache();
    let fetches = 0;
    let release!: (v: string) => void;
    const fetch = () => {
      fetches++;
      return new Promise<string>((r) => (release = r));
    };
    const first = c.load('a', fetch);
    const second = c.load('a', fetch);
    advance(3000);
    release('v1');
    expect(await first).toBe('v1');
    expect(await second).toBe('v1');
    expect(fetches).toBe(1);
    expect(await c.load('a', fetch)).toBe('v1');
    expect(fetches).toBe(1);
    // Kept from when the fetch began: 2000 ms more makes it as old as the bound.
    advance(2000);
    expect(c.get('a')).toBeUndefined();
  });

  it('load: a set() or delete() while the fetch is under way wins, and what the fetch read is not kept', async () => {
    const cases: Array<[string, (c: ExpiringCache<string, string>) => void, string | undefined]> = [
      ['delete', (c) => c.delete('a'), undefined],
      ['set', (c) => c.set('a', 'local'), 'local'],
    ];
    for (const [name, change, expected] of cases) {
      const { c } = cache();
      let release!: (v: string) => void;
      const pending = c.load('a', () => new Promise<string>((r) => (release = r)));
      change(c);
      release('stale');
      expect(await pending, name).toBe('stale');
      expect(c.get('a'), name).toBe(expected);
    }
  });

  it('serves an entry until it is as old as the bound, then drops it', () => {
    const { c, advance } = cache();
    c.set('a', 'secret');
    advance(4999);
    expect(c.get('a')).toBe('secret');
    advance(1);
    expect(c.get('a')).toBeUndefined();
    expect(c.size).toBe(0);
    expect(c.bytes).toBe(0);
  });

  it('drops expired entries it is not asked about on the next access and on a sweep', () => {
    const { c, advance } = cache();
    c.set('old', 'secret-1');
    advance(3000);
    c.set('newer', 'secret-2');
    advance(2500);
    // Any access drops what expired at the front, though 'old' was never asked for again.
    expect(c.get('other')).toBeUndefined();
    expect(c.size).toBe(1);
    advance(5000);
    c.sweep();
    expect(c.size).toBe(0);
  });

  it('keeps at most maxEntries, dropping the oldest', () => {
    const { c } = cache({ maxEntries: 3 });
    for (const k of ['a', 'b', 'c', 'd']) c.set(k, k);
    expect(c.size).toBe(3);
    expect(c.get('a')).toBeUndefined();
    expect(c.get('d')).toBe('d');
  });

  it('keeps at most maxBytes, dropping the oldest; a value larger than the bound is not kept', () => {
    const { c } = cache({ maxBytes: 10 });
    c.set('a', 'xxxx');
    c.set('b', 'yyyy');
    c.set('c', 'zzzz');
    expect(c.bytes).toBeLessThanOrEqual(10);
    expect(c.get('a')).toBeUndefined();
    expect(c.get('c')).toBe('zzzz');
    c.set('huge', 'x'.repeat(11));
    expect(c.get('huge')).toBeUndefined();
    expect(c.bytes).toBeLessThanOrEqual(10);
  });

  it('keeps nothing when the bound is 0, and follows a bound changed while running', () => {
    const { c, setTtl, advance } = cache();
    setTtl(0);
    c.set('a', 'secret');
    expect(c.size).toBe(0);
    setTtl(2000);
    c.set('b', 'secret');
    advance(1000);
    setTtl(500);
    expect(c.get('b')).toBeUndefined();
  });

  it('distrusts an entry from the future (a clock stepped back)', () => {
    const { c, advance } = cache();
    c.set('a', 'secret');
    advance(-1);
    expect(c.get('a')).toBeUndefined();
  });
});
