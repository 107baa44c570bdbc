/**
 * Company devices only, in Chromium: a route that needs a passkey and a client certificate
 * from Kanmon's CA. The browser presents the certificate through playwright-core's
 * `clientCertificates` context option (a PKCS#12 file and its password, for the exact origin),
 * which answers the listener's CertificateRequest as an installed certificate would.
 *
 * Routes: the groupware at / takes any passkey; /headers is the "payroll" route and needs passkey+mtls.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, saveScreenshot, VirtualAuthenticator } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { enrollUser } from './journeys.js';

describe('company devices only', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    kanmon = await startTestKanmon('company-device', {
      routes: [
        { id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo' },
        { id: 'payroll', match: { pathPrefix: '/headers' }, upstream: 'demo', policy: { factors: [['passkey', 'mtls']] } },
      ],
    });
    browser = await launchBrowser();
    dir = mkdtempSync(join(tmpdir(), 'kanmon-e2e-cert-'));
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a passkey+mtls route opens for the user whose browser holds their certificate', async () => {
    const user = await kanmon.app.services.users.addUser({ username: 'sachiko', actor: 'e2e' });
    const issued = await kanmon.app.services.clientCertificates.issueForUser(user, { deviceLabel: 'company laptop' });
    const file = await kanmon.app.services.clientCertificates.download(issued.certificate.serial);
    const pfxPath = join(dir, 'sachiko.p12');
    writeFileSync(pfxPath, file.pkcs12, { mode: 0o600 });

    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      locale: 'en-US',
      viewport: { width: 1000, height: 760 },
      clientCertificates: [{ origin: kanmon.url, pfxPath, passphrase: issued.password }],
    });
    try {
      const page = await context.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      const link = await kanmon.app.services.enrollment.createLink('sachiko', { actor: 'e2e' });
      await page.goto(link.url);
      await expect.poll(() => page.textContent('#enroll-username')).toBe('sachiko');
      await page.fill('#passkey-name', 'Laptop');
      await page.click('#create-passkey');
      await page.waitForURL(`${kanmon.url}/`);

      const response = await page.goto(`${kanmon.url}/headers`);
      expect(response?.status()).toBe(200);
      const { headers } = (await response!.json()) as { headers: Record<string, string> };
      expect(headers['x-kanmon-user']).toBe('sachiko');
      expect(headers['x-kanmon-auth']?.split(',')).toContain('mtls');
    } finally {
      await context.close();
    }
  });

  it('without a certificate the user sees a clear page saying what is needed and how to get it, in Japanese and English', async () => {
    const taro = await enrollUser(kanmon, browser, { username: 'taro', locale: 'ja-JP' });
    try {
      const refused = await taro.page.goto(`${kanmon.url}/headers`);
      expect(refused?.status()).toBe(403);
      expect(await taro.page.getAttribute('#certificate-required', 'data-reason')).toBe('no-certificate');
      expect(await taro.page.textContent('h1')).toBe('会社の端末証明書が必要です');
      expect(await taro.page.textContent('main')).toContain('管理者に依頼');
      await saveScreenshot(taro.page, 'company-device-certificate-required-ja');
      await taro.page.click('#lang-switch');
      expect(await taro.page.textContent('h1')).toBe('A company device certificate is needed');
      expect(await taro.page.textContent('main')).toContain('Ask your administrator for a device certificate');
      await saveScreenshot(taro.page, 'company-device-certificate-required');
      // The rest of the groupware stays open to a passkey alone.
      expect((await taro.page.goto(`${kanmon.url}/`))?.status()).toBe(200);
    } finally {
      await taro.context.close();
    }
  });
});
