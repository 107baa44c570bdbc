/**
 * A user's real first steps: `npm start` (here its command, tsx runtime/main.ts, with the
 * repository's kanmon.config.json), the printed first-administrator link, and a passkey.
 */
import { readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:tls';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, newContext, VirtualAuthenticator } from '../support/browser.js';
import { makeDataDir, startKanmonChild, type KanmonChild } from '../support/kanmon-process.js';
import { pathOf } from './journeys.js';

describe('first administrator, from npm start', () => {
  let dataDir: string;
  let kanmon: KanmonChild;
  let browser: Browser;
  let origin: string;

  beforeAll(async () => {
    dataDir = makeDataDir('first-admin');
    kanmon = await startKanmonChild(dataDir);
    origin = `https://localhost:${kanmon.port}`;
    browser = await launchBrowser();
  });

  afterAll(async () => {
    // The browser first: open keep-alive connections would otherwise hold the server's close.
    await browser?.close();
    await kanmon?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints a one-time enrollment link on the public origin', () => {
    expect(kanmon.enrollmentUrl).toMatch(new RegExp(`^${origin.replace(/[.]/g, '\\.')}/\\.kanmon/enroll\\?token=[A-Za-z0-9_-]{43}$`));
  });

  it('serves a certificate from its development CA that is valid for localhost', async () => {
    // The start-up log names the CA file an administrator is told to trust.
    const logged = kanmon
      .output()
      .split('\n')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as { caCertificate?: string }];
        } catch {
          return [];
        }
      })
      .find((entry) => entry.caCertificate);
    expect(logged?.caCertificate).toBeTruthy();
    const ca = readFileSync(logged!.caCertificate!, 'utf8');
    // Full verification (chain and host name), as a browser that trusts the CA would do it.
    const { authorized, error } = await new Promise<{ authorized: boolean; error?: string }>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: kanmon.port, servername: 'localhost', ca, rejectUnauthorized: false }, () => {
        resolve({ authorized: socket.authorized, ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}) });
        socket.end();
      });
      socket.once('error', reject);
    });
    expect(error).toBeUndefined();
    expect(authorized).toBe(true);
  });

  it('enrolls the first administrator from the printed link and lands signed in on the backend', async () => {
    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      const authenticator = await VirtualAuthenticator.attach(page, { synced: true });
      await page.goto(kanmon.enrollmentUrl);
      expect(pathOf(page)).toMatch(/^\/\.kanmon\/enroll\?token=/);
      // The bootstrap page lets the first administrator choose a username.
      await expect.poll(() => page.inputValue('#username')).toBe('admin');
      await page.fill('#username', 'kanri');
      await page.fill('#display-name', '管理 太郎');
      await page.fill('#passkey-name', 'Admin laptop');
      await page.click('#create-passkey');

      await page.waitForURL(`${origin}/`);
      // The demo backend greets whoever Kanmon says is signed in.
      await expect.poll(() => page.textContent('.greeting')).toContain('kanri');
      expect(await authenticator.credentials()).toHaveLength(1);

      await page.goto(`${origin}/.kanmon/account`);
      expect(pathOf(page)).toBe('/.kanmon/account');
      expect(await page.textContent('#account-username')).toBe('kanri');
      expect(await page.textContent('#account-display-name')).toBe('管理 太郎');
      expect(await page.locator('#passkeys .passkey-name').allTextContents()).toEqual(['Admin laptop']);

      // One use only: the same link now explains itself instead of enrolling anyone else.
      const again = await page.goto(kanmon.enrollmentUrl);
      expect(again?.status()).toBe(410);
      expect(await page.textContent('main')).toContain('already been used');
    } finally {
      await context.close();
    }
  });
});
