/**
 * Legacy sign-in in Chromium: after a passkey login, the demo groupware's legacy area (its
 * own cookie login form with a CSRF token) is signed in to by Kanmon. The user stores the
 * application password once on the account page (a wrong one first, then the right one),
 * never sees the legacy form, and the upstream session survives across pages; the HTTP Basic
 * page gets the same credentials without a browser prompt.
 */
import type { Browser, Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEGACY_DEMO_PASSWORD } from '../../runtime/demo/legacy.js';
import { launchBrowser } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { LEGACY_ROUTES } from '../support/legacy-routes.js';
import { enrollUser, pathOf } from './journeys.js';

describe('legacy sign-in', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  beforeAll(async () => {
    kanmon = await startTestKanmon('legacy', { routes: LEGACY_ROUTES });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('stores the application password once (a wrong one, then the right one) and never shows the legacy form', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'hanako' });
    const stats = () => kanmon.app.demo!.legacy.stats;
    const seen: string[] = [];
    user.page.on('response', (r: Response) => seen.push(`${r.status()} ${new URL(r.url()).pathname}`));
    try {
      // First visit: Kanmon has no password for the legacy app yet and asks for it.
      await user.page.goto(`${kanmon.url}/legacy/`);
      expect(pathOf(user.page)).toBe(`/.kanmon/account/apps?route=legacy&return=${encodeURIComponent('/legacy/')}`);
      await expect.poll(() => user.page.locator('#app-legacy .app-focus').count()).toBe(1);

      // A wrong password: the legacy app refuses it, and the user is told and asked again.
      await user.page.fill('#app-legacy input[name="password"]', 'not-the-password');
      await user.page.click('#app-legacy form.app-credentials button[type="submit"]');
      await user.page.waitForURL((u) => u.pathname === '/.kanmon/account/apps');
      expect(await user.page.getAttribute('#app-legacy .app-status', 'data-state')).toBe('rejected');
      expect(await user.page.textContent('#app-legacy .app-focus')).toContain('did not accept');
      expect(stats().refusedSignIns).toBe(1);

      // The right one: straight back to the application, signed in.
      await user.page.fill('#app-legacy input[name="password"]', LEGACY_DEMO_PASSWORD);
      await user.page.click('#app-legacy form.app-credentials button[type="submit"]');
      await user.page.waitForURL(`${kanmon.url}/legacy/`);
      expect(await user.page.textContent('#legacy-user')).toBe('hanako');
      const session = await user.page.textContent('#legacy-session');
      expect(stats().signIns).toBe(1);

      // The upstream session survives: more pages, a form post, the same legacy session, no new sign-in.
      await user.page.goto(`${kanmon.url}/legacy/notes`);
      await user.page.fill('input[name="note"]', 'お疲れさまです');
      await user.page.click('button[type="submit"]');
      await expect.poll(() => user.page.textContent('#legacy-notes')).toContain('お疲れさまです');
      await user.page.goto(`${kanmon.url}/legacy/`);
      expect(await user.page.textContent('#legacy-session')).toBe(session);
      expect(Number(await user.page.textContent('#legacy-views'))).toBeGreaterThanOrEqual(3);
      expect(stats().signIns).toBe(1);

      // The browser never held the legacy session cookie, and never saw the legacy login page.
      const cookies = await user.context.cookies();
      expect(cookies.map((c) => c.name)).not.toContain('LEGACYSESSID');
      expect(seen.filter((s) => s.endsWith(' /legacy/login'))).toEqual([]);

      // The HTTP Basic page: the same stored credentials, no browser prompt.
      const basic = await user.page.goto(`${kanmon.url}/legacy/basic/`);
      expect(basic?.status()).toBe(200);
      expect(await user.page.textContent('#basic-user')).toBe('hanako');
    } finally {
      await user.context.close();
    }
  });
});
