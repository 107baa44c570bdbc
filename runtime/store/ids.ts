import { randomBytes } from 'node:crypto';

/** A random, URL-safe identifier with `bytes` bytes of entropy. */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

let lastTime = 0;
let sequence = 0;

/**
 * A time-sortable id: 12 hex digits of milliseconds, 4 hex digits of a per-process sequence,
 * then 6 random hex digits. Lexical order equals time order, which both stores rely on for
 * audit paging; the sequence keeps events of one process in the order they happened even
 * within one millisecond (ids from different nodes in the same millisecond order at random).
 * A time earlier than the last one (an explicit past time, or a clock step back) is used as is.
 */
export function timeSortableId(time: number = Date.now()): string {
  // The id always carries the given time (the DynamoDB audit partition is derived from it);
  // only ids of the same millisecond are sequenced.
  if (time === lastTime) {
    sequence = Math.min(sequence + 1, 0xffff);
  } else {
    lastTime = time;
    sequence = 0;
  }
  return time.toString(16).padStart(12, '0') + sequence.toString(16).padStart(4, '0') + randomBytes(3).toString('hex');
}
