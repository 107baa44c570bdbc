/**
 * Company devices, end to end in Chromium: the certificate offered right after enrollment (per
 * group), enrollment gated on the user's own device certificate, and the account page that
 * lists and revokes one's certificates. Client certificates reach the listener through
 * playwright-core's `clientCertificates` context option, as an installed certificate would.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, saveScreenshot, VirtualAuthenticator } from '../support/browser.js';
import type { KanmonConfigInput } from '../../runtime/config/schema.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { run } from '../runtime/ca/support.js';

const ROUTES: KanmonConfigInput['routes'] = [
  { id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo' },
  // A certificate-only route: the certificate alone names the user.
  { id: 'kiosk', match: { pathPrefix: '/headers' }, upstream: 'demo', policy: { factors: [['mtls']] } },
];

let browser: Browser;
let dir: string;

beforeAll(async () => {
  browser = await launchBrowser();
  dir = mkdtempSync(join(tmpdir(), 'kanmon-e2e-devices-'));
});
afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function contextWith(kanmon: TestKanmon, opts: { locale?: string; pfx?: { path: string; password: string } } = {}): Promise<BrowserContext> {
  return browser.newContext({
    ignoreHTTPSErrors: true,
    locale: opts.locale ?? 'en-US',
    viewport: { width: 1000, height: 760 },
    acceptDownloads: true,
    ...(opts.pfx ? { clientCertificates: [{ origin: kanmon.url, pfxPath: opts.pfx.path, passphrase: opts.pfx.password }] } : {}),
  });
}

/** An administrator issues a certificate and hands over the file (written where the browser reads it). */
async function issuedFile(kanmon: TestKanmon, username: string, deviceLabel: string): Promise<{ path: string; password: string; serial: string }> {
  const user = await kanmon.app.services.users.require(username);
  const issued = await kanmon.app.services.clientCertificates.issueForUser(user, { deviceLabel });
  const file = await kanmon.app.services.clientCertificates.download(issued.certificate.serial);
  const path = join(dir, `${username}-${issued.certificate.serial}.p12`);
  writeFileSync(path, file.pkcs12, { mode: 0o600 });
  return { path, password: issued.password, serial: issued.certificate.serial };
}

async function openEnrollment(page: Page, url: string, username: string): Promise<void> {
  await page.goto(url);
  await expect.poll(() => page.textContent('#enroll-username')).toBe(username);
  await page.fill('#passkey-name', 'Laptop');
  await page.click('#create-passkey');
}

/** A JSON or form request from inside the page: same origin, its cookies, its client certificate. */
function post(page: Page, path: string, body: string, type = 'application/json'): Promise<{ status: number; text: string }> {
  return page.evaluate(
    async ([p, b, t]) => {
      const r = await fetch(p!, { method: 'POST', headers: { 'content-type': t! }, body: b });
      return { status: r.status, text: await r.text() };
    },
    [path, body, type],
  );
}

describe('a certificate offered right after enrollment', () => {
  let kanmon: TestKanmon;
  beforeAll(async () => {
    kanmon = await startTestKanmon('devices-offer', { groups: { office: { offerClientCertificate: true } }, routes: ROUTES });
  });
  afterAll(async () => kanmon?.close());

  it('a member enrolls, is offered a certificate for this device with install steps in both languages, and it opens a certificate route', async () => {
    await kanmon.app.services.users.addUser({ username: 'yuki', groups: ['office'], actor: 'e2e' });
    const link = await kanmon.app.services.enrollment.createLink('yuki', { actor: 'e2e' });
    const context = await contextWith(kanmon);
    try {
      const page = await context.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      await openEnrollment(page, link.url, 'yuki');
      await page.waitForURL(`${kanmon.url}/.kanmon/enroll/certificate`);
      expect(await page.textContent('h1')).toBe('A certificate for this device');
      for (const os of ['windows', 'macos', 'ios', 'android']) expect(await page.isVisible(`#install-${os}`)).toBe(true);
      expect(await page.textContent('#install-ios')).toContain('iPhone');
      await saveScreenshot(page, 'company-device-offer');
      await page.click('#lang-switch');
      expect(await page.textContent('h1')).toBe('この端末の証明書');
      expect(await page.textContent('#install-windows')).toContain('証明書のインポート ウィザード');
      await saveScreenshot(page, 'company-device-offer-ja');
      await page.click('#lang-switch');

      await page.fill('#device-label', 'Yuki laptop');
      await page.click('#cert-offer-accept');
      await expect.poll(() => page.textContent('h1')).toBe('Your device certificate is ready');
      const password = (await page.textContent('#cert-password'))!.trim();
      expect(password.length).toBeGreaterThanOrEqual(16);
      expect(await page.textContent('#cert-device')).toBe('Yuki laptop');
      await saveScreenshot(page, 'company-device-issued');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#cert-download')]);
      const pfxPath = join(dir, 'yuki-download.p12');
      await download.saveAs(pfxPath);
      // The file opens with the password shown once (openssl reads it as any platform would).
      const info = await run('openssl', ['pkcs12', '-in', pfxPath, '-passin', `pass:${password}`, '-nokeys', '-clcerts']);
      expect(info.stdout).toContain('BEGIN CERTIFICATE');

      // The offer is used up: the page and a replayed form post say so, and nothing more is issued.
      expect((await page.goto(`${kanmon.url}/.kanmon/enroll/certificate`))?.status()).toBe(410);
      const replay = await post(page, '/.kanmon/enroll/certificate', 'action=accept&deviceLabel=again', 'application/x-www-form-urlencoded');
      expect(replay.status).toBe(410);
      const user = await kanmon.app.services.users.require('yuki');
      expect(await kanmon.app.services.clientCertificates.listForUser(user.id)).toHaveLength(1);

      // Installed in a browser, the certificate opens the certificate-only route as yuki.
      const device = await contextWith(kanmon, { pfx: { path: pfxPath, password } });
      try {
        const p2 = await device.newPage();
        const response = await p2.goto(`${kanmon.url}/headers`);
        expect(response?.status()).toBe(200);
        expect(((await response!.json()) as { headers: Record<string, string> }).headers['x-kanmon-user']).toBe('yuki');
      } finally {
        await device.close();
      }
    } finally {
      await context.close();
    }
  });

  it('a download link from a mail or letter downloads the file once in the browser', async () => {
    const user = await kanmon.app.services.users.addUser({ username: 'nao', actor: 'e2e' });
    const issued = await kanmon.app.services.clientCertificates.issueForUser(user, { deviceLabel: 'nao phone' });
    const link = await kanmon.app.services.clientCertificates.createDownloadLink(issued.certificate.serial, { actor: 'e2e' });
    const context = await contextWith(kanmon);
    try {
      const page = await context.newPage();
      await page.goto(link.url);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#cert-download')]);
      const path = join(dir, 'nao.p12');
      await download.saveAs(path);
      const info = await run('openssl', ['pkcs12', '-in', path, '-passin', `pass:${issued.password}`, '-nokeys', '-clcerts']);
      expect(info.stdout).toContain('BEGIN CERTIFICATE');
      expect((await page.goto(link.url))?.status()).toBe(200);
      await page.click('#cert-download');
      await page.waitForSelector('#cert-download-gone');
    } finally {
      await context.close();
    }
  });

  it('refuses hostile offer requests without using the offer up, and "not now" ends it', async () => {
    await kanmon.app.services.users.addUser({ username: 'ren', groups: ['office'], actor: 'e2e' });
    const link = await kanmon.app.services.enrollment.createLink('ren', { actor: 'e2e' });
    const context = await contextWith(kanmon, { locale: 'ja-JP' });
    try {
      const page = await context.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      await openEnrollment(page, link.url, 'ren');
      await page.waitForURL(`${kanmon.url}/.kanmon/enroll/certificate`);
      expect(await page.textContent('h1')).toBe('この端末の証明書');
      const form = 'application/x-www-form-urlencoded';
      expect((await post(page, '/.kanmon/enroll/certificate', 'action=steal', form)).status).toBe(400);
      expect((await post(page, '/.kanmon/enroll/certificate', `action=accept&deviceLabel=${'x'.repeat(300)}`, form)).status).toBe(400);
      expect((await post(page, '/.kanmon/enroll/certificate', '[1,2]')).status).toBe(400);
      expect((await post(page, '/.kanmon/enroll/certificate', `action=accept&deviceLabel=${'y'.repeat(70_000)}`, form)).status).toBe(413);
      // Another site cannot take it.
      const crossSite = await page.request.post(`${kanmon.url}/.kanmon/enroll/certificate`, { form: { action: 'accept' }, headers: { origin: 'https://evil.example' } });
      expect(crossSite.status()).toBe(403);
      // None of that used the offer: it still stands, and declining ends it.
      expect((await page.reload())?.status()).toBe(200);
      await page.click('#cert-offer-decline');
      await page.waitForURL(`${kanmon.url}/`);
      expect((await page.goto(`${kanmon.url}/.kanmon/enroll/certificate`))?.status()).toBe(410);
      const user = await kanmon.app.services.users.require('ren');
      expect(await kanmon.app.services.clientCertificates.listForUser(user.id)).toHaveLength(0);
    } finally {
      await context.close();
    }
    // Without a session there is no offer to see or take.
    const anonymous = await contextWith(kanmon);
    try {
      const page = await anonymous.newPage();
      await page.goto(`${kanmon.url}/.kanmon/enroll/certificate`);
      expect(new URL(page.url()).pathname).toBe('/.kanmon/login');
      expect((await post(page, '/.kanmon/enroll/certificate', 'action=accept', 'application/x-www-form-urlencoded')).status).toBe(401);
    } finally {
      await anonymous.close();
    }
  });
});

describe('certificate-gated enrollment', () => {
  let kanmon: TestKanmon;
  beforeAll(async () => {
    kanmon = await startTestKanmon('devices-gate', { enrollment: { requireClientCertificate: true }, routes: ROUTES });
  });
  afterAll(async () => kanmon?.close());

  it('a link alone, or with another user\'s certificate, enrolls nothing; with the user\'s own certificate it works', async () => {
    await kanmon.app.services.users.addUser({ username: 'ken', actor: 'e2e' });
    await kanmon.app.services.users.addUser({ username: 'mei', actor: 'e2e' });
    const kenFile = await issuedFile(kanmon, 'ken', 'ken laptop');
    const meiFile = await issuedFile(kanmon, 'mei', 'mei laptop');
    const link = await kanmon.app.services.enrollment.createLink('ken', { actor: 'e2e' });

    const bare = await contextWith(kanmon);
    try {
      const page = await bare.newPage();
      const response = await page.goto(link.url);
      expect(response?.status()).toBe(403);
      expect(await page.getAttribute('#enroll-certificate-required', 'data-reason')).toBe('no-certificate');
      expect(await page.textContent('h1')).toBe('Set up sign-in on a company device');
      await saveScreenshot(page, 'company-device-gate');
      await page.click('#lang-switch');
      expect(await page.textContent('h1')).toBe('会社の端末でサインインを設定してください');
      // The API behind the page refuses too, and the link is not used up.
      const token = new URL(link.url).searchParams.get('token')!;
      const options = await post(page, '/.kanmon/api/enroll/options', JSON.stringify({ token }));
      expect(options.status).toBe(403);
      expect(JSON.parse(options.text).error).toBe('client-certificate-required');
      expect((await post(page, '/.kanmon/api/enroll/verify', JSON.stringify({ token, response: { id: 'x' } }))).status).toBe(403);
    } finally {
      await bare.close();
    }

    const other = await contextWith(kanmon, { pfx: meiFile });
    try {
      const page = await other.newPage();
      expect((await page.goto(link.url))?.status()).toBe(403);
      expect(await page.getAttribute('#enroll-certificate-required', 'data-reason')).toBe('certificate-other-user');
    } finally {
      await other.close();
    }

    const own = await contextWith(kanmon, { pfx: kenFile });
    let cookies;
    try {
      const page = await own.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      await openEnrollment(page, link.url, 'ken');
      await page.waitForURL(`${kanmon.url}/`);
      // Signed in on the certificate's device, setting up an authenticator app is allowed.
      expect((await page.goto(`${kanmon.url}/.kanmon/account/totp`))?.status()).toBe(200);
      cookies = await own.cookies();
    } finally {
      await own.close();
    }

    // The session cookie copied to a browser without the certificate sets up nothing.
    const stolen = await contextWith(kanmon);
    try {
      await stolen.addCookies(cookies);
      const page = await stolen.newPage();
      expect((await page.goto(`${kanmon.url}/.kanmon/account/totp`))?.status()).toBe(403);
      expect(await page.getAttribute('#enroll-certificate-required', 'data-reason')).toBe('no-certificate');
      expect((await post(page, '/.kanmon/api/account/totp/enroll', '{}')).status).toBe(403);
      expect((await post(page, '/.kanmon/api/account/passkeys/options', '{}')).status).toBe(403);
    } finally {
      await stolen.close();
    }
    const refusals = (await kanmon.app.services.audit.tail({ limit: 100 })).filter((e) => e.type === 'enroll.certificate');
    expect(refusals.map((e) => e.reason)).toEqual(expect.arrayContaining(['no-certificate', 'certificate-other-user']));
  });
});

describe('the account page lists and revokes one\'s own certificates', () => {
  let kanmon: TestKanmon;
  beforeAll(async () => {
    kanmon = await startTestKanmon('devices-account', { routes: ROUTES });
  });
  afterAll(async () => kanmon?.close());

  it('shows device, serial, dates and status, revokes one after a confirmation, and refuses anyone else\'s serial', async () => {
    await kanmon.app.services.users.addUser({ username: 'aoi', actor: 'e2e' });
    await kanmon.app.services.users.addUser({ username: 'sora', actor: 'e2e' });
    const laptop = await issuedFile(kanmon, 'aoi', 'Aoi laptop');
    const phone = await issuedFile(kanmon, 'aoi', 'Aoi <phone>');
    const soras = await issuedFile(kanmon, 'sora', 'sora desktop');
    const link = await kanmon.app.services.enrollment.createLink('aoi', { actor: 'e2e' });
    const context = await contextWith(kanmon, { pfx: laptop });
    try {
      const page = await context.newPage();
      await VirtualAuthenticator.attach(page, { synced: true });
      await openEnrollment(page, link.url, 'aoi');
      await page.waitForURL(`${kanmon.url}/`);
      await page.goto(`${kanmon.url}/.kanmon/account`);
      const rows = page.locator('#certificates tbody tr');
      await expect.poll(() => rows.count()).toBe(2);
      // Shown as text, never as markup.
      expect(await page.textContent(`tr[data-serial="${phone.serial}"] .cert-device`)).toBe('Aoi <phone>');
      expect(await page.getAttribute(`tr[data-serial="${laptop.serial}"]`, 'data-status')).toBe('active');
      await saveScreenshot(page, 'company-device-account');

      await page.click(`tr[data-serial="${phone.serial}"] .cert-revoke`);
      expect(await page.textContent('h1')).toBe('Revoke this device certificate?');
      await page.click('#cert-revoke-confirm');
      await page.waitForSelector('#cert-revoked');
      await page.goto(`${kanmon.url}/.kanmon/account`);
      expect(await page.getAttribute(`tr[data-serial="${phone.serial}"]`, 'data-status')).toBe('revoked');
      expect(await page.locator(`tr[data-serial="${phone.serial}"] .cert-revoke`).count()).toBe(0);
      const audit = (await kanmon.app.services.audit.tail({ limit: 50 })).find((e) => e.type === 'cert.revoke' && e.result === 'success');
      expect(audit?.actor).toBe('aoi');
      expect(audit?.details?.serial).toBe(phone.serial);

      // Someone else's serial, a malformed one, an oversized or cross-site request: refused, nothing revoked.
      const form = 'application/x-www-form-urlencoded';
      expect((await post(page, '/.kanmon/account/certificates/revoke', `serial=${soras.serial}`, form)).status).toBe(404);
      expect((await post(page, '/.kanmon/account/certificates/revoke', 'serial=zz%0d%0a', form)).status).toBe(404);
      expect((await post(page, '/.kanmon/account/certificates/revoke', `serial=${'a'.repeat(70_000)}`, form)).status).toBe(413);
      expect((await page.goto(`${kanmon.url}/.kanmon/account/certificates/revoke?serial=${soras.serial}`))?.status()).toBe(404);
      const crossSite = await page.request.post(`${kanmon.url}/.kanmon/account/certificates/revoke`, { form: { serial: laptop.serial }, headers: { origin: 'https://evil.example' } });
      expect(crossSite.status()).toBe(403);
      expect((await kanmon.app.services.clientCertificates.get(soras.serial))?.status).toBe('active');
      expect((await kanmon.app.services.clientCertificates.get(laptop.serial))?.status).toBe('active');
      // Revoking again is harmless.
      expect((await post(page, '/.kanmon/account/certificates/revoke', `serial=${phone.serial}`, form)).status).toBe(200);
    } finally {
      await context.close();
    }
    expect(readFileSync(laptop.path).length).toBeGreaterThan(0);
  });
});
