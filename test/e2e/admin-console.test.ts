/**
 * The administrator's console in Chromium, end to end: the first administrator enrolls, signs in
 * to the console, creates a user and prints an enrollment letter; the user enrolls from the
 * letter's link in a second browser; the administrator revokes that user's session and a
 * certificate (after a fresh passkey); a non-administrator meets 403 everywhere; a hostile display
 * name stays text; a post from another site is refused; and every page is shot in both languages
 * with no console errors.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, newContext, VirtualAuthenticator } from '../support/browser.js';
import { startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { pathOf, tourConsolePages } from './journeys.js';

const A = '/.kanmon/admin';

describe('administrator console in the browser', () => {
  let kanmon: TestKanmon;
  let browser: Browser;
  let adminContext: BrowserContext;
  let admin: Page;
  let user: { context: BrowserContext; page: Page } | undefined;
  let dialogs: string[];

  beforeAll(async () => {
    kanmon = await startTestKanmon('admin-console');
    browser = await launchBrowser();
    adminContext = await newContext(browser);
    admin = await adminContext.newPage();
    dialogs = [];
    // Destructive buttons ask first; the administrator says yes (and we note every dialog).
    admin.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await VirtualAuthenticator.attach(admin, { synced: true });
    const link = (await kanmon.app.services.enrollment.createBootstrapLink())!;
    await admin.goto(link.url);
    await admin.waitForFunction(() => (document.getElementById('username') as HTMLInputElement | null)?.value === 'admin');
    await admin.fill('#username', 'kanri');
    await admin.fill('#display-name', '管理 太郎');
    await admin.fill('#passkey-name', 'Security key');
    await admin.click('#create-passkey');
    await admin.waitForURL(`${kanmon.url}/`);
  });

  afterAll(async () => {
    await user?.context.close();
    await adminContext?.close();
    await browser?.close();
    await kanmon?.close();
  });

  it('lets the administrator create a user and an enrollment letter, with which the user enrolls in a second browser', async () => {
    await admin.goto(`${kanmon.url}${A}`);
    expect(await admin.textContent('h1')).toBe('Dashboard');
    await admin.click('nav.admin-nav >> text=Users');
    await admin.click('#new-user');
    await admin.fill('#username', 'hanako');
    await admin.fill('#displayName', '山田 花子');
    await admin.fill('#groups', 'sales');
    await admin.click('#create-user');
    await admin.waitForURL(`${kanmon.url}${A}/users/hanako?done=userCreated`);
    expect(await admin.textContent('#user-display-name')).toBe('山田 花子');
    expect(await admin.textContent('#notice')).toBe('The user was created.');

    await admin.click('#make-letter');
    await admin.waitForURL(`${kanmon.url}${A}/users/hanako/letter`);
    expect(await admin.textContent('#letter-user')).toBe('山田 花子 (hanako)');
    expect(await admin.isVisible('svg.qr')).toBe(true);
    const link = (await admin.textContent('#letter-link'))!.trim();
    expect(link.startsWith(`${kanmon.url}/.kanmon/enroll?token=`)).toBe(true);

    const context = await newContext(browser, { locale: 'ja-JP' });
    const page = await context.newPage();
    user = { context, page };
    await VirtualAuthenticator.attach(page, { synced: true });
    await page.goto(link);
    expect(await page.textContent('#enroll-username')).toBe('hanako');
    await page.click('#create-passkey');
    await page.waitForURL(`${kanmon.url}/`);

    await admin.goto(`${kanmon.url}${A}/users/hanako`);
    expect(await admin.locator('#user-passkeys tbody tr').count()).toBe(1);
    expect(await admin.locator('#user-sessions tbody tr').count()).toBe(1);
    const audit = await kanmon.app.services.audit.tail({ limit: 50 });
    expect(audit.find((e) => e.type === 'admin.enroll-letter')).toMatchObject({ actor: 'kanri', username: 'hanako' });
  });

  it('answers 403 to the non-administrator on every console page', async () => {
    const page = user!.page;
    for (const path of [A, `${A}/users`, `${A}/users/new`, `${A}/users/kanri`, `${A}/enrollment`, `${A}/certificates`, `${A}/audit`, `${A}/audit/export.csv`, `${A}/sessions`, `${A}/reauth`, `${A}/anything`]) {
      const res = await page.goto(`${kanmon.url}${path}`);
      expect(res?.status(), path).toBe(403);
    }
    // A form post from a console page the user cannot see is refused the same way.
    const status = await page.evaluate(async (url) => (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=x' })).status, `${kanmon.url}${A}/users`);
    expect(status).toBe(403);
  });

  it('revokes a session: the user is signed out on their next request', async () => {
    await admin.goto(`${kanmon.url}${A}/sessions`);
    await admin.click('#all-sessions tr[data-username="hanako"] button.revoke-session');
    await admin.waitForURL(`${kanmon.url}${A}/sessions?done=revoked`);
    expect(await admin.locator('#all-sessions tr[data-username="hanako"]').count()).toBe(0);
    // Every node stops accepting it within the session cache bound; this node forgot it at once.
    await user!.page.goto(`${kanmon.url}/headers`);
    expect(pathOf(user!.page)).toMatch(/^\/\.kanmon\/login\?return=/);
  });

  it('demands a fresh passkey to revoke a certificate, and the revoked certificate is refused', async () => {
    await admin.goto(`${kanmon.url}${A}/users/hanako`);
    await admin.fill('#cert-device', 'Office PC');
    await admin.click('#issue-cert');
    const serial = (await admin.textContent('#issued-serial'))!.trim();
    expect(await admin.textContent('#issued-password')).toMatch(/\S{8,}/);
    const cert = (await kanmon.app.services.clientCertificates.get(serial))!;
    expect((await kanmon.app.services.clientCertificates.checkPresented(cert.certificateDer)).valid).toBe(true);

    await admin.goto(`${kanmon.url}${A}/users/hanako`);
    await admin.click(`#user-certificates tr[data-serial="${serial}"] button`);
    // The enrollment's passkey is not a fresh confirmation for a sensitive action.
    await admin.waitForURL(/\/\.kanmon\/admin\/reauth\?return=/);
    expect(await admin.textContent('h1')).toBe('Confirm it is you');
    expect((await kanmon.app.services.clientCertificates.get(serial))!.status).toBe('active');
    await admin.click('#reauth-button');
    await admin.waitForURL(`${kanmon.url}${A}/users/hanako`);
    await admin.click(`#user-certificates tr[data-serial="${serial}"] button`);
    await admin.waitForURL(`${kanmon.url}${A}/users/hanako?done=revoked`);
    expect(await admin.getAttribute(`#user-certificates tr[data-serial="${serial}"] .cert-status`, 'data-status')).toBe('revoked');
    expect(dialogs.length).toBeGreaterThanOrEqual(2);

    kanmon.app.services.clientCertificates.forgetStatus(serial);
    const check = await kanmon.app.services.clientCertificates.checkPresented(cert.certificateDer);
    expect(check.valid).toBe(false);
    // And it is on the CRL the console offers (read by openssl, as a relying party would).
    const crlBase64 = await admin.evaluate(async (url) => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      let text = '';
      for (const b of bytes) text += String.fromCharCode(b);
      return btoa(text);
    }, `${kanmon.url}${A}/certificates/crl`);
    const crlText = execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], { input: Buffer.from(crlBase64, 'base64') }).toString();
    expect(crlText.toLowerCase().replace(/[^0-9a-z\n]/g, '')).toContain(`serialnumber${serial.padStart(serial.length + (serial.length % 2), '0')}`);
    const types = (await kanmon.app.services.audit.tail({ limit: 50 })).map((e) => e.type);
    expect(types).toContain('admin.reauth-required');
    expect(types).toContain('admin.reauth');
    expect(types).toContain('admin.cert.revoke');
  });

  it('filters the audit log by user, event, result and time, and exports it as CSV', async () => {
    await admin.goto(`${kanmon.url}${A}/audit`);
    await admin.fill('#f-user', 'hanako');
    await admin.fill('#f-event', 'admin.');
    await admin.selectOption('#f-result', 'failure');
    await admin.fill('#f-from', new Date(Date.now() - 3_600_000).toISOString().slice(0, 16));
    await admin.click('#audit-apply');
    await admin.waitForURL(/\/\.kanmon\/admin\/audit\?user=hanako&event=admin\.&result=failure&from=/);
    const events = await admin.locator('#audit tbody tr td:nth-child(2)').allTextContents();
    expect(events.length).toBeGreaterThan(0);
    expect(new Set(events)).toEqual(new Set(['admin.access']));
    // The confirmation from the previous step is still fresh, so the export downloads at once.
    const download = admin.waitForEvent('download');
    await admin.click('#audit-export');
    const file = await download;
    expect(file.suggestedFilename()).toBe('kanmon-audit.csv');
    const csv = readFileSync((await file.path())!, 'utf8').replace(/^\ufeff/, '').trim().split('\r\n');
    expect(csv[0]).toBe('time,event,result,user,actor,address,method,reason,details');
    expect(csv.length).toBe(events.length + 1);
    expect(csv.slice(1).every((line) => line.includes(',admin.access,failure,hanako,'))).toBe(true);
  });

  it('shows a display name holding <script> as text everywhere', async () => {
    const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
    const mallory = await kanmon.app.services.users.addUser({ username: 'mallory', displayName: evil, actor: 'e2e' });
    await kanmon.app.services.sessions.start(mallory, ['passkey'], { ip: '127.0.0.1', userAgent: evil });
    // The administrator types it too, so it also lands in the audit trail's before/after.
    await admin.goto(`${kanmon.url}${A}/users/mallory`);
    await admin.fill('#displayName', `${evil} (2)`);
    await admin.click('#save-user');
    await admin.waitForURL(`${kanmon.url}${A}/users/mallory?done=saved`);
    expect(await admin.textContent('#user-display-name')).toBe(`${evil} (2)`);
    for (const path of [`${A}/users`, `${A}/users?q=mall`, `${A}/users/mallory`, `${A}/sessions`, `${A}/audit?user=mallory`]) {
      await admin.goto(`${kanmon.url}${path}`);
      expect(await admin.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), path).toBeUndefined();
      expect(await admin.locator('main').textContent(), path).toContain('<script>window.__pwned=1</script>');
      expect(await admin.locator('main img').count(), path).toBe(0);
    }
  });

  it('refuses a form posted from another site', async () => {
    // A page on another origin that posts a hidden form to the console as soon as it loads.
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><form id="f" method="post" action="${kanmon.url}${A}/users"><input name="username" value="crosssite"><input name="isAdmin" value="on"></form><script>document.getElementById('f').submit()</script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (evil.address() as { port: number }).port;
      const page = await adminContext.newPage();
      const response = page.waitForResponse((r) => r.url() === `${kanmon.url}${A}/users`);
      await page.goto(`http://127.0.0.1:${port}/`);
      expect((await response).status()).toBe(403);
      await page.close();
      expect(await kanmon.app.services.users.get('crosssite')).toBeUndefined();
      const refused = (await kanmon.app.services.audit.tail({ limit: 20 })).find((e) => e.type === 'portal.cross-site');
      expect(refused?.details).toMatchObject({ path: `${A}/users` });
    } finally {
      await new Promise((resolve) => evil.close(resolve));
    }
  });

  it('renders every page in both languages without console errors (screenshots saved)', async () => {
    const pages: Array<[string, string]> = [
      ['dashboard', A],
      ['users', `${A}/users`],
      ['user-new', `${A}/users/new`],
      ['user', `${A}/users/hanako`],
      ['enrollment', `${A}/enrollment`],
      ['certificates', `${A}/certificates`],
      ['audit', `${A}/audit`],
      ['sessions', `${A}/sessions`],
      ['reauth', `${A}/reauth?return=${encodeURIComponent(`${A}/certificates`)}`],
    ];
    await tourConsolePages(adminContext, kanmon, pages);
  });
});
