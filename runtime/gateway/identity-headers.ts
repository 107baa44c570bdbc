import type { TokenIdentity } from '../jwt/identity-token.js';
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

export function identityHeaders(active: ActiveSession, jwt: string, authMethods: readonly string[] = active.session.authMethods): Record<string, string> {
  return {
    [IDENTITY_HEADER.user]: active.user.username,
    [IDENTITY_HEADER.userId]: active.user.id,
    [IDENTITY_HEADER.groups]: encodeGroups(active.user.groups),
    [IDENTITY_HEADER.auth]: authMethods.join(','),
    [IDENTITY_HEADER.jwt]: jwt,
  };
}

/**
 * For certificate-only routes without a session: the user a user certificate names, or
 * `shared:<label>` for a shared device certificate (labels are ASCII by construction).
 */
export function certificateIdentityHeaders(identity: TokenIdentity, jwt: string): Record<string, string> {
  return {
    [IDENTITY_HEADER.user]: identity.username,
    [IDENTITY_HEADER.userId]: identity.userId,
    [IDENTITY_HEADER.groups]: encodeGroups(identity.groups),
    [IDENTITY_HEADER.auth]: identity.authMethods.join(','),
    [IDENTITY_HEADER.jwt]: jwt,
  };
}
