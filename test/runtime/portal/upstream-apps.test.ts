/**
 * The self-service page for application sign-in details (/.kanmon/account/apps): stores
 * sealed credentials, and refuses cross-site, forged, replayed, oversized and foreign posts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness, type HttpAnswer } from '../../support/kanmon-harness.js';
import { LEGACY_ROUTES } from '../../support/legacy-routes.js';
import type { User } from '../../../runtime/store/types.js';

const PAYROLL = {
  id: 'payroll',
  match: { pathPrefix: '/payroll' },
  upstream: 'demo',
  policy: { allowUsers: ['boss'] },
  upstreamAuth: { kind: 'form' as const, loginUrl: '/legacy/login' },
};
const FORM = 'application/x-www-form-urlencoded';

function tokenOf(page: HttpAnswer, route: string): string {
  const section = page.text.slice(page.text.indexOf(`data-route="${route}"`));
  return /name="token" value="([^"]+)"/.exec(section)![1]!;
}

describe('application sign-in details page', () => {
  let h: KanmonHarness;
  let user: User;
  let cookie: string;
  beforeAll(async () => {
    h = await KanmonHarness.start({ routes: [...LEGACY_ROUTES, PAYROLL] });
    user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
    cookie = await h.sessionCookie(user);
  });
  afterAll(async () => h?.close());

  const save = (fields: Record<string, string>, opts: { origin?: string | null; cookie?: string } = {}) =>
    h.post('/.kanmon/account/apps/save', undefined, { cookie: opts.cookie ?? cookie, raw: new URLSearchParams(fields).toString(), contentType: FORM, ...(opts.origin !== undefined ? { origin: opts.origin } : {}) });

  it('lists only the applications this user may use, linked from the account page', async () => {
    const account = await h.get('/.kanmon/account', { cookie });
    expect(account.text).toContain('href="/.kanmon/account/apps"');
    const page = await h.get('/.kanmon/account/apps?route=legacy&return=%2Flegacy%2F', { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('data-route="legacy"');
    expect(page.text).not.toContain('data-route="payroll"');
    // The user name comes from the template: only the password is asked for.
    expect(page.text).not.toContain('name="username"');
    expect(page.text).toContain('class="message app-focus"');
  });

  it('saves, goes back to the application, and never shows the password again', async () => {
    const page = await h.get('/.kanmon/account/apps?route=legacy&return=%2Flegacy%2F', { cookie });
    const res = await save({ route: 'legacy', token: tokenOf(page, 'legacy'), password: 'secret-1', return: '/legacy/' });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/legacy/');
    const after = await h.get('/.kanmon/account/apps', { cookie });
    expect(after.text).toContain('data-state="stored"');
    expect(after.text).not.toContain('secret-1');
    const stored = await h.app.store.documents.list('upstream-auth-credential', { now: Date.now() });
    expect(stored.documents.map((d) => d.body).join()).not.toContain('secret-1');
    const audit = await h.app.services.audit.tail({ limit: 10, userId: user.id });
    expect(audit.some((e) => e.type === 'upstream.credentials.set' && e.result === 'success')).toBe(true);
    expect(JSON.stringify(audit)).not.toContain('secret-1');
  });

  it('refuses a cross-site post (no Origin, or another origin)', async () => {
    const page = await h.get('/.kanmon/account/apps', { cookie });
    const token = tokenOf(page, 'legacy');
    expect((await save({ route: 'legacy', token, password: 'x' }, { origin: null })).status).toBe(403);
    expect((await save({ route: 'legacy', token, password: 'x' }, { origin: 'https://evil.example' })).status).toBe(403);
  });

  it('refuses a replayed post and a forged token', async () => {
    const page = await h.get('/.kanmon/account/apps', { cookie });
    const fields = { route: 'legacy', token: tokenOf(page, 'legacy'), password: 'secret-2' };
    expect((await save(fields)).status).toBe(303);
    const replay = await save({ ...fields, password: 'attacker' });
    expect(replay.status).toBe(409);
    expect((await save({ route: 'legacy', token: 'A'.repeat(32), password: 'attacker' })).status).toBe(409);
    expect((await save({ route: 'legacy', password: 'attacker' })).status).toBe(409);
  });

  it("refuses another session's token", async () => {
    const otherCookie = await h.sessionCookie(user);
    const page = await h.get('/.kanmon/account/apps', { cookie: otherCookie });
    expect((await save({ route: 'legacy', token: tokenOf(page, 'legacy'), password: 'x' })).status).toBe(409);
  });

  it("refuses a route the user may not use, and one that does not exist, alike", async () => {
    const page = await h.get('/.kanmon/account/apps', { cookie });
    const token = tokenOf(page, 'legacy');
    const foreign = await save({ route: 'payroll', token, password: 'x' });
    const unknown = await save({ route: 'nope', token, password: 'x' });
    expect(foreign.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(foreign.json().error).toBe(unknown.json().error);
  });

  it('refuses oversized and control-character values with a 400 page, and an oversized body with 413', async () => {
    let page = await h.get('/.kanmon/account/apps', { cookie });
    const long = await save({ route: 'legacy', token: tokenOf(page, 'legacy'), password: 'p'.repeat(1025) });
    expect(long.status).toBe(400);
    expect(long.text).toContain('id="apps-notice"');
    page = await h.get('/.kanmon/account/apps', { cookie });
    const broken = await save({ route: 'legacy', token: tokenOf(page, 'legacy'), password: 'a\r\nX-Injected: 1' });
    expect(broken.status).toBe(400);
    page = await h.get('/.kanmon/account/apps', { cookie });
    const huge = await save({ route: 'legacy', token: tokenOf(page, 'legacy'), password: 'p'.repeat(200_000) });
    expect(huge.status).toBe(413);
  });

  it('needs a session: the page redirects to login, a post is 401', async () => {
    const page = await h.get('/.kanmon/account/apps');
    expect(page.status).toBe(302);
    expect(page.headers.location).toContain('/.kanmon/login?return=');
    const post = await h.post('/.kanmon/account/apps/save', undefined, { raw: 'route=legacy&password=x', contentType: FORM });
    expect(post.status).toBe(401);
  });

  it('removes stored details', async () => {
    const page = await h.get('/.kanmon/account/apps', { cookie });
    const res = await h.post('/.kanmon/account/apps/remove', undefined, { cookie, raw: new URLSearchParams({ route: 'legacy', token: tokenOf(page, 'legacy') }).toString(), contentType: FORM });
    expect(res.status).toBe(303);
    const after = await h.get('/.kanmon/account/apps', { cookie });
    expect(after.text).toContain('data-state="missing"');
  });
});
