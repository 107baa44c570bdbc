import { randomBytes } from 'node:crypto';

/** A random, URL-safe identifier with `bytes` bytes of entropy. */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * A time-sortable id: 12 hex digits of milliseconds, then 10 random hex digits.
 * Lexical order equals time order, which both stores rely on for audit paging.
 */
export function timeSortableId(time: number = Date.now()): string {
  return time.toString(16).padStart(12, '0') + randomBytes(5).toString('hex');
}
