/**
 * Signing out from the account page is a real form POST: it must pass the cross-site check
 * (Origin is sent because portal pages use Referrer-Policy same-origin), clear the cookie,
 * and a usernameless login afterwards returns to the return path.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { enrollUser, pathOf, withoutPasskeyAutofill } from './journeys.js';

describe('signing out', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  beforeAll(async () => {
    kanmon = await startTestKanmon('sign-out');
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('signs out from the account page, then signs in again usernameless and returns to the return path', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'saburo' });
    try {
      await withoutPasskeyAutofill(user.page);
      await user.page.goto(`${kanmon.url}/.kanmon/account`);
      const [logout] = await Promise.all([
        user.page.waitForResponse((r) => new URL(r.url()).pathname === '/.kanmon/logout'),
        user.page.click('#sign-out'),
      ]);
      expect(logout.status()).toBe(303);
      await user.page.waitForURL(`${kanmon.url}/.kanmon/signed-out`);
      expect((await user.context.cookies()).find((c) => c.name === '__Host-kanmon-session')).toBeUndefined();

      await user.page.goto(`${kanmon.url}/headers?after=signout`);
      expect(pathOf(user.page)).toBe(`/.kanmon/login?return=${encodeURIComponent('/headers?after=signout')}`);
      await user.page.click('#passkey-login');
      await user.page.waitForURL(`${kanmon.url}/headers?after=signout`);
      const body = JSON.parse((await user.page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
      expect(body.headers['x-kanmon-user']).toBe('saburo');
    } finally {
      await user.context.close();
    }
  });
});
