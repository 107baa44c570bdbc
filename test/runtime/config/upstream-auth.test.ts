/** The `upstreamAuth` route option: defaults, and every error reported at once in the config's wording. */
import { describe, expect, it } from 'vitest';
import { applyUsernameTemplate, validateUpstreamAuth } from '../../../runtime/config/upstream-auth.js';
import { validateConfig } from '../../../runtime/config/schema.js';

function check(value: unknown) {
  const errors: string[] = [];
  const config = validateUpstreamAuth(value, 'routes[0]', errors, 'app');
  return { config, errors };
}

describe('upstreamAuth config', () => {
  it('fills in the defaults of a form login', () => {
    const { config, errors } = check({ kind: 'form', loginUrl: '/login' });
    expect(errors).toEqual([]);
    expect(config).toEqual({
      kind: 'form',
      credentials: 'user',
      credentialSet: 'app',
      loginUrl: '/login',
      usernameField: 'username',
      passwordField: 'password',
      extraFields: {},
      detect: { redirectToLogin: true, statuses: [] },
      success: {},
      logoutMethod: 'GET',
    });
    expect(check({ kind: 'header', header: 'X-API-Key' }).config).toMatchObject({ credentials: 'shared', valuePrefix: '' });
  });

  it('reports every problem at once, in the config wording', () => {
    const { errors } = check({
      kind: 'form',
      loginUrl: 'https://evil.example/login',
      logoutUrl: '//evil.example/x',
      credentials: 'everyone',
      credentialSet: 'a b',
      usernameTemplate: '{email}',
      extraFields: { ok: 1 },
      detect: { redirectToLogin: 'yes', statuses: [200] },
      success: { cookie: 'a;b' },
      bogus: true,
    });
    expect(errors).toEqual(
      expect.arrayContaining([
        "routes[0].upstreamAuth: option 'loginUrl' must be a path on the upstream starting with '/', got \"https://evil.example/login\"",
        "routes[0].upstreamAuth: option 'logoutUrl' must be a path on the upstream starting with '/', got \"//evil.example/x\"",
        expect.stringContaining("option 'credentials' must be one of \"user\", \"shared\", \"user-or-shared\""),
        expect.stringContaining("option 'credentialSet' must be 1-63 letters"),
        expect.stringContaining("option 'usernameTemplate' may use {username} and {usernameLocal}, got {email}"),
        expect.stringContaining("option 'extraFields' must be an object"),
        expect.stringContaining("routes[0].upstreamAuth.detect: option 'redirectToLogin' must be true or false"),
        expect.stringContaining("routes[0].upstreamAuth.detect: option 'statuses' must be a list of HTTP statuses from 300 to 599"),
        expect.stringContaining("routes[0].upstreamAuth.success: option 'cookie' must be a cookie name"),
        expect.stringContaining("option 'bogus' is not known"),
      ]),
    );
  });

  it('refuses API headers that Kanmon owns, and a missing kind', () => {
    for (const header of ['Cookie', 'Host', 'X-Kanmon-User', 'X-Forwarded-For', 'bad header']) {
      expect(check({ kind: 'header', header }).errors.join()).toContain("option 'header' must be a header name other than");
    }
    expect(check({ header: 'X' }).errors.join()).toContain("option 'kind' is required");
  });

  it('needs some way to see that a login is wanted', () => {
    expect(check({ kind: 'form', loginUrl: '/l', detect: { redirectToLogin: false } }).errors.join()).toContain('needs at least one way');
  });

  it('is read as part of a route, and the route id is the default credential set', () => {
    const result = validateConfig({ routes: [{ id: 'legacy', match: { pathPrefix: '/legacy' }, upstream: 'demo', upstreamAuth: { kind: 'basic' } }] });
    expect(result.ok && result.config.routes[0]!.upstreamAuth).toEqual({ kind: 'basic', credentials: 'user', credentialSet: 'legacy' });
  });

  it('derives upstream user names from a template', () => {
    expect(applyUsernameTemplate('{username}@corp.local', 'hanako')).toBe('hanako@corp.local');
    expect(applyUsernameTemplate('CORP\\{usernameLocal}', 'hanako@example.jp')).toBe('CORP\\hanako');
  });
});
