/**
 * Upstream sign-in against the demo groupware's legacy area, through a real Kanmon with real
 * TLS and SQLite: form login done server-side, the jar reused, Set-Cookie kept from the
 * browser, HTTP Basic injected, refused passwords marked and never retried, Kanmon sign-out
 * signing out of the legacy app.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import type { User } from '../../../runtime/store/types.js';
import { LEGACY_DEMO_PASSWORD } from '../../../runtime/demo/legacy.js';
import { LEGACY_ROUTES } from '../../support/legacy-routes.js';

const CLI = { actor: 'test' };

describe('upstream sign-in to the demo legacy area', () => {
  let h: KanmonHarness;
  let user: User;
  let other: User;
  beforeAll(async () => {
    h = await KanmonHarness.start({ routes: LEGACY_ROUTES });
    user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
    other = await h.app.services.users.addUser({ username: 'jiro', groups: [], actor: 'test' });
  });
  afterAll(async () => h?.close());

  const legacyRoute = () => h.app.services.upstreamCredentials.route('legacy');
  const stats = () => h.app.demo!.legacy.stats;

  it('sends a page load without stored credentials to the credentials page, and back afterwards', async () => {
    const cookie = await h.sessionCookie(other);
    const res = await h.get('/legacy/', { cookie, headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/.kanmon/account/apps?route=legacy&return=${encodeURIComponent('/legacy/')}`);
    const api = await h.get('/legacy/', { cookie, headers: { accept: 'application/json' } });
    expect(api.status).toBe(403);
  });

  it('signs in to the legacy form server-side, reuses the jar, and never hands the upstream cookie to the browser', async () => {
    await h.app.services.upstreamCredentials.set(legacyRoute(), { kind: 'user', userId: user.id }, { secret: LEGACY_DEMO_PASSWORD }, CLI);
    const cookie = await h.sessionCookie(user);
    const before = stats().signIns;
    const first = await h.get('/legacy/', { cookie });
    expect(first.status).toBe(200);
    expect(first.text).toContain('<strong id="legacy-user">hanako</strong>');
    expect(first.text).not.toContain('name="password"');
    expect(first.headers['set-cookie']).toBeUndefined();
    const session = /id="legacy-session">([0-9a-f]+)</.exec(first.text)![1];

    const second = await h.get('/legacy/', { cookie });
    expect(second.text).toContain(`id="legacy-session">${session}<`);
    expect(second.text).toMatch(/id="legacy-views">2</);
    expect(stats().signIns).toBe(before + 1);
  });

  it('keeps each Kanmon session its own upstream session', async () => {
    const a = await h.sessionCookie(user);
    const b = await h.sessionCookie(user);
    const pa = await h.get('/legacy/', { cookie: a });
    const pb = await h.get('/legacy/', { cookie: b });
    const idOf = (t: string) => /id="legacy-session">([0-9a-f]+)</.exec(t)![1];
    expect(idOf(pa.text)).not.toBe(idOf(pb.text));
  });

  it('signs in again and replays a GET when the upstream session ended', async () => {
    const cookie = await h.sessionCookie(user);
    await h.get('/legacy/', { cookie });
    const signIns = stats().signIns;
    // As after a restart of the legacy app: the jar's session id is no longer known there.
    h.app.demo!.legacy.endAllSessions();
    const again = await h.get('/legacy/notes', { cookie });
    expect(again.status).toBe(200);
    expect(again.text).toContain('id="legacy-notes"');
    expect(stats().signIns).toBe(signIns + 1);
  });

  it('answers a POST that met an ended upstream session with a 307, so the browser sends it again', async () => {
    const cookie = await h.sessionCookie(user);
    await h.get('/legacy/', { cookie });
    h.app.demo!.legacy.endAllSessions();
    const posted = await h.post('/legacy/notes', undefined, { cookie, raw: 'note=first', contentType: 'application/x-www-form-urlencoded' });
    expect(posted.status).toBe(307);
    expect(posted.headers.location).toBe('/legacy/notes');
    const resent = await h.post('/legacy/notes', undefined, { cookie, raw: 'note=first', contentType: 'application/x-www-form-urlencoded' });
    expect(resent.status).toBe(200);
    expect(resent.text).toContain('<li>first</li>');
  });

  it("the app's own logout link ends the upstream session, and its login page is never shown", async () => {
    const cookie = await h.sessionCookie(user);
    const first = await h.get('/legacy/', { cookie });
    const idOf = (t: string) => /id="legacy-session">([0-9a-f]+)</.exec(t)![1];
    const out = await h.get('/legacy/logout', { cookie });
    expect(out.status).toBe(302);
    expect(out.headers.location).toBe('/legacy/login');
    const login = await h.get('/legacy/login', { cookie });
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('/legacy/');
    const after = await h.get('/legacy/', { cookie });
    expect(after.status).toBe(200);
    expect(idOf(after.text)).not.toBe(idOf(first.text));
  });

  it('injects HTTP Basic from the same credential set', async () => {
    const cookie = await h.sessionCookie(user);
    const res = await h.get('/legacy/basic/', { cookie });
    expect(res.status).toBe(200);
    expect(res.text).toContain('<strong id="basic-user">hanako</strong>');
  });

  it('marks a refused password, shows why, and does not try it again until it is replaced', async () => {
    const route = legacyRoute();
    await h.app.services.upstreamCredentials.set(route, { kind: 'user', userId: other.id }, { secret: 'wrong' }, CLI);
    const cookie = await h.sessionCookie(other);
    const refusedBefore = stats().refusedSignIns;
    const res = await h.get('/legacy/', { cookie, headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
    expect(res.status).toBe(303);
    expect(res.headers.location).toContain('/.kanmon/account/apps?route=legacy');
    expect(stats().refusedSignIns).toBe(refusedBefore + 1);
    expect((await h.app.services.upstreamCredentials.status(route, { kind: 'user', userId: other.id })).rejectedAt).toBeDefined();
    // Not tried again: the upstream sees no second wrong password.
    await h.get('/legacy/', { cookie, headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
    expect(stats().refusedSignIns).toBe(refusedBefore + 1);
    const audit = await h.app.services.audit.tail({ limit: 20, userId: other.id });
    expect(audit.some((e) => e.type === 'upstream.signin' && e.result === 'failure' && e.reason === 'credentials-rejected')).toBe(true);

    await h.app.services.upstreamCredentials.set(route, { kind: 'user', userId: other.id }, { secret: LEGACY_DEMO_PASSWORD }, CLI);
    const ok = await h.get('/legacy/', { cookie });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('<strong id="legacy-user">jiro</strong>');
  });

  it('a refused Basic password does not reach the browser as a Basic prompt', async () => {
    const basicUser = await h.app.services.users.addUser({ username: 'saburo', groups: [], actor: 'test' });
    await h.app.services.upstreamCredentials.set(legacyRoute(), { kind: 'user', userId: basicUser.id }, { secret: 'not-it' }, CLI);
    const cookie = await h.sessionCookie(basicUser);
    const res = await h.get('/legacy/basic/', { cookie, headers: { accept: 'application/json' } });
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect((await h.app.services.upstreamCredentials.status(legacyRoute(), { kind: 'user', userId: basicUser.id })).rejectedAt).toBeDefined();
  });

  it('signing out of Kanmon signs out of the legacy app and forgets the jar', async () => {
    const cookie = await h.sessionCookie(user);
    await h.get('/legacy/', { cookie });
    const logouts = stats().logouts;
    const out = await h.post('/.kanmon/logout', undefined, { cookie, raw: '', contentType: 'application/x-www-form-urlencoded' });
    expect(out.status).toBe(303);
    expect(stats().logouts).toBe(logouts + 1);
    const jars = await h.app.store.documents.list('upstream-auth-jar', { now: Date.now(), prefix: '' });
    const token = cookie.split('=')[1]!;
    const { sessionIdFromToken } = await import('../../../runtime/services/sessions.js');
    expect(jars.documents.some((d) => d.id.startsWith(`${sessionIdFromToken(token)}/`))).toBe(false);
  });
});
