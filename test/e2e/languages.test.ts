/**
 * Every portal page in Japanese and English: chosen from Accept-Language, switched with the
 * link in the header, remembered in a cookie. Also saves screenshots of the login,
 * enrollment and account pages in both languages to test-results/screenshots/.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allMessageKeys, LANG_COOKIE, messagesFor, type Lang } from '../../runtime/portal/i18n.js';
import { launchBrowser, newContext, saveScreenshot, VirtualAuthenticator } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { pathOf } from './journeys.js';

const OTHER: Record<Lang, Lang> = { ja: 'en', en: 'ja' };

/** Catalog texts of the other language that show up on the page: untranslated leftovers. */
async function foreignTexts(page: Page, lang: Lang): Promise<string[]> {
  const shown = await page.evaluate(() => `${document.title}\n${document.body.innerText}`);
  const mine = messagesFor(lang);
  const other = messagesFor(OTHER[lang]);
  return allMessageKeys()
    .filter((key) => other[key] !== mine[key] && other[key].trim().length >= 4 && shown.includes(other[key]))
    .map((key) => `${key}: ${other[key]}`);
}

/** The page is in `lang` throughout: the html lang attribute and no text from the other catalog. */
async function expectPageIn(page: Page, lang: Lang, titleKey: 'login.title' | 'enroll.title' | 'account.title'): Promise<void> {
  expect(await page.getAttribute('html', 'lang')).toBe(lang);
  expect(await page.textContent('h1')).toBe(messagesFor(lang)[titleKey]);
  expect(await page.textContent('#lang-switch')).toBe(messagesFor(lang)['lang.switch']);
  expect(await foreignTexts(page, lang)).toEqual([]);
}

/** Clicks the language switch and waits for the page in the other language. */
async function switchLanguage(page: Page, to: Lang): Promise<void> {
  await Promise.all([page.waitForURL((url) => url.searchParams.get('lang') === to), page.click('#lang-switch')]);
  await page.waitForLoadState('load');
}

describe('Japanese and English', () => {
  let kanmon: TestKanmon;
  let browser: Browser;

  beforeAll(async () => {
    kanmon = await startTestKanmon('languages');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await kanmon?.close();
  });

  it('Accept-Language ja gives the Japanese login page; the switch flips it and the choice sticks', async () => {
    const context = await newContext(browser, { locale: 'ja-JP' });
    try {
      const page = await context.newPage();
      await page.goto(`${kanmon.url}/.kanmon/login`);
      await expectPageIn(page, 'ja', 'login.title');
      expect(await page.textContent('#passkey-login')).toBe('パスキーでサインイン');

      await switchLanguage(page, 'en');
      await expectPageIn(page, 'en', 'login.title');
      expect(await page.textContent('#passkey-login')).toBe('Sign in with a passkey');
      const cookie = (await context.cookies(kanmon.url)).find((c) => c.name === LANG_COOKIE);
      expect(cookie?.value).toBe('en');

      // The browser still prefers Japanese, but the choice wins, on this and other pages,
      // including those the gateway renders (a backend path without a session).
      await page.goto(`${kanmon.url}/.kanmon/login`);
      await expectPageIn(page, 'en', 'login.title');
      await page.goto(`${kanmon.url}/.kanmon/signed-out`);
      expect(await page.getAttribute('html', 'lang')).toBe('en');
      const gatewayPage = await page.request.get(`${kanmon.url}/headers`, { headers: { accept: 'application/json' }, maxRedirects: 0 });
      expect(gatewayPage.status()).toBe(401);
      expect(await gatewayPage.text()).toContain('<html lang="en">');

      // And back.
      await page.goto(`${kanmon.url}/.kanmon/login`);
      await switchLanguage(page, 'ja');
      await page.goto(`${kanmon.url}/.kanmon/login`);
      await expectPageIn(page, 'ja', 'login.title');
    } finally {
      await context.close();
    }
  });

  it('login, enrollment and account pages are fully translated in both languages (screenshots saved)', async () => {
    // The login page, once per language, in a browser preferring that language.
    for (const lang of ['ja', 'en'] as const) {
      const context = await newContext(browser, { locale: lang === 'ja' ? 'ja-JP' : 'en-US' });
      try {
        const page = await context.newPage();
        await page.goto(`${kanmon.url}/.kanmon/login?return=%2F`);
        await expectPageIn(page, lang, 'login.title');
        await saveScreenshot(page, `login-${lang}`);
      } finally {
        await context.close();
      }
    }

    // The first administrator enrolls in Japanese; enrollment and account pages in both.
    const link = await kanmon.app.services.enrollment.createBootstrapLink();
    expect(link, 'a fresh store must offer the first-administrator link').toBeDefined();
    const context = await newContext(browser, { locale: 'ja-JP' });
    try {
      const page = await context.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      await page.goto(link!.url);
      await expectPageIn(page, 'ja', 'enroll.title');
      await saveScreenshot(page, 'enroll-ja');
      await switchLanguage(page, 'en');
      await expectPageIn(page, 'en', 'enroll.title');
      await saveScreenshot(page, 'enroll-en');
      await switchLanguage(page, 'ja');

      await page.fill('#username', 'yamada');
      await page.fill('#display-name', '山田 花子');
      await page.fill('#passkey-name', '会社のノート PC');
      await page.click('#create-passkey');
      await page.waitForURL(`${kanmon.url}/`);

      await page.goto(`${kanmon.url}/.kanmon/account`);
      expect(pathOf(page)).toBe('/.kanmon/account');
      await expectPageIn(page, 'ja', 'account.title');
      expect(await page.textContent('#passkeys .passkey-name')).toBe('会社のノート PC');
      await saveScreenshot(page, 'account-ja');
      await switchLanguage(page, 'en');
      await expectPageIn(page, 'en', 'account.title');
      await saveScreenshot(page, 'account-en');
    } finally {
      await context.close();
    }
  });
});
