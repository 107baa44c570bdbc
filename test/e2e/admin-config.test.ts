/**
 * The console's routes, settings and import pages in Chromium: the administrator tightens a
 * route's policy (after a fresh passkey) and a second Kanmon node on the same store enforces it
 * within its poll; the version shows a diff and rolls back; validation errors appear beside their
 * fields; a 1,000-row CSV is previewed, applied, and a second upload changes nothing; an LDAP
 * sync runs against slapd; a non-administrator gets 403 on every URL of these pages; hostile
 * names stay text; and each page renders in both languages without console errors.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKanmon, type KanmonApp } from '../../runtime/app.js';
import { SESSION_COOKIE } from '../../runtime/services/sessions.js';
import { launchBrowser, newContext, VirtualAuthenticator } from '../support/browser.js';
import { DEMO_ROUTE, freePort, startTestKanmon, type TestKanmon } from '../support/kanmon-process.js';
import { LDAP_ADMIN, LDAP_BASE, LDAP_PASSWORD, startSlapd, type Slapd } from '../support/slapd.js';
import { tourConsolePages } from './journeys.js';

const A = '/.kanmon/admin';

function thousandRows(suffix = ''): string {
  const lines = ['username,displayName,groups'];
  for (let i = 0; i < 1000; i++) lines.push(`member${String(i).padStart(4, '0')},"社員 ${i}${suffix}",staff;branch${i % 7}`);
  lines.push('evil,"<script>window.__pwned=1</script>",staff');
  return `${lines.join('\r\n')}\r\n`;
}

describe('console: routes, settings and import', () => {
  let slapd: Slapd;
  let kanmon: TestKanmon;
  let second: KanmonApp;
  let browser: Browser;
  let context: BrowserContext;
  let admin: Page;

  beforeAll(async () => {
    slapd = await startSlapd();
    await slapd.edit(async (c) => {
      for (const [uid, cn] of [['ldap-hanako', 'Hanako Yamada'], ['ldap-taro', 'Taro Suzuki']] as const) {
        await c.add(`uid=${uid},ou=people,${LDAP_BASE}`, { objectClass: ['inetOrgPerson'], uid, cn, sn: cn.split(' ')[1]! });
      }
    });
    process.env.KANMON_LDAP_PASSWORD = LDAP_PASSWORD;
    kanmon = await startTestKanmon('admin-config', {
      routes: [DEMO_ROUTE],
      directory: { ldap: { url: slapd.url, allowPlaintext: true, bindDn: LDAP_ADMIN, baseDn: `ou=people,${LDAP_BASE}`, groupsFrom: 'search', groupBaseDn: `ou=groups,${LDAP_BASE}` } },
    });
    // A second node on the same store (the same SQLite file), with the same config file.
    second = await startKanmon({ dataDir: kanmon.dataDir, server: { port: await freePort(), host: '127.0.0.1' }, log: { level: 'silent' }, routes: [DEMO_ROUTE] });
    browser = await launchBrowser();
    context = await newContext(browser);
    admin = await context.newPage();
    admin.on('dialog', (d) => void d.accept());
    await VirtualAuthenticator.attach(admin, { synced: true });
    const link = (await kanmon.app.services.enrollment.createBootstrapLink())!;
    await admin.goto(link.url);
    await admin.waitForFunction(() => (document.getElementById('username') as HTMLInputElement | null)?.value === 'admin');
    await admin.fill('#username', 'kanri');
    await admin.fill('#passkey-name', 'Key');
    await admin.click('#create-passkey');
    await admin.waitForURL(`${kanmon.url}/`);
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await second?.close();
    await kanmon?.close();
    await slapd?.stop();
  });

  it('the administrator tightens a route’s policy and the second node enforces it within its poll', async () => {
    // The session cookie is for localhost, whatever the port: the second node sees the same session.
    expect((await admin.goto(`${second.url}/headers`))?.status()).toBe(200);

    await admin.goto(`${kanmon.url}${A}/routes`);
    expect(await admin.textContent('#config-version')).toContain('1');
    await admin.click('#routes tr[data-route="demo"] a');
    // Editing a policy is sensitive: the enrollment's passkey is not a fresh confirmation.
    await admin.waitForURL(/\/\.kanmon\/admin\/reauth\?return=/);
    await admin.click('#reauth-button');
    await admin.waitForURL(`${kanmon.url}${A}/routes/demo`);
    await admin.fill('#allowGroups', 'finance');
    await admin.fill('#note', 'finance only <script>window.__pwned=1</script>');
    await admin.click('#save-route');
    await admin.waitForURL(`${kanmon.url}${A}/routes/versions/2?done=configSaved`);
    expect(await admin.textContent('#diff tr[data-path="routes[demo].policy.allowGroups"] .after')).toBe('["finance"]');
    expect(await admin.textContent('#diff tr[data-path="routes[demo].policy.allowGroups"] .before')).toBe('[]');

    // This node at once; the other within its poll (3 s).
    expect((await admin.goto(`${kanmon.url}/headers`))?.status()).toBe(403);
    let status = 0;
    for (let i = 0; i < 40 && status !== 403; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await admin.goto(`${second.url}/headers`))?.status() ?? 0;
    }
    expect(status).toBe(403);
    const audit = await kanmon.app.services.audit.tail({ limit: 30 });
    expect(audit.find((e) => e.type === 'admin.route.edit')).toMatchObject({ actor: 'kanri', details: { before: { policy: { allowGroups: [] } }, after: { policy: { allowGroups: ['finance'] } } } });
    expect(audit.find((e) => e.type === 'config.save')?.details).toMatchObject({ version: 2, previous: 1 });

    // The versions list shows the note as text.
    await admin.goto(`${kanmon.url}${A}/routes/versions`);
    expect(await admin.textContent('#versions tr[data-version="2"] .note')).toBe('finance only <script>window.__pwned=1</script>');
    expect(await admin.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    // Check access says why.
    await admin.goto(`${kanmon.url}${A}/routes/check?user=kanri&url=${encodeURIComponent(`${kanmon.url}/headers`)}`);
    expect(await admin.textContent('#check-decision')).toBe('DENY');
    expect(await admin.textContent('#check-why')).toContain('groups [finance]');
  });

  it('rolls back to the version before, as a new version, and both nodes follow', async () => {
    await admin.goto(`${kanmon.url}${A}/routes/versions/1`);
    await admin.click('#rollback');
    await admin.waitForURL(`${kanmon.url}${A}/routes/versions/3?done=configRolledBack`);
    expect(await admin.textContent('#diff tr[data-path="routes[demo].policy.allowGroups"] .after')).toBe('[]');
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await admin.goto(`${second.url}/headers`))?.status() ?? 0;
    }
    expect(status).toBe(200);
  });

  it('shows every validation error beside its field and saves nothing', async () => {
    await admin.goto(`${kanmon.url}${A}/routes/demo`);
    await admin.fill('#upstream', 'ftp://10.0.0.1');
    await admin.fill('#factors', 'passkey | fingerprint');
    await admin.fill('#idleTimeoutSeconds', 'soon');
    await admin.fill('#rewrite', '{not json');
    const response = admin.waitForResponse((r) => r.url() === `${kanmon.url}${A}/routes/save`);
    await admin.click('#save-route');
    expect((await response).status()).toBe(400);
    expect(await admin.textContent('#rewrite-error')).toContain('must be JSON');
    // JSON is fixed first; then the schema's own errors, each by its field.
    await admin.fill('#rewrite', '');
    await admin.click('#save-route');
    await admin.waitForSelector('#upstream-error');
    expect(await admin.textContent('#upstream-error')).toMatch(/option 'upstream' must be/);
    expect(await admin.textContent('#factors-error')).toMatch(/option 'factors' must be/);
    expect(await admin.textContent('#idleTimeoutSeconds-error')).toMatch(/option 'idleTimeoutSeconds'/);
    expect(await admin.getAttribute('#upstream', 'aria-invalid')).toBe('true');
    expect(await admin.inputValue('#upstream')).toBe('ftp://10.0.0.1');
    expect(await kanmon.app.services.configVersions.currentVersion()).toBe(3);
  });

  it('saves live settings; a refused value is shown by its field', async () => {
    await admin.goto(`${kanmon.url}${A}/settings`);
    expect(await admin.textContent('#file-only')).toContain('sqlite');
    await admin.fill('#loginProtection-maxFailuresPerUser', '0');
    await admin.click('#save-settings');
    await admin.waitForSelector('#loginProtection-maxFailuresPerUser-error');
    expect(await admin.textContent('#loginProtection-maxFailuresPerUser-error')).toMatch(/maxFailuresPerUser/);
    await admin.fill('#loginProtection-maxFailuresPerUser', '3');
    await admin.fill('#session-idleTimeoutSeconds', '900');
    await admin.click('#save-settings');
    await admin.waitForURL(`${kanmon.url}${A}/settings?done=configSaved`);
    expect(await admin.inputValue('#session-idleTimeoutSeconds')).toBe('900');
    expect((await kanmon.app.services.configVersions.effective()).config.loginProtection.maxFailuresPerUser).toBe(3);
  });

  it('imports 1,000 CSV rows: a dry run, then applied, then the same file again changes nothing', async () => {
    await admin.goto(`${kanmon.url}${A}/import`);
    await admin.setInputFiles('#csv-file', { name: 'staff.csv', mimeType: 'text/csv', buffer: Buffer.from(thousandRows(), 'utf8') });
    await admin.waitForFunction(() => (document.getElementById('csv-text') as HTMLTextAreaElement).value.length > 1000);
    await admin.click('#csv-dry-run');
    await admin.waitForSelector('#import-summary');
    expect(await admin.textContent('#summary-create')).toBe('1001');
    expect(await kanmon.app.services.users.get('member0000')).toBeUndefined();
    expect(await admin.textContent('#import-rows tr[data-username="evil"]')).toContain('create');
    expect(await admin.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await admin.click('#import-apply');
    await admin.waitForSelector('#import-state');
    expect(await admin.textContent('#import-state')).toContain('Applied');
    expect(await admin.textContent('#summary-create')).toBe('1001');
    expect((await kanmon.app.services.users.get('member0999'))?.groups).toEqual(['branch5', 'staff']);
    expect((await kanmon.app.services.users.get('evil'))?.displayName).toBe('<script>window.__pwned=1</script>');

    await admin.goto(`${kanmon.url}${A}/import`);
    await admin.setInputFiles('#csv-file', { name: 'staff.csv', mimeType: 'text/csv', buffer: Buffer.from(thousandRows(), 'utf8') });
    await admin.waitForFunction(() => (document.getElementById('csv-text') as HTMLTextAreaElement).value.length > 1000);
    await admin.click('#csv-dry-run');
    await admin.waitForSelector('#import-summary');
    expect(await admin.textContent('#summary-unchanged')).toBe('1001');
    expect(await admin.textContent('#summary-create')).toBe('0');
    expect(await admin.isVisible('#import-nothing')).toBe(true);
    expect(await admin.locator('#import-apply').count()).toBe(0);
  });

  it('refuses a hostile or malformed upload with a 4xx and loses nothing', async () => {
    const csrf = await admin.evaluate(() => JSON.parse(document.querySelector('script[type="application/json"]')!.textContent!).csrf as string);
    const post = (body: string) =>
      admin.evaluate(async ([url, b]) => (await fetch(url!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: b })).status, [`${kanmon.url}${A}/import/csv`, body] as const);
    expect(await post(`_csrf=${csrf}&csv=${encodeURIComponent('name,role\nx,admin\n')}`)).toBe(400);
    expect(await post(`_csrf=${csrf}&csv=`)).toBe(400);
    expect(await post(`_csrf=wrong&csv=${encodeURIComponent('username\nx\n')}`)).toBe(403);
    expect(await post(`_csrf=${csrf}&csv=${'a'.repeat(5 * 1024 * 1024)}`)).toBe(413);
    const apply = await admin.evaluate(async ([url, c]) => (await fetch(url!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `_csrf=${c}&upload=../../etc` })).status, [`${kanmon.url}${A}/import/csv/apply`, csrf] as const);
    expect(apply).toBe(400);
    expect(await kanmon.app.services.users.get('x')).toBeUndefined();
  });

  it('runs an LDAP sync against slapd: a dry run, then applied, with its last result shown', async () => {
    await admin.goto(`${kanmon.url}${A}/import`);
    expect(await admin.textContent('#ldap-last')).toBe('never');
    await admin.click('#ldap-dry-run');
    await admin.waitForSelector('#import-summary');
    expect(await admin.textContent('#summary-create')).toBe('2');
    expect(await kanmon.app.services.users.get('ldap-hanako')).toBeUndefined();
    await admin.click('#import-apply');
    await admin.waitForSelector('#import-state');
    expect(await admin.textContent('#import-state')).toContain('Applied');
    expect((await kanmon.app.services.users.get('ldap-hanako'))?.displayName).toBe('Hanako Yamada');
    await admin.goto(`${kanmon.url}${A}/import`);
    expect(await admin.textContent('#ldap-last')).toContain('kanri');
  });

  it('answers 403 to a non-administrator on every URL of these pages', async () => {
    const user = await kanmon.app.services.users.addUser({ username: 'ippan', actor: 'e2e' });
    const { token } = await kanmon.app.services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 'e2e' });
    const other = await newContext(browser);
    try {
      await other.addCookies([{ name: SESSION_COOKIE, value: token, url: kanmon.url, secure: true, httpOnly: true }]);
      const page = await other.newPage();
      for (const path of [`${A}/routes`, `${A}/routes/new`, `${A}/routes/demo`, `${A}/routes/versions`, `${A}/routes/versions/1`, `${A}/routes/check?user=kanri&url=https://localhost/`, `${A}/settings`, `${A}/import`]) {
        expect((await page.goto(`${kanmon.url}${path}`))?.status(), path).toBe(403);
      }
      for (const path of [`${A}/routes/save`, `${A}/routes/demo/delete`, `${A}/routes/versions/1/rollback`, `${A}/settings`, `${A}/import/csv`, `${A}/import/csv/apply`, `${A}/import/ldap/dry-run`, `${A}/import/ldap/apply`]) {
        const status = await page.evaluate(async (url) => (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'baseVersion=1&csv=username%0Ax' })).status, `${kanmon.url}${path}`);
        expect(status, path).toBe(403);
      }
      expect(await kanmon.app.services.configVersions.currentVersion()).toBe(4);
    } finally {
      await other.close();
    }
  });

  it('renders each page in both languages without console errors (screenshots saved)', async () => {
    const pages: Array<[string, string]> = [
      ['routes', `${A}/routes`],
      ['route-edit', `${A}/routes/demo`],
      ['route-new', `${A}/routes/new`],
      ['versions', `${A}/routes/versions`],
      ['version-diff', `${A}/routes/versions/2`],
      ['check-access', `${A}/routes/check?user=kanri&url=${encodeURIComponent(`${kanmon.url}/`)}`],
      ['settings', `${A}/settings`],
      ['import', `${A}/import`],
    ];
    await tourConsolePages(context, kanmon, pages);
  });
});
