import type { ActiveSession } from '../services/sessions.js';

/** The headers a backend trusts. Any client-sent header with the x-kanmon- prefix is dropped before these are added. */
export const IDENTITY_HEADER = {
  user: 'x-kanmon-user',
  userId: 'x-kanmon-user-id',
  groups: 'x-kanmon-groups',
  auth: 'x-kanmon-auth',
  jwt: 'x-kanmon-jwt',
} as const;

/**
 * Group names may be any Unicode (e.g. 経理部), but header values must be ASCII, so each
 * group is percent-encoded (RFC 3986) and the list is comma-separated. Usernames are ASCII
 * by construction.
 */
export function encodeGroups(groups: readonly string[]): string {
  return groups.map((g) => encodeURIComponent(g)).join(',');
}

export function identityHeaders(active: ActiveSession, jwt: string): Record<string, string> {
  return {
    [IDENTITY_HEADER.user]: active.user.username,
    [IDENTITY_HEADER.userId]: active.user.id,
    [IDENTITY_HEADER.groups]: encodeGroups(active.user.groups),
    [IDENTITY_HEADER.auth]: active.session.authMethods.join(','),
    [IDENTITY_HEADER.jwt]: jwt,
  };
}
