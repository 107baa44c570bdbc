import { describe, expect, it } from 'vitest';
import { setBounded } from '../../../runtime/cache/bounded-map.js';

describe('setBounded', () => {
  it('keeps at most maxEntries, evicting the entry stored longest ago', () => {
    const m = new Map<string, number>();
    for (let i = 0; i < 5; i++) setBounded(m, `k${i}`, i, 3);
    expect([...m.keys()]).toEqual(['k2', 'k3', 'k4']);
  });

  it('re-setting a key makes it the newest instead of evicting another', () => {
    const m = new Map<string, number>();
    setBounded(m, 'a', 1, 2);
    setBounded(m, 'b', 2, 2);
    setBounded(m, 'a', 3, 2);
    expect([...m.entries()]).toEqual([['b', 2], ['a', 3]]);
    setBounded(m, 'c', 4, 2);
    expect([...m.keys()]).toEqual(['a', 'c']);
  });

  it('shrinks a map that is already over the bound', () => {
    const m = new Map([['x', 1], ['y', 2], ['z', 3]]);
    setBounded(m, 'n', 4, 2);
    expect([...m.keys()]).toEqual(['z', 'n']);
  });
});
