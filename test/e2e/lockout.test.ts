/**
 * Login protection in Chromium: a user's authenticator-app sign-in is locked after N wrong
 * codes (after which the right code is refused too, with the same message), the
 * administrator runs the real `kanmon user unlock` in its own process next to the running
 * node, and the right code then signs in.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '../../runtime/notify/notifier.js';
import { CLI_CONTEXT } from '../../runtime/services/request-context.js';
import { launchBrowser, saveScreenshot } from '../support/browser.js';
import { runCli, startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { recordNotifications } from '../support/notifications.js';
import { appCode, wrongCode } from '../support/totp-app.js';
import { backendHeaders, enrollUser, withoutPasskeyAutofill } from './journeys.js';

const MAX_PER_USER = 3;
const GENERIC_FAILURE = 'The username or code is not correct, or the code was already used. Please try again.';

/** Types a code into the code sign-in form and waits for the refusal on the page. */
async function refusedCode(page: Page, code: string): Promise<void> {
  await page.fill('#code', code);
  await page.click('#code-login');
  await expect.poll(() => page.getAttribute('#status', 'class')).toBe('status error');
  expect(await page.textContent('#status')).toBe(GENERIC_FAILURE);
  // The form clears the code and stays for another try.
  expect(await page.inputValue('#code')).toBe('');
  expect(new URL(page.url()).pathname).toBe('/.kanmon/login/totp');
}

describe('lockout', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  let notifications: Notification[];

  beforeAll(async () => {
    kanmon = await startTestKanmon('lockout', {
      routes: [{ id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } }],
      loginProtection: { maxFailuresPerUser: MAX_PER_USER, delayStepMs: 50 },
    });
    notifications = recordNotifications(kanmon.app);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('locks the authenticator-app sign-in after N wrong codes; after `kanmon user unlock` the right code signs in', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'saburo' });
    const { page } = user;
    try {
      await withoutPasskeyAutofill(page);
      // The user's authenticator app, set up through the service the account page calls
      // (the page flow itself is covered by the TOTP journey); the test plays the phone.
      const account = await kanmon.app.services.users.require('saburo');
      await kanmon.app.services.totp.beginEnrollment(account, CLI_CONTEXT);
      const secret = (await kanmon.app.services.totp.pendingEnrollment(account))!.secretText.replace(/ /g, '');
      await kanmon.app.services.totp.confirmEnrollment(account, await appCode(secret), CLI_CONTEXT);
      await user.context.clearCookies();

      await page.goto(`${kanmon.url}/.kanmon/login/totp?return=%2Fheaders`);
      expect(await page.textContent('#lockout-hint')).toContain('sign-in is paused for a while after several wrong codes');
      await page.fill('#username', 'saburo');
      const wrong = await wrongCode(secret);
      for (let i = 0; i < MAX_PER_USER; i++) await refusedCode(page, wrong);

      // Locked: the right code gets the very same answer.
      const right = await appCode(secret, 1);
      await refusedCode(page, right);
      await saveScreenshot(page, 'lockout-refused');
      expect(notifications.filter((n) => n.event === 'login.lockout')).toHaveLength(1);

      // The administrator, in a shell next to the running node.
      const listed = await runCli(kanmon.dataDir, ['user', 'list']);
      expect(listed.code).toBe(0);
      expect(listed.stdout.split('\n').find((l) => l.startsWith('saburo '))).toMatch(/ LOCKED until /);
      const unlocked = await runCli(kanmon.dataDir, ['user', 'unlock', 'saburo']);
      expect(unlocked.stderr).toBe('');
      expect(unlocked.code).toBe(0);
      expect(unlocked.stdout).toBe('unlocked saburo; their failed attempts are forgotten on every node\n');

      // The code refused while locked was never checked, so it is still good.
      await page.fill('#code', right);
      await page.click('#code-login');
      await page.waitForURL(`${kanmon.url}/headers`);
      const headers = await backendHeaders(page, kanmon);
      expect(headers['x-kanmon-user']).toBe('saburo');
      expect(headers['x-kanmon-auth']).toBe('otp');

      const trail = (await kanmon.app.store.audit.list({ userId: account.id, limit: 50 })).map((e) => `${e.type}:${e.result}:${e.reason ?? ''}`);
      expect(trail.slice(0, 3)).toEqual(['login:success:', 'user.unlock:success:', 'login:failure:locked']);
      expect(trail.filter((t) => t.startsWith('login.lockout:'))).toEqual(['login.lockout:failure:user-locked']);
    } finally {
      await user.context.close();
    }
  });
});
