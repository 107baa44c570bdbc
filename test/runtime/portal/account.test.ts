import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor } from '../../support/kanmon-harness.js';
import type { SoftAuthenticator } from '../../support/soft-authenticator.js';

let h: KanmonHarness;
let key: SoftAuthenticator;
let cookie: string;

beforeAll(async () => {
  h = await KanmonHarness.start();
  key = softAuthenticatorFor(h, { backupEligible: true, backedUp: true, aaguid: 'ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4' });
  ({ cookie } = await h.enrollAdmin(key));
});
afterAll(async () => h?.close());

describe('account self-service', () => {
  it('lists own passkeys with synced/device-bound kind and the authenticator name', async () => {
    const page = await h.get('/.kanmon/account', { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('test key');
    expect(page.text).toContain('Synced passkey');
    expect(page.text).toContain('Google Password Manager');
  });

  it('sends a signed-out visitor to the login page', async () => {
    const res = await h.get('/.kanmon/account');
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/.kanmon/login?return=%2F.kanmon%2Faccount');
    expect((await h.post('/.kanmon/api/account/passkeys/options', {})).status).toBe(401);
  });

  it('refuses to delete the last passkey while no other factor exists', async () => {
    const [cred] = await h.app.store.credentials.listByUser((await h.app.services.users.require('admin')).id);
    const res = await h.post('/.kanmon/api/account/passkeys/delete', { id: cred!.id }, { cookie });
    expect(res.status).toBe(409);
    expect(res.json().error).toBe('last-factor');
  });

  it('adds a second, device-bound passkey, logs in with it, renames and deletes the first', async () => {
    const usb = softAuthenticatorFor(h, { backupEligible: false, attachment: 'cross-platform', transports: ['usb'] });
    const options = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    expect(options.excludeCredentials).toHaveLength(1);
    const add = await h.post('/.kanmon/api/account/passkeys/verify', { response: usb.register(options), name: 'USB key <b>' }, { cookie });
    expect(add.status).toBe(200);

    const login = (await h.post('/.kanmon/api/login/options', {})).json();
    const res = await h.post('/.kanmon/api/login/verify', { response: usb.authenticate(login) });
    expect(res.status).toBe(200);
    const usbCookie = sessionCookieFrom(res)!;

    const page = await h.get('/.kanmon/account', { cookie: usbCookie });
    expect(page.text).toContain('USB key &lt;b&gt;');
    expect(page.text).toContain('Device-bound');

    const creds = await h.app.store.credentials.listByUser((await h.app.services.users.require('admin')).id);
    const first = creds.find((c) => c.name === 'test key')!;
    expect((await h.post('/.kanmon/api/account/passkeys/rename', { id: first.id, name: 'Old phone' }, { cookie: usbCookie })).status).toBe(200);
    expect((await h.app.store.credentials.get(first.id))!.name).toBe('Old phone');
    expect((await h.post('/.kanmon/api/account/passkeys/delete', { id: first.id }, { cookie: usbCookie })).status).toBe(200);
    expect(await h.app.store.credentials.get(first.id)).toBeUndefined();
  });

  it("cannot touch another user's passkey", async () => {
    const bob = await h.app.services.users.addUser({ username: 'bob' });
    const bobCookie = await h.sessionCookie(bob);
    const [adminCred] = await h.app.store.credentials.listByUser((await h.app.services.users.require('admin')).id);
    expect((await h.post('/.kanmon/api/account/passkeys/rename', { id: adminCred!.id, name: 'pwned' }, { cookie: bobCookie })).status).toBe(404);
    expect((await h.post('/.kanmon/api/account/passkeys/delete', { id: adminCred!.id }, { cookie: bobCookie })).status).toBe(404);
    expect((await h.post('/.kanmon/api/account/passkeys/delete', { id: { $ne: 1 } }, { cookie: bobCookie })).status).toBe(404);
  });

  it('signs out the other sessions and keeps this one', async () => {
    const admin = await h.app.services.users.require('admin');
    const other = await h.sessionCookie(admin);
    const current = await h.sessionCookie(admin);
    const res = await h.post('/.kanmon/api/account/sessions/revoke-others', {}, { cookie: current });
    expect(res.status).toBe(200);
    h.app.services.sessions.clearCache();
    expect((await h.get('/headers', { cookie: other, headers: { accept: 'text/html' } })).status).toBe(302);
    expect((await h.get('/headers', { cookie: current })).status).toBe(200);
  });

  it('signs out: the cookie is cleared and the session ends', async () => {
    const admin = await h.app.services.users.require('admin');
    const c = await h.sessionCookie(admin);
    const res = await h.post('/.kanmon/logout', undefined, { cookie: c, raw: '', contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/.kanmon/signed-out');
    expect(String(res.headers['set-cookie'])).toContain('Max-Age=0');
    expect((await h.get('/headers', { cookie: c, headers: { accept: 'text/html' } })).status).toBe(302);
  });

  it('escapes a hostile display name on every page it appears', async () => {
    const x = await h.app.services.users.addUser({ username: 'xss', displayName: '<script>alert(1)</script>' });
    const page = await h.get('/.kanmon/account', { cookie: await h.sessionCookie(x) });
    expect(page.text).not.toContain('<script>alert(1)</script>');
    expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });
});
