/**
 * Steps the end-to-end tests share, each done the way a user does it: through the pages,
 * with a virtual authenticator answering the passkey prompts.
 */
import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import { newContext, saveScreenshot, VirtualAuthenticator, type AuthenticatorKind, type ContextOptions } from '../support/browser.js';
import { REPO_ROOT, type TestKanmon } from '../support/kanmon-process.js';

export interface SignedInUser {
  readonly username: string;
  readonly context: BrowserContext;
  readonly page: Page;
  readonly authenticator: VirtualAuthenticator;
}

/**
 * An administrator adds a user (through the same service the CLI calls) and hands out an
 * enrollment link; the user opens it in a fresh browser, creates a passkey and lands on the
 * backend signed in.
 */
export async function enrollUser(
  kanmon: TestKanmon,
  browser: Browser,
  opts: { username: string; groups?: string[]; passkeyName?: string; authenticator?: AuthenticatorKind } & ContextOptions,
): Promise<SignedInUser> {
  await kanmon.app.services.users.addUser({ username: opts.username, groups: opts.groups ?? [], actor: 'e2e' });
  const link = await kanmon.app.services.enrollment.createLink(opts.username, { actor: 'e2e' });
  const context = await newContext(browser, opts.locale ? { locale: opts.locale } : {});
  const page = await context.newPage();
  const authenticator = await VirtualAuthenticator.attach(page, opts.authenticator ?? { synced: true });
  await page.goto(link.url);
  await expect.poll(() => page.textContent('#enroll-username')).toBe(opts.username);
  await page.fill('#passkey-name', opts.passkeyName ?? 'Laptop');
  await page.click('#create-passkey');
  await page.waitForURL(`${kanmon.url}/`);
  return { username: opts.username, context, page, authenticator };
}

/**
 * Hides passkey autofill from the login page, as on a browser without conditional mediation.
 * The virtual authenticator answers a conditional request at once (a real browser waits for
 * the user to pick the passkey), so without this the page would sign in on load and a test
 * of the button would race the autofill.
 */
export async function withoutPasskeyAutofill(page: Page): Promise<void> {
  await page.addInitScript(() => {
    if (typeof PublicKeyCredential !== 'undefined') {
      Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', { value: () => Promise.resolve(false), configurable: true });
    }
  });
}

/** Path and query of the page's current URL. */
export function pathOf(page: Page): string {
  const url = new URL(page.url());
  return `${url.pathname}${url.search}`;
}

/** What the demo backend's /headers page saw, fetched as a top-level navigation. */
export async function backendHeaders(page: Page, kanmon: TestKanmon): Promise<Record<string, string>> {
  const response = await page.goto(`${kanmon.url}/headers`);
  expect(pathOf(page)).toBe('/headers');
  expect(response?.status()).toBe(200);
  const body = (await response!.json()) as { headers: Record<string, string> };
  return body.headers;
}

/** Collects console errors and uncaught exceptions of a page. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}

/**
 * Opens each console page (name, path) in English and in Japanese: each answers 200 in that
 * language, every form control has a label, and no page logs an error. Saves a screenshot of
 * each; KANMON_CONSOLE_TOUR=1 also refreshes the README's tour images.
 */
export async function tourConsolePages(context: BrowserContext, kanmon: TestKanmon, pages: ReadonlyArray<readonly [string, string]>): Promise<void> {
  const tour = process.env.KANMON_CONSOLE_TOUR === '1' ? join(REPO_ROOT, 'docs', 'console') : undefined;
  if (tour) mkdirSync(tour, { recursive: true });
  for (const lang of ['en', 'ja'] as const) {
    const page = await context.newPage();
    const errors = watchErrors(page);
    for (const [name, path] of pages) {
      const res = await page.goto(`${kanmon.url}${path}${path.includes('?') ? '&' : '?'}lang=${lang}`);
      expect(res?.status(), path).toBe(200);
      await page.waitForLoadState('load');
      expect(await page.getAttribute('html', 'lang')).toBe(lang);
      // Every form control has a label.
      const unlabelled = await page.$$eval('main input:not([type=hidden]), main select, main textarea', (els) =>
        els.filter((el) => !(el.id && document.querySelector(`label[for="${el.id}"]`)) && !el.getAttribute('aria-label')).map((el) => el.outerHTML),
      );
      expect(unlabelled, `${name} ${lang}`).toEqual([]);
      await saveScreenshot(page, `console-${name}-${lang}`);
      if (tour) await page.screenshot({ path: join(tour, `${name}-${lang}.jpg`), type: 'jpeg', quality: 60 });
    }
    expect(errors, lang).toEqual([]);
    await page.close();
  }
}

export interface Jwks {
  readonly keys: ReadonlyArray<JsonWebKey & { kid?: string; alg?: string; use?: string }>;
}

/**
 * Verifies an X-Kanmon-Jwt as a backend would, knowing only the JWKS: the key by kid, ES256
 * as R||S over header.payload (RFC 7515 §5.2, RFC 7518 §3.4). Returns the claims.
 */
export function verifyIdentityJwt(token: string, jwks: Jwks): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('X-Kanmon-Jwt is not a compact JWS');
  const [h, p, s] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg?: string; kid?: string };
  if (header.alg !== 'ES256') throw new Error(`expected alg ES256, got ${String(header.alg)}`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`kid ${String(header.kid)} is not in the JWKS`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const ok = verify('sha256', Buffer.from(`${h}.${p}`, 'ascii'), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  if (!ok) throw new Error('X-Kanmon-Jwt signature does not verify against the JWKS');
  return JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
}
