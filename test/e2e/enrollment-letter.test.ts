/**
 * An enrollment letter, end to end: the administrator writes letters with the CLI command
 * (`kanmon enroll-letter … --code`), the letter file opens in the browser as printed, its link
 * leads to the enrollment page, and the code from the administrator's terminal (the second
 * channel) lets the user enroll a passkey.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, newContext, saveScreenshot, VirtualAuthenticator } from '../support/browser.js';
import { runCliInProcess } from '../support/cli.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { backendHeaders } from './journeys.js';

describe('enrollment letters', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    kanmon = await startTestKanmon('letter');
    browser = await launchBrowser();
    dir = mkdtempSync(join(tmpdir(), 'kanmon-e2e-letters-'));
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is printed by the CLI, opened, and used with the code from the second channel', async () => {
    await kanmon.app.services.users.addUser({ username: 'sachiko', displayName: '佐藤 幸子', actor: 'e2e' });
    const { code: exit, lines: stdout } = await runCliInProcess(kanmon.app.services, kanmon.app.config, ['enroll-letter', 'sachiko', '--out', dir, '--expires', '7d', '--code']);
    expect(exit).toBe(0);
    const codeLine = stdout.find((l) => l.trim().startsWith('sachiko '))!;
    const code = codeLine.trim().split(/\s+/).slice(1).join('');
    expect(code).toMatch(/^[0-9]{8}$/);
    const file = join(dir, 'sachiko.html');
    expect(readFileSync(file, 'utf8')).not.toContain(code);

    const context = await newContext(browser, { locale: 'ja-JP' });
    try {
      const page = await context.newPage();
      // Anything the letter tried to load would show up here; it loads nothing.
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(file).href);
      expect(requests).toEqual([pathToFileURL(file).href]);
      expect(await page.textContent('#letter-user')).toBe('佐藤 幸子 (sachiko)');
      expect(await page.isVisible('svg.qr')).toBe(true);
      const qr = await page.locator('svg.qr').boundingBox();
      expect(qr!.width).toBeGreaterThan(100); // 45 mm: large enough for a phone camera
      expect(await page.textContent('#letter-code-note')).toContain('8 桁のワンタイムコード');
      await page.emulateMedia({ media: 'print' });
      await saveScreenshot(page, 'enrollment-letter');
      await page.emulateMedia({ media: 'screen' });
      const link = (await page.textContent('#letter-link'))!.trim();
      expect(link.startsWith(`${kanmon.url}/.kanmon/enroll?token=`)).toBe(true);

      // The user opens the link (as the QR code would) and types the code they were told.
      await VirtualAuthenticator.attach(page, { synced: true });
      await page.goto(link);
      expect(await page.textContent('#enroll-username')).toBe('sachiko');
      await page.fill('#enroll-code', `${code.slice(0, 4)} ${code.slice(4)}`);
      await page.click('#create-passkey');
      await page.waitForURL(`${kanmon.url}/`);
      expect((await backendHeaders(page, kanmon))['x-kanmon-user']).toBe('sachiko');

      // One use: the letter's link is spent.
      const again = await page.goto(link);
      expect(again?.status()).toBe(410);
    } finally {
      await context.close();
    }
  });

  it('asks again after a wrong code, without creating anything', async () => {
    await kanmon.app.services.users.addUser({ username: 'goro', actor: 'e2e' });
    const { lines: stdout } = await runCliInProcess(kanmon.app.services, kanmon.app.config, ['enroll-letter', 'goro', '--out', dir, '--code']);
    const code = stdout.find((l) => l.trim().startsWith('goro '))!.trim().split(/\s+/).slice(1).join('');
    const link = /<p class="link" id="letter-link">([^<]+)<\/p>/.exec(readFileSync(join(dir, 'goro.html'), 'utf8'))![1]!;
    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      const authenticator = await VirtualAuthenticator.attach(page, { synced: true });
      await page.goto(link);
      await page.fill('#enroll-code', code === '00000000' ? '11111111' : '00000000');
      await page.click('#create-passkey');
      await expect.poll(() => page.textContent('#status')).toBe('That code is not correct. Check it and try again.');
      expect(await authenticator.credentials()).toEqual([]);
      await page.fill('#enroll-code', code);
      await page.click('#create-passkey');
      await page.waitForURL(`${kanmon.url}/`);
    } finally {
      await context.close();
    }
  });
});
