/**
 * What the backend learns about the user, and how a session ends: identity headers and the
 * signed JWT, a spoofed header removed, signing in again without a username, and a session
 * revoked by an administrator from the command line.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { runCli, startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { backendHeaders, enrollUser, pathOf, verifyIdentityJwt, withoutPasskeyAutofill, type Jwks } from './journeys.js';

describe('identity and sessions', () => {
  let kanmon: TestKanmon;
  let browser: Browser;

  beforeAll(async () => {
    kanmon = await startTestKanmon('identity');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('reaches the backend with identity headers and a JWT that verifies against the JWKS, and a spoofed X-Kanmon-User is removed', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'hanako', groups: ['staff', '経理部'] });
    try {
      // A client claiming to be someone else: every identity header, forged.
      await user.page.setExtraHTTPHeaders({
        'X-Kanmon-User': 'mallory',
        'X-Kanmon-User-Id': 'mallory-id',
        'X-Kanmon-Groups': 'admins',
        'X-Kanmon-Auth': 'passkey,mtls',
        'X-Kanmon-Jwt': 'forged.token.here',
      });
      const headers = await backendHeaders(user.page, kanmon);
      const stored = await kanmon.app.services.users.require('hanako');

      // Exactly the real values: an appended forged value would show up as "mallory, hanako".
      expect(headers['x-kanmon-user']).toBe('hanako');
      expect(headers['x-kanmon-user-id']).toBe(stored.id);
      // Non-ASCII group names are percent-encoded so the header stays ASCII.
      expect(headers['x-kanmon-groups']).toBe(`staff,${encodeURIComponent('経理部')}`);
      // RFC 8176 'swk': the virtual authenticator's passkey is synced (backup eligible).
      expect(headers['x-kanmon-auth']).toBe('passkey,swk');
      expect(JSON.stringify(headers)).not.toContain('mallory');
      expect(JSON.stringify(headers)).not.toContain('forged.token.here');

      const jwksResponse = await user.page.request.get(`${kanmon.url}/.kanmon/jwks.json`);
      expect(jwksResponse.status()).toBe(200);
      const claims = verifyIdentityJwt(headers['x-kanmon-jwt']!, (await jwksResponse.json()) as Jwks);
      expect(claims).toMatchObject({
        iss: kanmon.url,
        aud: 'demo',
        sub: stored.id,
        name: 'hanako',
        groups: ['staff', '経理部'],
        amr: ['passkey', 'swk'],
      });
      const iat = claims.iat as number;
      const exp = claims.exp as number;
      expect(exp - iat).toBeGreaterThan(0);
      expect(exp - iat).toBeLessThanOrEqual(300);
      expect(exp * 1000).toBeGreaterThan(Date.now());
    } finally {
      await user.context.close();
    }
  });

  it('signs in again usernameless with the passkey button once the session cookie is gone, and returns to the return path', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'taro' });
    try {
      await withoutPasskeyAutofill(user.page);
      // The session cookie has no Max-Age, so closing the browser drops it; this is that.
      await user.context.clearCookies();

      await user.page.goto(`${kanmon.url}/headers?from=e2e`);
      expect(pathOf(user.page)).toBe(`/.kanmon/login?return=${encodeURIComponent('/headers?from=e2e')}`);
      // Usernameless: the field stays empty, the discoverable credential says who this is.
      expect(await user.page.inputValue('#username')).toBe('');
      await user.page.click('#passkey-login');

      await user.page.waitForURL(`${kanmon.url}/headers?from=e2e`);
      const body = JSON.parse((await user.page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
      expect(body.headers['x-kanmon-user']).toBe('taro');
    } finally {
      await user.context.close();
    }
  });

  it('a session revoked from the CLI stops working within session.cacheSeconds', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'jiro' });
    try {
      expect((await backendHeaders(user.page, kanmon))['x-kanmon-user']).toBe('jiro');

      // The real CLI, in its own process, on the same SQLite database the server has open.
      const cli = await runCli(kanmon.dataDir, ['sessions', 'revoke', 'jiro']);
      expect(cli.stderr).toBe('');
      expect(cli.code).toBe(0);
      expect(cli.stdout).toContain('revoked 1 session(s) of jiro');

      // This node only learns of it when its cached copy ages out. Poll every 500 ms; the
      // number of polls (not elapsed time) bounds the wait at cacheSeconds + 3 s of sleeps.
      const pollEveryMs = 500;
      const maxPolls = Math.ceil(((kanmon.app.config.session.cacheSeconds + 3) * 1000) / pollEveryMs);
      let polls = 0;
      let redirectedToLogin = false;
      while (polls < maxPolls) {
        polls++;
        await user.page.goto(`${kanmon.url}/headers`);
        if (new URL(user.page.url()).pathname === '/.kanmon/login') {
          redirectedToLogin = true;
          break;
        }
        await user.page.waitForTimeout(pollEveryMs);
      }
      expect(redirectedToLogin, `still signed in after ${polls} polls`).toBe(true);
      expect(pathOf(user.page)).toBe(`/.kanmon/login?return=${encodeURIComponent('/headers')}`);
    } finally {
      await user.context.close();
    }
  });
});
