import { createHash, timingSafeEqual } from 'node:crypto';

/** The hidden form field and the API header that carry the console's CSRF token. */
export const CSRF_FIELD = '_csrf';
export const CSRF_HEADER = 'x-kanmon-csrf';

/**
 * The CSRF token of a session: derived from the session cookie's value (which is HttpOnly, so a
 * page on another site can neither read it nor compute this), and the same on every node. It is
 * a different digest from the store key (SHA-256 of the bare value), so neither reveals the other.
 * This is on top of the portal's Origin check, which already refuses cross-site posts.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHash('sha256').update('kanmon-admin-csrf\u0000').update(sessionToken).digest('base64url');
}

export function csrfTokenMatches(sessionToken: string, presented: unknown): boolean {
  if (typeof presented !== 'string' || presented.length !== 43) return false;
  const expected = Buffer.from(csrfTokenFor(sessionToken));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
