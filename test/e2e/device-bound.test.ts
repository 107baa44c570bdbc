/**
 * Device-bound passkeys in Chromium, with the CDP virtual authenticator setting the backup
 * flags (defaultBackupEligibility / defaultBackupState): a route that demands a device-bound
 * passkey refuses a synced one, says why, and accepts a security key; and a security key
 * (transport "usb") registered from the enrollment page's "security key" choice.
 *
 * Routes: the groupware at / takes any passkey; /form is the "finance" route and needs a
 * device-bound one.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, newContext, saveScreenshot, toBase64url, VirtualAuthenticator } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { backendHeaders, pathOf, withoutPasskeyAutofill } from './journeys.js';

describe('device-bound passkeys', () => {
  let kanmon: TestKanmon;
  let browser: Browser;

  beforeAll(async () => {
    kanmon = await startTestKanmon('device-bound', {
      routes: [
        { id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo' },
        { id: 'finance', match: { pathPrefix: '/form' }, upstream: 'demo', policy: { deviceBound: true } },
      ],
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('refuses a synced passkey on a device-bound route, says why, and accepts a security key', async () => {
    await kanmon.app.services.users.addUser({ username: 'kenji', actor: 'e2e' });
    const link = await kanmon.app.services.enrollment.createLink('kenji', { actor: 'e2e' });
    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      await withoutPasskeyAutofill(page);
      // A phone's synced passkey: backup eligible and backed up.
      const phone = await VirtualAuthenticator.attach(page, { transport: 'internal', synced: true });
      await page.goto(link.url);
      // The finance route needs a security key, so the page starts there; kenji picks the phone anyway.
      expect(await page.isChecked('#choice-security-key')).toBe(true);
      expect(await page.textContent('#enroll-policy-note')).toContain('accept only a passkey that stays on one device');
      await page.check('#choice-platform');
      await page.fill('#passkey-name', 'Phone');
      await page.click('#create-passkey');
      await page.waitForURL(`${kanmon.url}/`);
      const [synced] = await phone.credentials();
      expect(synced!.backupEligibility).toBe(true);
      expect((await backendHeaders(page, kanmon))['x-kanmon-auth']).toBe('passkey,swk');

      // The finance route: a step-up that says why and what would do.
      const refused = await page.goto(`${kanmon.url}/form`);
      expect(refused?.status()).toBe(403);
      expect(await page.getAttribute('#step-up-reason', 'data-reason')).toBe('passkey-not-device-bound');
      expect(await page.textContent('#step-up-reason')).toContain('synced between your devices');
      expect(await page.textContent('#step-up-reason')).toContain('a security key, such as a YubiKey');
      await saveScreenshot(page, 'device-bound-step-up');

      // The account page says the same about the phone passkey, and adds the next one on a security key.
      await page.click('#step-up-reason a');
      await page.waitForURL(`${kanmon.url}/.kanmon/account`);
      expect(await page.isVisible('#passkey-policy-notice')).toBe(true);
      expect(await page.textContent('#passkey-policy')).toContain('Phone: synced, not a security key (not accepted by finance)');
      await phone.remove();
      const key = await VirtualAuthenticator.add(phone.cdp, { transport: 'usb', synced: false });
      await page.fill('#new-passkey-name', 'YubiKey');
      await page.click('#add-passkey');
      await expect.poll(() => page.textContent('#status')).toBe('The passkey was added.');
      const [deviceBound] = await key.credentials();
      expect(deviceBound!.backupEligibility ?? false).toBe(false);
      const keyRow = page.locator(`#passkeys tr[data-credential-id="${toBase64url(deviceBound!.credentialId)}"]`);
      expect(await keyRow.locator('.passkey-kind').textContent()).toBe('Device-bound');

      // Signing in again from the step-up page, the security key answers and the route opens.
      await page.goto(`${kanmon.url}/form`);
      await page.click('#step-up-sign-in');
      await page.waitForURL(`${kanmon.url}/.kanmon/login?return=%2Fform`);
      await page.click('#passkey-login');
      await page.waitForURL(`${kanmon.url}/form`);
      expect(pathOf(page)).toBe('/form');
      expect(await page.locator('form').count()).toBeGreaterThan(0);
      const headers = await backendHeaders(page, kanmon);
      expect(headers['x-kanmon-user']).toBe('kenji');
      expect(headers['x-kanmon-auth']).toBe('passkey,hwk');
    } finally {
      await context.close();
    }
  });

  it('registers a security key (usb) from the enrollment page\'s "security key" choice', async () => {
    const user = await kanmon.app.services.users.addUser({ username: 'misaki', actor: 'e2e' });
    const link = await kanmon.app.services.enrollment.createLink('misaki', { actor: 'e2e' });
    const context = await newContext(browser, { locale: 'ja-JP' });
    try {
      const page = await context.newPage();
      const key = await VirtualAuthenticator.attach(page, { transport: 'usb', synced: false });
      await page.goto(link.url);
      // Offered in this order: this device, a phone, a security key.
      const order = await page.$$eval('input[name="authenticator"]', (inputs) => inputs.map((i) => (i as HTMLInputElement).value));
      expect(order).toEqual(['platform', 'phone', 'security-key']);
      expect(await page.textContent('label[for="choice-security-key"]')).toBe('セキュリティキー');
      await page.check('#choice-security-key');
      await page.fill('#passkey-name', 'YubiKey');
      await saveScreenshot(page, 'enroll-security-key');
      await page.click('#create-passkey');
      await page.waitForURL(`${kanmon.url}/`);

      const [credential] = await key.credentials();
      expect(credential).toBeDefined();
      const stored = await kanmon.app.store.credentials.get(toBase64url(credential!.credentialId));
      expect(stored).toMatchObject({ userId: user.id, name: 'YubiKey', deviceType: 'singleDevice', backedUp: false });
      expect(stored!.transports).toContain('usb');
      // Straight into the device-bound route: the enrollment session carries the key's evidence.
      const res = await page.goto(`${kanmon.url}/form`);
      expect(res?.status()).toBe(200);
    } finally {
      await context.close();
    }
  });
});
