import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor } from '../../support/kanmon-harness.js';
import { enrollmentTokenId } from '../../../runtime/services/enrollment.js';

let h: KanmonHarness;
beforeEach(async () => {
  h = await KanmonHarness.start();
});
afterEach(async () => h?.close());

describe('enrollment links', () => {
  it('enrolls the first administrator from the bootstrap link and signs them in', async () => {
    const link = (await h.app.services.enrollment.createBootstrapLink())!;
    expect(link.url).toBe(`${h.origin}/.kanmon/enroll?token=${link.token}`);
    expect(link.expiresAt - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    const page = await h.get(`/.kanmon/enroll?token=${link.token}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('id="create-passkey"');

    const options = (await h.post('/.kanmon/api/enroll/options', { token: link.token, username: 'Root-Admin', displayName: '管理者' })).json();
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required' });
    const key = softAuthenticatorFor(h);
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register(options), name: 'Laptop' });
    expect(res.status).toBe(200);
    expect(res.json().redirect).toBe('/');
    const cookie = sessionCookieFrom(res)!;
    const headers = (await h.get('/headers', { cookie })).json().headers;
    expect(headers['x-kanmon-user']).toBe('root-admin');
    const user = (await h.app.services.users.require('root-admin'))!;
    expect(user).toMatchObject({ isAdmin: true, displayName: '管理者' });
    expect(await h.app.services.enrollment.createBootstrapLink()).toBeUndefined();
  });

  it('prints a fresh bootstrap link on restart and invalidates the unused one', async () => {
    const first = (await h.app.services.enrollment.createBootstrapLink())!;
    const second = (await h.app.services.enrollment.createBootstrapLink())!;
    expect(second.token).not.toBe(first.token);
    expect((await h.get(`/.kanmon/enroll?token=${first.token}`)).status).toBe(410);
    expect((await h.get(`/.kanmon/enroll?token=${second.token}`)).status).toBe(200);
  });

  it('refuses a used token (one use only), and the page says so', async () => {
    const link = (await h.app.services.enrollment.createBootstrapLink())!;
    const key = softAuthenticatorFor(h);
    const options = (await h.post('/.kanmon/api/enroll/options', { token: link.token })).json();
    expect((await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register(options) })).status).toBe(200);

    const page = await h.get(`/.kanmon/enroll?token=${link.token}`);
    expect(page.status).toBe(410);
    expect(page.text).toContain('already been used');
    const again = await h.post('/.kanmon/api/enroll/options', { token: link.token });
    expect(again.status).toBe(410);
    expect(again.json().error).toBe('token-used');
    const audit = await h.app.services.audit.tail({ limit: 1 });
    expect(audit[0]).toMatchObject({ type: 'enroll', result: 'failure', reason: 'token-used' });
  });

  it('refuses an expired token', async () => {
    const admin = await h.app.services.users.addUser({ username: 'carol' });
    const link = await h.app.services.enrollment.createLink(admin.username, { ttlSeconds: 60 });
    const record = (await h.app.store.enrollmentTokens.get(enrollmentTokenId(link.token)))!;
    // Rewrite the stored expiry into the past (the store keeps no update method for tokens).
    await h.app.store.enrollmentTokens.deleteUnused('enroll', admin.id);
    await h.app.store.enrollmentTokens.create({ ...record, expiresAt: Date.now() - 1000 });
    const page = await h.get(`/.kanmon/enroll?token=${link.token}`, { headers: { 'accept-language': 'ja' } });
    expect(page.status).toBe(410);
    expect(page.text).toContain('有効期限が切れています');
    expect((await h.post('/.kanmon/api/enroll/options', { token: link.token })).json().error).toBe('token-expired');
  });

  it.each(['', 'nonsense', 'A'.repeat(43), 'A'.repeat(5000), '../../etc/passwd'])('refuses an unknown token %j', async (token) => {
    const res = await h.get(`/.kanmon/enroll?token=${encodeURIComponent(token)}`);
    expect(res.status).toBe(410);
    expect((await h.post('/.kanmon/api/enroll/options', { token })).status).toBe(410);
    expect((await h.post('/.kanmon/api/enroll/verify', { token, response: {} })).status).toBe(410);
  });

  it('enrolls an existing user from an admin-made link, bound to that user', async () => {
    await h.app.services.users.addUser({ username: 'dave', groups: ['sales'] });
    const link = await h.app.services.enrollment.createLink('dave');
    const options = (await h.post('/.kanmon/api/enroll/options', { token: link.token, username: 'mallory' })).json();
    expect(options.user.name).toBe('dave');
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: softAuthenticatorFor(h).register(options), name: 'Phone' });
    expect(res.status).toBe(200);
    const headers = (await h.get('/headers', { cookie: sessionCookieFrom(res)! })).json().headers;
    expect(headers['x-kanmon-user']).toBe('dave');
    expect(headers['x-kanmon-groups']).toBe('sales');
  });

  it('does not let a registration response for one link complete another', async () => {
    await h.app.services.users.addUser({ username: 'erin' });
    await h.app.services.users.addUser({ username: 'frank' });
    const linkE = await h.app.services.enrollment.createLink('erin');
    const linkF = await h.app.services.enrollment.createLink('frank');
    const optionsE = (await h.post('/.kanmon/api/enroll/options', { token: linkE.token })).json();
    const res = await h.post('/.kanmon/api/enroll/verify', { token: linkF.token, response: softAuthenticatorFor(h).register(optionsE) });
    expect(res.status).toBe(400);
    // Frank's link is still good.
    expect((await h.get(`/.kanmon/enroll?token=${linkF.token}`)).status).toBe(200);
  });
});
