/**
 * The container runs the esbuild bundle, not the TypeScript sources: build it, start it on
 * SQLite, enroll in Chromium, reach the backend, and stop it with SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, newContext, VirtualAuthenticator } from '../support/browser.js';
import { makeDataDir, REPO_ROOT, startKanmonChild, type KanmonChild } from '../support/kanmon-process.js';

describe('the bundle (npm run build)', () => {
  let dataDir: string;
  let kanmon: KanmonChild;
  let browser: Browser;

  beforeAll(async () => {
    execFileSync(process.execPath, ['runtime/build.mjs'], { cwd: REPO_ROOT, stdio: 'pipe' });
    dataDir = makeDataDir('bundle');
    kanmon = await startKanmonChild(dataDir, { bundle: true });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await kanmon?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts on SQLite, enrolls the first administrator in Chromium and reaches the backend', async () => {
    const origin = `https://localhost:${kanmon.port}`;
    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      await page.goto(kanmon.enrollmentUrl);
      await page.click('#create-passkey');
      await page.waitForURL(`${origin}/`);
      await page.goto(`${origin}/headers`);
      const body = JSON.parse((await page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
      expect(body.headers['x-kanmon-user']).toBe('admin');
      // RFC 8176 'swk': a synced passkey.
      expect(body.headers['x-kanmon-auth']).toBe('passkey,swk');
    } finally {
      await context.close();
    }
  });

  it('drains and exits cleanly on SIGTERM', async () => {
    const exit = new Promise<number | null>((resolve) => kanmon.child.once('exit', (code) => resolve(code)));
    process.kill(kanmon.child.pid!, 'SIGTERM');
    expect(await exit).toBe(0);
    expect(kanmon.output()).toContain('draining');
  });
});
