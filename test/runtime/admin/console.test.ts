/**
 * The administrator's console over real HTTPS against a real Kanmon (SQLite, TLS, the software
 * authenticator for passkey ceremonies): who may enter, CSRF, cross-site posts, re-authentication
 * for sensitive actions, audit with before/after, escaping, and hostile input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KanmonConfigInput } from '../../../runtime/config/schema.js';
import type { User } from '../../../runtime/store/types.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor, type HttpAnswer } from '../../support/kanmon-harness.js';
import type { SoftAuthenticator } from '../../support/soft-authenticator.js';

const A = '/.kanmon/admin';

/** Every console page (GET) and every console action/API (POST) there is. */
const PAGES = [A, `${A}/users`, `${A}/users/new`, `${A}/users/admin`, `${A}/users/by-id/x`, `${A}/enrollment`, `${A}/certificates`, `${A}/certificates/crl`, `${A}/audit`, `${A}/audit/export.csv`, `${A}/sessions`, `${A}/reauth`, `${A}/no-such-page`];
const POSTS = [
  `${A}/users`,
  ...['edit', 'disable', 'enable', 'unlock', 'totp-reset', 'recovery-reset', 'passkeys/delete', 'sessions/revoke', 'certificates/revoke', 'enroll-link', 'letter'].map((x) => `${A}/users/admin/${x}`),
  `${A}/enrollment/letters`,
  `${A}/enrollment/links`,
  `${A}/certificates/issue`,
  `${A}/certificates/bulk`,
  `${A}/certificates/revoke`,
  `${A}/certificates/delete`,
  `${A}/sessions/revoke`,
  `${A}/api/reauth/options`,
  `${A}/api/reauth/verify`,
  `${A}/no-such-action`,
];

function form(fields: Record<string, string>): { raw: string; contentType: string } {
  return { raw: new URLSearchParams(fields).toString(), contentType: 'application/x-www-form-urlencoded' };
}

function csrfOf(page: HttpAnswer): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(page.text) ?? /"csrf":"([^"]+)"/.exec(page.text);
  if (!m) throw new Error(`no CSRF token on the page (status ${page.status})`);
  return m[1]!;
}

/** The console against each store: SQLite, and DynamoDB Local (the console's state lives in named documents). */
function describeConsole(storeName: string, storeConfig: () => Promise<KanmonConfigInput>): void {
describe(`administrator console (${storeName})`, () => {
  let h: KanmonHarness;
  let key: SoftAuthenticator;
  let adminCookie: string;
  let admin: User;
  let bobCookie: string;
  let csrf: string;

  beforeAll(async () => {
    h = await KanmonHarness.start({ admin: { reauthSeconds: 600 }, ...(await storeConfig()) });
    key = softAuthenticatorFor(h);
    ({ cookie: adminCookie, user: admin } = await h.enrollAdmin(key));
    const bob = await h.app.services.users.addUser({ username: 'bob', actor: 'test' });
    bobCookie = await h.sessionCookie(bob);
    csrf = csrfOf(await h.get(`${A}/users/new`, { cookie: adminCookie }));
  });

  afterAll(async () => {
    await h?.close();
  });

  async function reauthenticate(): Promise<void> {
    const options = await h.post(`${A}/api/reauth/options`, {}, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } });
    expect(options.status).toBe(200);
    const res = await h.post(`${A}/api/reauth/verify`, { response: key.authenticate(options.json()), returnTo: `${A}/users` }, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } });
    expect(res.status).toBe(200);
    expect(res.json().redirect).toBe(`${A}/users`);
  }

  it('sends a visitor without a session to the login page, and answers 401 to posts', async () => {
    for (const path of PAGES) {
      const res = await h.get(path);
      expect(res.status, path).toBe(302);
      expect(res.headers.location).toBe(`/.kanmon/login?return=${encodeURIComponent(path)}`);
    }
    for (const path of POSTS) expect((await h.post(path, {})).status, path).toBe(401);
  });

  it('answers 403 to a signed-in non-administrator on every console URL and API', async () => {
    for (const path of PAGES) expect((await h.get(path, { cookie: bobCookie })).status, path).toBe(403);
    for (const path of POSTS) expect((await h.post(path, undefined, { cookie: bobCookie, ...form({ _csrf: csrf, username: 'x' }) })).status, path).toBe(403);
    for (const path of POSTS) expect((await h.post(path, {}, { cookie: bobCookie, headers: { 'x-kanmon-csrf': csrf } })).status, path).toBe(403);
    const events = await h.app.services.audit.tail({ limit: 500 });
    expect(events.filter((e) => e.type === 'admin.access' && e.reason === 'not-admin' && e.username === 'bob').length).toBeGreaterThanOrEqual(PAGES.length + 2 * POSTS.length);
  });

  it('refuses an administrator whose session was not signed in with a passkey', async () => {
    const otpOnly = await h.sessionCookie(admin, ['otp']);
    const res = await h.get(A, { cookie: otpOnly });
    expect(res.status).toBe(403);
    expect(res.text).toContain('passkey');
  });

  it('serves every page to an administrator, with a CSP that allows no inline script', async () => {
    for (const path of [A, `${A}/users`, `${A}/users/new`, `${A}/users/admin`, `${A}/enrollment`, `${A}/certificates`, `${A}/audit`, `${A}/sessions`, `${A}/reauth`]) {
      const res = await h.get(path, { cookie: adminCookie });
      expect(res.status, path).toBe(200);
      expect(String(res.headers['content-security-policy'])).toContain("script-src 'self';");
      expect(res.text).not.toMatch(/<script>(?!<)/);
      expect(res.text).not.toMatch(/ on[a-z]+="/);
    }
    expect((await h.get(`${A}/no-such-page`, { cookie: adminCookie })).status).toBe(404);
    const crl = await h.get(`${A}/certificates/crl`, { cookie: adminCookie });
    expect(crl.status).toBe(200);
    expect(crl.headers['content-type']).toBe('application/pkix-crl');
  });

  it("shows on the dashboard how many days the node's server certificate has left", async () => {
    const notAfter = h.app.serverCertificate?.notAfter;
    expect(notAfter).toBeInstanceOf(Date);
    const page = await h.get(A, { cookie: adminCookie });
    const shown = /<dd id="server-cert-days">(\d+) /.exec(page.text);
    expect(shown, 'the tile names a number of days').not.toBeNull();
    const expected = Math.floor((notAfter!.getTime() - Date.now()) / 86_400_000);
    // The page was rendered a moment before `expected` was worked out: a day boundary may lie between.
    expect([expected, expected + 1]).toContain(Number(shown![1]));
  });

  it('refuses a form without the CSRF token or with a wrong one, and changes nothing', async () => {
    expect((await h.post(`${A}/users`, undefined, { cookie: adminCookie, ...form({ username: 'nocsrf' }) })).status).toBe(403);
    expect((await h.post(`${A}/users`, undefined, { cookie: adminCookie, ...form({ username: 'nocsrf', _csrf: 'A'.repeat(43) }) })).status).toBe(403);
    // Another session's token does not work either.
    const otherCsrf = csrfOf(await h.get(`${A}/users/new`, { cookie: await h.sessionCookie(admin) }));
    expect((await h.post(`${A}/users`, undefined, { cookie: adminCookie, ...form({ username: 'nocsrf', _csrf: otherCsrf }) })).status).toBe(403);
    expect((await h.post(`${A}/api/reauth/options`, {}, { cookie: adminCookie })).status).toBe(403);
    expect(await h.app.services.users.get('nocsrf')).toBeUndefined();
    const events = await h.app.services.audit.tail({ limit: 50 });
    expect(events.some((e) => e.type === 'admin.csrf' && e.reason === 'csrf-missing')).toBe(true);
    expect(events.some((e) => e.type === 'admin.csrf' && e.reason === 'csrf-mismatch')).toBe(true);
  });

  it('refuses a cross-site form post even with a valid token', async () => {
    const res = await h.post(`${A}/users`, undefined, { cookie: adminCookie, origin: 'https://evil.example', ...form({ username: 'crosssite', _csrf: csrf }) });
    expect(res.status).toBe(403);
    const noOrigin = await h.post(`${A}/users`, undefined, { cookie: adminCookie, origin: null, ...form({ username: 'crosssite', _csrf: csrf }) });
    expect(noOrigin.status).toBe(403);
    const siteHeader = await h.post(`${A}/users`, undefined, { cookie: adminCookie, headers: { 'sec-fetch-site': 'cross-site' }, ...form({ username: 'crosssite', _csrf: csrf }) });
    expect(siteHeader.status).toBe(403);
    expect(await h.app.services.users.get('crosssite')).toBeUndefined();
  });

  it('creates a user, and audits it with the state before and after', async () => {
    const res = await h.post(`${A}/users`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, username: 'carol', displayName: 'Carol', groups: 'sales, ops' }) });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`${A}/users/carol?done=userCreated`);
    const carol = await h.app.services.users.require('carol');
    expect(carol.groups).toEqual(['sales', 'ops']);
    const edit = await h.post(`${A}/users/carol/edit`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, displayName: 'Carol Ito', groups: 'sales' }) });
    expect(edit.status).toBe(303);
    const events = await h.app.services.audit.tail({ limit: 20 });
    const change = events.find((e) => e.type === 'admin.user.edit')!;
    expect(change.actor).toBe('admin');
    expect(change.details).toMatchObject({ before: { displayName: 'Carol', groups: ['sales', 'ops'] }, after: { displayName: 'Carol Ito', groups: ['sales'] } });
    expect(events.find((e) => e.type === 'admin.user.add')!.details).toMatchObject({ before: null, after: { displayName: 'Carol', isAdmin: false } });
  });

  it('demands a fresh passkey before creating an administrator, exporting, revoking a certificate or a bulk operation', async () => {
    const tries = [
      () => h.post(`${A}/users`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, username: 'dave', isAdmin: 'on', _back: `${A}/users/new` }) }),
      () => h.get(`${A}/audit/export.csv?result=failure`, { cookie: adminCookie }),
      () => h.post(`${A}/certificates/revoke`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, serial: '01' }) }),
      () => h.post(`${A}/certificates/bulk`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, action: 'revoke', usernames: 'carol' }) }),
      () => h.post(`${A}/enrollment/letters`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, usernames: 'carol' }) }),
    ];
    for (const attempt of tries) {
      const res = await attempt();
      expect(res.status).toBe(303);
      expect(String(res.headers.location)).toMatch(/^\/\.kanmon\/admin\/reauth\?return=/);
    }
    expect(await h.app.services.users.get('dave')).toBeUndefined();

    await reauthenticate();
    const created = await tries[0]!();
    expect(created.status).toBe(303);
    expect((await h.app.services.users.require('dave')).isAdmin).toBe(true);
    const csv = await tries[1]!();
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.text).toContain('admin.reauth-required');
    const zip = await tries[4]!();
    expect(zip.status).toBe(200);
    expect(zip.headers['content-type']).toBe('application/zip');
    // Links for many users, each with its one-time code; an unknown name stops the batch before any link.
    const before = (await h.app.services.audit.tail({ limit: 200 })).filter((e) => e.type === 'enroll.link').length;
    const unknown = await h.post(`${A}/enrollment/links`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, usernames: 'carol\nnobody' }) });
    expect(unknown.status).toBe(404);
    expect((await h.app.services.audit.tail({ limit: 200 })).filter((e) => e.type === 'enroll.link').length).toBe(before);
    const links = await h.post(`${A}/enrollment/links`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, usernames: 'carol\ndave', code: 'on' }) });
    expect(links.status).toBe(200);
    expect(links.text.match(/\/\.kanmon\/enroll\?token=/g)).toHaveLength(2);
    expect(links.text.match(/<strong>\d{4} \d{4}<\/strong>/g)).toHaveLength(2);
    const types = (await h.app.services.audit.tail({ limit: 100 })).map((e) => e.type);
    expect(types).toContain('admin.enroll-links');
    expect(types).toContain('admin.reauth');
    expect(types).toContain('admin.audit.export');
  });

  it("counts an administrator's passkey sign-in as a fresh confirmation", async () => {
    const options = (await h.post('/.kanmon/api/login/options', {})).json();
    const login = await h.post('/.kanmon/api/login/verify', { response: key.authenticate(options) });
    expect(login.status).toBe(200);
    const cookie = sessionCookieFrom(login)!;
    const token = csrfOf(await h.get(`${A}/users/new`, { cookie }));
    const res = await h.post(`${A}/users`, undefined, { cookie, ...form({ _csrf: token, username: 'frank', isAdmin: 'on' }) });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`${A}/users/frank?done=userCreated`);
    expect((await h.app.services.users.require('frank')).isAdmin).toBe(true);
    // An OTP sign-in is not a passkey: the same action from such a session is refused outright.
    const otp = await h.sessionCookie(admin, ['otp']);
    expect((await h.post(`${A}/users`, undefined, { cookie: otp, ...form({ _csrf: token, username: 'grace', isAdmin: 'on' }) })).status).toBe(403);
  });

  it('refuses a replayed or foreign re-authentication assertion', async () => {
    const options = (await h.post(`${A}/api/reauth/options`, {}, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } })).json();
    const response = key.authenticate(options);
    expect((await h.post(`${A}/api/reauth/verify`, { response }, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } })).status).toBe(200);
    expect((await h.post(`${A}/api/reauth/verify`, { response }, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } })).status).toBe(400);
    expect((await h.post(`${A}/api/reauth/verify`, { response: { id: 'x'.repeat(5000) } }, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } })).status).toBe(400);
    expect((await h.post(`${A}/api/reauth/verify`, undefined, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf }, raw: '[1,2', contentType: 'application/json' })).status).toBe(400);
    const failures = (await h.app.services.audit.tail({ limit: 20 })).filter((e) => e.type === 'admin.reauth' && e.result === 'failure');
    expect(failures.length).toBeGreaterThanOrEqual(2);
  });

  it('shows a display name holding <script> escaped on every page', async () => {
    const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    const mallory = await h.app.services.users.addUser({ username: 'mallory', displayName: evil, actor: 'test' });
    await h.sessionCookie(mallory);
    await h.post(`${A}/users/mallory/edit`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, displayName: `${evil}!`, groups: '' }) });
    for (const path of [`${A}/users`, `${A}/users?q=mallory`, `${A}/users/mallory`, `${A}/sessions`, `${A}/audit`, `${A}/audit?user=mallory`]) {
      const res = await h.get(path, { cookie: adminCookie });
      expect(res.status, path).toBe(200);
      expect(res.text, path).not.toContain('<script>alert');
      expect(res.text, path).not.toContain('<img src=x');
      expect(res.text, path).toMatch(/&lt;script&gt;alert\(1\)&lt;\/script&gt;|\\u003cscript>alert/);
    }
  });

  it('answers bad input with a 4xx and changes nothing', async () => {
    const post = (path: string, fields: Record<string, string>) => h.post(path, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, ...fields }) });
    const invalid = await post(`${A}/users`, { username: 'Not Valid!' });
    expect(invalid.status).toBe(400);
    // A form gets a console page in its language, not a JSON answer.
    expect(invalid.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(invalid.text).toContain('The input was not accepted');
    const ja = await h.post(`${A}/users?lang=ja`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, username: 'Not Valid!' }) });
    expect(ja.text).toContain('入力内容を受け付けられませんでした');
    expect((await post(`${A}/users`, { username: 'x'.repeat(300) })).status).toBe(400);
    const noToken = await h.post(`${A}/users`, undefined, { cookie: adminCookie, ...form({ username: 'erin' }) });
    expect(noToken.status).toBe(403);
    expect(noToken.headers['content-type']).toBe('text/html; charset=utf-8');
    expect((await post(`${A}/users`, { username: 'erin', displayName: 'y'.repeat(5000) })).status).toBe(400);
    expect((await post(`${A}/users`, {})).status).toBe(400);
    expect((await post(`${A}/users`, { username: 'carol' })).status).toBe(409);
    expect((await post(`${A}/users/nobody/disable`, {})).status).toBe(404);
    expect((await post(`${A}/users/admin/disable`, {})).status).toBe(403);
    expect((await post(`${A}/sessions/revoke`, { id: 'short' })).status).toBe(400);
    expect((await post(`${A}/sessions/revoke`, { id: 'A'.repeat(43) })).status).toBe(404);
    expect((await post(`${A}/users/carol/passkeys/delete`, { id: 'nope' })).status).toBe(404);
    expect((await post(`${A}/certificates/bulk`, { action: 'explode', usernames: 'carol' })).status).toBe(400);
    expect((await post(`${A}/certificates/issue`, {})).status).toBe(400);
    expect((await h.get(`${A}/users?q=a&cursor=bad`, { cookie: adminCookie })).status).toBe(400);
    expect((await h.get(`${A}/audit?from=yesterday`, { cookie: adminCookie })).status).toBe(400);
    expect((await h.get(`${A}/audit?result=maybe`, { cookie: adminCookie })).status).toBe(400);
    expect((await h.get(`${A}/users/nobody`, { cookie: adminCookie })).status).toBe(404);
    const huge = await h.post(`${A}/users`, undefined, { cookie: adminCookie, raw: `_csrf=${csrf}&username=${'z'.repeat(2_000_000)}`, contentType: 'application/x-www-form-urlencoded' });
    expect(huge.status).toBe(413);
    expect(await h.app.services.users.get('erin')).toBeUndefined();
    expect((await h.app.services.users.require('admin')).disabled).toBe(false);
  });

  it('revokes any session from the sessions page, and the session stops working', async () => {
    const carol = await h.app.services.users.require('carol');
    const carolCookie = await h.sessionCookie(carol);
    const page = await h.get(`${A}/sessions`, { cookie: adminCookie });
    const sessions = await h.app.services.sessions.listForUser(carol.id);
    expect(page.text).toContain(sessions[0]!.id);
    const res = await h.post(`${A}/sessions/revoke`, undefined, { cookie: adminCookie, ...form({ _csrf: csrf, id: sessions[0]!.id }) });
    expect(res.status).toBe(303);
    h.app.services.sessions.clearCache();
    expect(await h.app.services.sessions.resolve(carolCookie.split('=')[1])).toBeUndefined();
  });
});
}

let dynamo: DynamoDbLocal | undefined;
afterAll(async () => {
  await dynamo?.stop();
});

describeConsole('sqlite', async () => ({}));
describeConsole('dynamodb', async () => {
  dynamo = await startDynamoDbLocal();
  const table = await freshTable(dynamo.endpoint, 'kanmon-console');
  return { store: { kind: 'dynamodb', table, endpoint: dynamo.endpoint } };
});
