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
