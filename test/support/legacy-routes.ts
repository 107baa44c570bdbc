/**
 * The routes of the default local config (kanmon.config.json) for the demo groupware and its
 * legacy area: the legacy form login signed in to by Kanmon, and the HTTP Basic page sharing
 * its stored credentials.
 */
import type { KanmonConfigInput } from '../../runtime/config/schema.js';

export const LEGACY_ROUTES: NonNullable<KanmonConfigInput['routes']> = [
  { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' },
  {
    id: 'legacy',
    match: { pathPrefix: '/legacy' },
    upstream: 'demo',
    upstreamAuth: { kind: 'form', loginUrl: '/legacy/login', usernameTemplate: '{username}', logoutUrl: '/legacy/logout' },
  },
  { id: 'legacy-basic', match: { pathPrefix: '/legacy/basic' }, upstream: 'demo', upstreamAuth: { kind: 'basic', credentialSet: 'legacy', usernameTemplate: '{username}' } },
];
