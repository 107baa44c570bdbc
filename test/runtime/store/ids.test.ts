import { describe, expect, it } from 'vitest';
import { randomId, timeSortableId } from '../../../runtime/store/ids.js';

describe('ids', () => {
  it('orders time-sortable ids by time, and by creation within one millisecond', () => {
    const t = 1_800_000_000_000;
    const ids = Array.from({ length: 1000 }, () => timeSortableId(t));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(1000);
    const later = timeSortableId(t + 1);
    expect(later > ids.at(-1)!).toBe(true);
    expect(later.slice(0, 12)).toBe((t + 1).toString(16).padStart(12, '0'));
    expect(later).toMatch(/^[0-9a-f]{22}$/);
  });

  it('carries the given time even when it is earlier than the last one', () => {
    timeSortableId(1_900_000_000_000);
    const earlier = timeSortableId(1_899_999_999_000);
    expect(earlier.slice(0, 12)).toBe((1_899_999_999_000).toString(16).padStart(12, '0'));
  });

  it('makes random ids of the requested size', () => {
    expect(Buffer.from(randomId(16), 'base64url')).toHaveLength(16);
    expect(randomId()).not.toBe(randomId());
  });
});
