/**
 * Traffic that is more than a page load, through the proxy in a real browser: a WebSocket
 * relayed to the backend's echo, and a 10 MiB download streamed intact.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOWNLOAD_BYTES, downloadSha256 } from '../../runtime/demo/index.js';
import { launchBrowser, newContext } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { enrollUser, pathOf } from './journeys.js';

describe('streams through the proxy', () => {
  let kanmon: TestKanmon;
  let browser: Browser;

  beforeAll(async () => {
    kanmon = await startTestKanmon('streams');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('relays the WebSocket echo of the demo backend', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'ws-user' });
    try {
      // The demo's own page: it opens wss://<origin>/ws and lists what comes back.
      await user.page.goto(`${kanmon.url}/ws-test`);
      expect(pathOf(user.page)).toBe('/ws-test');
      await expect.poll(() => user.page.textContent('#status')).toBe('open');
      await user.page.fill('#message', 'こんにちは、関門 (1)');
      await user.page.click('#send button[type="submit"]');
      await user.page.fill('#message', 'second message');
      await user.page.click('#send button[type="submit"]');
      await expect
        .poll(() => user.page.locator('#log li').allTextContents())
        .toEqual(['sent: こんにちは、関門 (1)', 'echo: こんにちは、関門 (1)', 'sent: second message', 'echo: second message']);

      // Binary frames too, from a socket the test opens itself.
      const echoed = await user.page.evaluate(
        (url) =>
          new Promise<number[]>((resolve, reject) => {
            const socket = new WebSocket(url);
            socket.binaryType = 'arraybuffer';
            socket.onopen = () => socket.send(new Uint8Array([0, 1, 2, 253, 254, 255]));
            socket.onmessage = (event) => {
              resolve([...new Uint8Array(event.data as ArrayBuffer)]);
              socket.close();
            };
            socket.onerror = () => reject(new Error('websocket error'));
          }),
        `${kanmon.url.replace(/^https:/, 'wss:')}/ws`,
      );
      expect(echoed).toEqual([0, 1, 2, 253, 254, 255]);
    } finally {
      await user.context.close();
    }
  });

  it('refuses the WebSocket upgrade without a session', async () => {
    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      await page.goto(`${kanmon.url}/.kanmon/signed-out`);
      const outcome = await page.evaluate(
        (url) =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(url);
            socket.onopen = () => resolve('open');
            socket.onclose = (event) => resolve(`closed ${event.code}`);
          }),
        `${kanmon.url.replace(/^https:/, 'wss:')}/ws`,
      );
      // 1006: the handshake failed (Kanmon answered 401 instead of 101).
      expect(outcome).toBe('closed 1006');
    } finally {
      await context.close();
    }
  });

  it('streams the 10 MiB download intact', async () => {
    const user = await enrollUser(kanmon, browser, { username: 'dl-user' });
    try {
      // As a user would: the link on the demo's home page, saved by the browser.
      const [download] = await Promise.all([user.page.waitForEvent('download'), user.page.click('a[href="download/10mb"]')]);
      expect(download.suggestedFilename()).toBe('demo-10mb.bin');
      expect(await download.failure()).toBeNull();
      const bytes = await readFile(await download.path());
      expect(bytes.length).toBe(DOWNLOAD_BYTES);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(downloadSha256());
    } finally {
      await user.context.close();
    }
  });
});
