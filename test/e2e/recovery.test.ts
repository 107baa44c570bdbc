/**
 * Recovery codes in Chromium: generated on the account page (shown once), the phone with the
 * only passkey is lost, a recovery code signs the user in (and the administrators are told),
 * and the user is taken straight to registering a new passkey, which then signs in.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '../../runtime/notify/notifier.js';
import { launchBrowser, saveScreenshot, VirtualAuthenticator } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { recordNotifications } from '../support/notifications.js';
import { backendHeaders, enrollUser, pathOf, withoutPasskeyAutofill } from './journeys.js';

describe('recovery codes', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  let notifications: Notification[];

  beforeAll(async () => {
    kanmon = await startTestKanmon('recovery');
    notifications = recordNotifications(kanmon.app);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('signs in with a recovery code after the passkey is lost, and leads straight to registering a new one', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'hanako', passkeyName: 'Old phone' });
    const { page } = user;
    try {
      await withoutPasskeyAutofill(page);
      await page.goto(`${kanmon.url}/.kanmon/account`);
      await expect.poll(() => page.textContent('#recovery-status')).toBe('No recovery codes yet.');
      await page.click('#recovery-generate');
      await expect.poll(() => page.locator('#recovery-codes li').count()).toBe(10);
      const codes = await page.locator('#recovery-codes li code').allTextContents();
      for (const c of codes) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
      await expect.poll(() => page.textContent('#recovery-status')).toBe('Unused codes: 10 / 10');
      await saveScreenshot(page, 'recovery-codes-generated');
      // Shown once: a reload shows the count, never the codes.
      await page.reload();
      await expect.poll(() => page.textContent('#recovery-status')).toBe('Unused codes: 10 / 10');
      expect(await page.content()).not.toContain(codes[0]!);

      // The phone is lost, and with it the only passkey; the browser session is gone too.
      await user.authenticator.remove();
      await user.context.clearCookies();

      await page.goto(`${kanmon.url}/`);
      expect(pathOf(page)).toBe('/.kanmon/login?return=%2F');
      await page.click('#recovery-login-link');
      await page.waitForURL(`${kanmon.url}/.kanmon/login/recovery`);
      await page.fill('#username', 'hanako');
      await page.fill('#code', codes[3]!.toUpperCase());
      await page.click('#code-login');
      await page.waitForURL(`${kanmon.url}/.kanmon/account?step=add-passkey`);
      expect(await page.locator('#add-passkey-step').isVisible()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('new-passkey-name');
      await expect.poll(() => page.textContent('#recovery-status')).toBe('Unused codes: 9 / 10');
      await saveScreenshot(page, 'recovery-add-passkey');

      const [event] = await kanmon.app.store.audit.list({ limit: 1, userId: (await kanmon.app.services.users.require('hanako')).id });
      expect(event).toMatchObject({ type: 'login', result: 'success', method: 'recovery' });
      expect(notifications.filter((n) => n.event === 'login.recovery').map((n) => n.details?.username)).toEqual(['hanako']);

      // A recovery session is not a passkey: the application asks for more.
      const stepUp = await page.request.get(`${kanmon.url}/headers`, { headers: { accept: 'text/html' } });
      expect(stepUp.status()).toBe(403);

      // The new phone registers a passkey from this page.
      const newPhone = await VirtualAuthenticator.add(user.authenticator.cdp, { synced: true });
      await page.fill('#new-passkey-name', 'New phone');
      await page.click('#add-passkey');
      await page.waitForURL(`${kanmon.url}/.kanmon/account`);
      await expect.poll(() => page.textContent('#status')).toBe('The passkey was added.');
      expect(await page.locator('#passkeys .passkey-name').allTextContents()).toEqual(['Old phone', 'New phone']);
      expect(await newPhone.credentials()).toHaveLength(1);

      // The old codes stay single-use: the one just used is refused.
      await user.context.clearCookies();
      await page.goto(`${kanmon.url}/.kanmon/login/recovery`);
      await page.fill('#username', 'hanako');
      await page.fill('#code', codes[3]!);
      await page.click('#code-login');
      await expect.poll(() => page.getAttribute('#status', 'class')).toBe('status error');

      // And the new passkey signs in to the application.
      await page.goto(`${kanmon.url}/headers`);
      await page.click('#passkey-login');
      await page.waitForURL(`${kanmon.url}/headers`);
      const headers = await backendHeaders(page, kanmon);
      expect(headers['x-kanmon-user']).toBe('hanako');
      // The new passkey is a synced one (RFC 8176 'swk').
      expect(headers['x-kanmon-auth']).toBe('passkey,swk');
    } finally {
      await user.context.close();
    }
  });
});
