/**
 * More than one passkey, and passkey autofill: a second device added on the account page
 * signs in on its own, and the login page offers the passkey in the username field
 * (conditional mediation) without a click.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, newContext, toBase64url, VirtualAuthenticator } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { enrollUser, pathOf, withoutPasskeyAutofill } from './journeys.js';

function passkeyRow(page: Page, credentialId: string) {
  return page.locator(`#passkeys tr[data-credential-id="${credentialId}"]`);
}

describe('passkeys', () => {
  let kanmon: TestKanmon;
  let browser: Browser;

  beforeAll(async () => {
    kanmon = await startTestKanmon('passkeys');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('adds a second passkey on the account page and signs in with it alone', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'saburo', passkeyName: 'Phone', authenticator: { synced: true } });
    try {
      const [phoneCredential] = await user.authenticator.credentials();
      const phoneId = toBase64url(phoneCredential!.credentialId);
      await user.page.goto(`${kanmon.url}/.kanmon/account`);
      await expect.poll(() => passkeyRow(user.page, phoneId).locator('.passkey-kind').textContent()).toBe('Synced passkey');

      // The phone goes away and a security key is plugged in. The phone must not answer: it
      // holds a credential the registration options exclude, so it would refuse the ceremony.
      await user.authenticator.remove();
      const securityKey = await VirtualAuthenticator.add(user.authenticator.cdp, { transport: 'usb', synced: false });
      await user.page.fill('#new-passkey-name', 'Security key');
      await user.page.click('#add-passkey');
      await expect.poll(() => user.page.textContent('#status')).toBe('The passkey was added.');

      const [keyCredential] = await securityKey.credentials();
      expect(keyCredential).toBeDefined();
      const keyId = toBase64url(keyCredential!.credentialId);
      expect(keyId).not.toBe(phoneId);
      expect(await user.page.locator('#passkeys tbody tr').count()).toBe(2);
      expect(await passkeyRow(user.page, keyId).locator('.passkey-name').textContent()).toBe('Security key');
      expect(await passkeyRow(user.page, keyId).locator('.passkey-kind').textContent()).toBe('Device-bound');
      // Not used to sign in yet: its "last used" cell has no time.
      expect(await passkeyRow(user.page, keyId).locator('td').nth(2).locator('time').count()).toBe(0);

      // Signed out (the session cookie gone), only the security key is present.
      await withoutPasskeyAutofill(user.page);
      await user.context.clearCookies();
      await user.page.goto(`${kanmon.url}/.kanmon/account`);
      expect(pathOf(user.page)).toBe(`/.kanmon/login?return=${encodeURIComponent('/.kanmon/account')}`);
      const countBefore = keyCredential!.signCount;
      await user.page.click('#passkey-login');
      await user.page.waitForURL(`${kanmon.url}/.kanmon/account`);

      expect(await user.page.textContent('#account-username')).toBe('saburo');
      // The security key signed this login, and Kanmon recorded it against that passkey.
      const [afterLogin] = await securityKey.credentials();
      expect(afterLogin!.signCount).toBeGreaterThan(countBefore);
      expect(await passkeyRow(user.page, keyId).locator('td').nth(2).locator('time').count()).toBe(1);
    } finally {
      await user.context.close();
    }
  });

  it('offers the passkey in the username field (conditional mediation) and signs in from autofill without a click', async () => {
    // Enrolled on one device; the synced passkey then turns up on another (a new context).
    const enrolled = await enrollUser(kanmon, browser, { username: 'shiro', passkeyName: 'Phone', authenticator: { synced: true } });
    const [credential] = await enrolled.authenticator.credentials();
    await enrolled.context.close();

    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      const authenticator = await VirtualAuthenticator.attach(page, { synced: true });
      await authenticator.addCredential(credential!);

      // Record how the page asks for credentials: conditional (autofill) or modal.
      const mediations: string[] = [];
      await page.exposeFunction('kanmonTestSawCredentialsGet', (mediation: string) => {
        mediations.push(mediation);
      });
      await page.addInitScript(() => {
        const get = navigator.credentials.get.bind(navigator.credentials);
        navigator.credentials.get = (options?: CredentialRequestOptions) => {
          (window as unknown as { kanmonTestSawCredentialsGet(m: string): void }).kanmonTestSawCredentialsGet(options?.mediation ?? 'optional');
          return get(options);
        };
      });
      const visited: string[] = [];
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) visited.push(pathOf(page));
      });
      const loginOptionsCalls: string[] = [];
      page.on('request', (request) => {
        if (new URL(request.url()).pathname === '/.kanmon/api/login/options') loginOptionsCalls.push(request.method());
      });
      const loginPageLoaded = page.waitForResponse((r) => new URL(r.url()).pathname === '/.kanmon/login');

      await page.goto(`${kanmon.url}/headers?via=autofill`);
      const loginHtml = await (await loginPageLoaded).text();
      // The username field is marked for passkey autofill.
      expect(loginHtml).toMatch(/<input id="username"[^>]*autocomplete="username webauthn"/);

      // Nothing is clicked: the conditional request started on load completes (the virtual
      // authenticator picks the passkey as a user would in the autofill list).
      await page.waitForURL(`${kanmon.url}/headers?via=autofill`);
      expect(visited).toContain(`/.kanmon/login?return=${encodeURIComponent('/headers?via=autofill')}`);
      expect(loginOptionsCalls).toEqual(['POST']);
      expect(mediations).toEqual(['conditional']);
      const body = JSON.parse((await page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
      expect(body.headers['x-kanmon-user']).toBe('shiro');
    } finally {
      await context.close();
    }
  });
});
