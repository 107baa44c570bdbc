/**
 * Authenticator apps in Chromium: set up from the account page (the test plays the phone app,
 * computing codes with otplib from the secret the page shows), sign in with a code, and step
 * up from that TOTP session to a passkey-only route.
 *
 * Routes: the groupware at / takes a passkey or an authenticator app code; /form takes a
 * passkey only.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, saveScreenshot } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { appCode } from '../support/totp-app.js';
import { backendHeaders, enrollUser, pathOf, withoutPasskeyAutofill } from './journeys.js';

const ROUTES = [
  { id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } },
  { id: 'finance', match: { pathPrefix: '/form' }, upstream: 'demo', policy: { factors: [['passkey']] } },
] as const;

/**
 * Sets up the authenticator app from the account page as a user does: the button, the QR
 * page, the code. Returns the secret read from the page's text, after checking the QR code's
 * otpauth URI carries the same one.
 */
async function setUpAuthenticatorApp(page: Page, kanmon: TestKanmon, username: string): Promise<string> {
  await page.goto(`${kanmon.url}/.kanmon/account`);
  await expect.poll(() => page.textContent('#totp-status')).toBe('Not set up');
  await page.click('#totp-enroll');
  await page.waitForURL(`${kanmon.url}/.kanmon/account/totp`);
  expect(await page.locator('#totp-qr svg').isVisible()).toBe(true);
  const box = await page.locator('#totp-qr svg').boundingBox();
  expect(box!.width).toBeGreaterThanOrEqual(200); // large enough for a phone camera
  expect(await page.textContent('#totp-label')).toBe(`Kanmon:${username}`);
  const shown = (await page.textContent('#totp-secret'))!;
  expect(shown).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
  const secret = shown.replace(/ /g, '');
  const uri = new URL((await page.getAttribute('#totp-uri', 'href'))!);
  expect(uri.searchParams.get('secret')).toBe(secret);
  expect(uri.searchParams.get('issuer')).toBe('Kanmon');
  await saveScreenshot(page, 'totp-setup');

  // A wrong code first: refused, and the field is cleared for another try.
  await page.fill('#totp-code', await appCode(secret, 5));
  await page.click('#totp-confirm');
  await expect.poll(() => page.getAttribute('#status', 'class')).toBe('status error');
  expect(await page.inputValue('#totp-code')).toBe('');

  await page.fill('#totp-code', await appCode(secret));
  await page.click('#totp-confirm');
  await page.waitForURL(`${kanmon.url}/.kanmon/account`);
  await expect.poll(() => page.textContent('#status')).toBe('Your authenticator app is set up.');
  await expect.poll(() => page.textContent('#totp-status')).toBe('Set up');
  expect(await page.locator('#totp-reset').isVisible()).toBe(true);
  return secret;
}

async function signOut(page: Page, kanmon: TestKanmon): Promise<void> {
  await page.goto(`${kanmon.url}/.kanmon/account`);
  await page.click('#sign-out');
  await page.waitForURL(`${kanmon.url}/.kanmon/signed-out`);
}

/** From a protected page, through the login page's link, with a code from the app. */
async function signInWithCode(page: Page, kanmon: TestKanmon, path: string, username: string, code: string): Promise<void> {
  await page.goto(`${kanmon.url}${path}`);
  expect(pathOf(page)).toBe(`/.kanmon/login?return=${encodeURIComponent(path)}`);
  await page.click('#totp-login-link');
  await page.waitForURL(`${kanmon.url}/.kanmon/login/totp?return=${encodeURIComponent(path)}`);
  await page.fill('#username', username);
  await page.fill('#code', code);
  await page.click('#code-login');
  await page.waitForURL(`${kanmon.url}${path}`);
}

describe('authenticator app (TOTP)', () => {
  let kanmon: TestKanmon;
  let browser: Browser;

  beforeAll(async () => {
    kanmon = await startTestKanmon('totp', { routes: ROUTES.map((r) => ({ ...r, policy: { factors: r.policy.factors.map((a) => [...a]) } })) });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('sets up the app from the account page, then signs in with a code alone', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'taro' });
    try {
      await withoutPasskeyAutofill(user.page);
      const secret = await setUpAuthenticatorApp(user.page, kanmon, 'taro');
      await signOut(user.page, kanmon);

      // A wrong code is refused with the generic message, and the page stays.
      await user.page.goto(`${kanmon.url}/.kanmon/login/totp?return=%2Fheaders`);
      await user.page.fill('#username', 'taro');
      await user.page.fill('#code', '000000');
      await user.page.click('#code-login');
      await expect.poll(() => user.page.textContent('#status')).toBe('The username or code is not correct, or the code was already used. Please try again.');

      // The confirming code's step is used up; the app's next code signs in (one step ahead is within the tolerance).
      await signInWithCode(user.page, kanmon, '/headers', 'taro', await appCode(secret, 1));
      const headers = await backendHeaders(user.page, kanmon);
      expect(headers['x-kanmon-user']).toBe('taro');
      expect(headers['x-kanmon-auth']).toBe('otp');
      await saveScreenshot(user.page, 'totp-signed-in');
    } finally {
      await user.context.close();
    }
  });

  it('steps up from a TOTP session to a passkey-only route with the passkey', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'jiro' });
    try {
      await withoutPasskeyAutofill(user.page);
      const secret = await setUpAuthenticatorApp(user.page, kanmon, 'jiro');
      await signOut(user.page, kanmon);
      await signInWithCode(user.page, kanmon, '/headers', 'jiro', await appCode(secret, 1));

      // The finance route needs a passkey: the session is kept and the user is asked for more.
      const refused = await user.page.goto(`${kanmon.url}/form`);
      expect(refused?.status()).toBe(403);
      expect(await user.page.textContent('h1')).toBe('Additional verification needed');
      expect(await user.page.textContent('main li')).toBe('a passkey');
      await saveScreenshot(user.page, 'totp-step-up');
      await user.page.click('#step-up-sign-in');
      await user.page.waitForURL(`${kanmon.url}/.kanmon/login?return=%2Fform`);
      await user.page.click('#passkey-login');
      await user.page.waitForURL(`${kanmon.url}/form`);
      expect(await user.page.locator('form').count()).toBeGreaterThan(0);

      const headers = await backendHeaders(user.page, kanmon);
      expect(headers['x-kanmon-user']).toBe('jiro');
      expect(headers['x-kanmon-auth']).toContain('passkey');
    } finally {
      await user.context.close();
    }
  });
});
