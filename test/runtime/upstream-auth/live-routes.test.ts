/**
 * Upstream sign-in follows the live routes: a stored config version that gives a route
 * upstreamAuth (or changes it) takes effect without a restart, for the gateway, the
 * credentials service and sign-out. And every way a user's sessions end together (revoke all,
 * user disabled, a directory import disabling them) ends their upstream sign-ins too.
 * A real Kanmon with TLS and SQLite, the demo's legacy app as the upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { LEGACY_ROUTES } from '../../support/legacy-routes.js';
import { LEGACY_DEMO_PASSWORD } from '../../../runtime/demo/legacy.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import { JAR_KIND } from '../../../runtime/upstream-auth/jar-store.js';
import type { User } from '../../../runtime/store/types.js';

const CLI = { actor: 'test' };
const ONLY_DEMO = [{ id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' }];
const idOf = (t: string) => /id="legacy-session">([0-9a-f]+)</.exec(t)?.[1];

let h: KanmonHarness;
let user: User;
beforeAll(async () => {
  h = await KanmonHarness.start({ routes: ONLY_DEMO });
  user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
});
afterAll(async () => h?.close());

const stats = () => h.app.demo!.legacy.stats;

/** Saves routes as a new config version; resolves once this node runs it. */
async function saveRoutes(routes: unknown[]): Promise<void> {
  const saved = await h.app.services.configVersions.save({ routes }, { author: 'test' });
  if (!saved.ok) throw new Error(saved.errors.join('\n'));
  // The version as stored (normalized); this node swaps it in on its own save at once.
  const want = JSON.stringify((saved.version.state.routes as Array<{ upstreamAuth?: unknown }>).filter((r) => r.upstreamAuth));
  for (let i = 0; i < 100 && JSON.stringify(h.app.services.upstreamCredentials.routesWithSignIn()) !== want; i++) await new Promise((r) => setTimeout(r, 50));
  // Also the gateway's table: it swaps in the same assignment, so the route id answers for the new route now.
  expect(JSON.stringify(h.app.services.upstreamCredentials.routesWithSignIn())).toBe(want);
}

async function jarsOf(cookie: string): Promise<string[]> {
  const prefix = `${sessionIdFromToken(cookie.split('=')[1]!)}/`;
  const page = await h.app.store.documents.list(JAR_KIND, { now: Date.now(), prefix });
  return page.documents.map((d) => d.id);
}

describe('upstream sign-in from a stored config version', () => {
  it('a route given upstreamAuth in a new version signs in upstream without a restart', async () => {
    // Before: /legacy is plain demo traffic; the upstream's own login page comes through.
    const cookie = await h.sessionCookie(user);
    const before = await h.get('/legacy/login', { cookie });
    expect(before.status).toBe(200);
    expect(before.text).toContain('name="password"');
    expect(h.app.services.upstreamCredentials.routesWithSignIn()).toEqual([]);

    await saveRoutes(LEGACY_ROUTES as unknown[]);
    expect(h.app.services.upstreamCredentials.routesWithSignIn().map((r) => r.id)).toEqual(['legacy', 'legacy-basic']);
    // The credentials service knows the new route: credentials can be stored for it.
    await h.app.services.upstreamCredentials.set(h.app.services.upstreamCredentials.route('legacy'), { kind: 'user', userId: user.id }, { secret: LEGACY_DEMO_PASSWORD }, CLI);

    const signIns = stats().signIns;
    const page = await h.get('/legacy/', { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<strong id="legacy-user">hanako</strong>');
    expect(page.text).not.toContain('name="password"');
    expect(stats().signIns).toBe(signIns + 1);
    const basic = await h.get('/legacy/basic/', { cookie });
    expect(basic.text).toContain('<strong id="basic-user">hanako</strong>');
    // The upstream's login page is never shown now: Kanmon is signed in and sends the user on.
    const login = await h.get('/legacy/login', { cookie });
    expect(login.status).toBe(303);

    // Sign-out reads the live route too: the legacy app is signed out of, the jar forgotten.
    const logouts = stats().logouts;
    const out = await h.post('/.kanmon/logout', undefined, { cookie, raw: '', contentType: 'application/x-www-form-urlencoded' });
    expect(out.status).toBe(303);
    expect(stats().logouts).toBe(logouts + 1);
    expect(await jarsOf(cookie)).toEqual([]);
  });

  it('a changed upstreamAuth applies at the next sign-out (no logout URL: no upstream logout, jar still forgotten)', async () => {
    const changed = LEGACY_ROUTES.map((r) => (r.id === 'legacy' ? { ...r, upstreamAuth: { kind: 'form', loginUrl: '/legacy/login', usernameTemplate: '{username}' } } : r));
    await saveRoutes(changed as unknown[]);
    expect(h.app.services.upstreamCredentials.route('legacy').upstreamAuth).not.toHaveProperty('logoutUrl');
    const cookie = await h.sessionCookie(user);
    expect((await h.get('/legacy/', { cookie })).text).toContain('id="legacy-user"');
    expect(await jarsOf(cookie)).toHaveLength(1);
    const logouts = stats().logouts;
    await h.post('/.kanmon/logout', undefined, { cookie, raw: '', contentType: 'application/x-www-form-urlencoded' });
    expect(stats().logouts).toBe(logouts);
    expect(await jarsOf(cookie)).toEqual([]);
    await saveRoutes(LEGACY_ROUTES as unknown[]);
  });
});

describe("ending all of a user's sessions ends their upstream sign-ins", () => {
  // A node whose file has the legacy routes from the start: these rules stand apart from live config.
  beforeAll(async () => {
    await h.close();
    h = await KanmonHarness.start({ routes: LEGACY_ROUTES });
  });

  /** Two sessions of `who`, each signed in to the legacy app (a jar each, two upstream sessions). */
  async function twoSignedIn(who: User): Promise<string[]> {
    await h.app.services.upstreamCredentials.set(h.app.services.upstreamCredentials.route('legacy'), { kind: 'user', userId: who.id }, { secret: LEGACY_DEMO_PASSWORD }, CLI);
    const cookies = [await h.sessionCookie(who), await h.sessionCookie(who)];
    for (const cookie of cookies) {
      const page = await h.get('/legacy/', { cookie });
      expect(idOf(page.text)).toBeDefined();
      expect(await jarsOf(cookie)).toHaveLength(1);
    }
    return cookies;
  }

  it('revoke all (console and CLI) signs out of the upstream for every session and deletes the jars', async () => {
    const who = await h.app.services.users.addUser({ username: 'revoked', groups: [], actor: 'test' });
    const cookies = await twoSignedIn(who);
    const logouts = stats().logouts;
    expect(await h.app.services.sessions.revokeAll(who, 'admin')).toBe(2);
    expect(stats().logouts).toBe(logouts + 2);
    for (const cookie of cookies) expect(await jarsOf(cookie)).toEqual([]);
    const audit = await h.app.services.audit.tail({ limit: 10 });
    expect(audit.filter((e) => e.type === 'upstream.signout' && e.result === 'success').length).toBeGreaterThanOrEqual(2);
  });

  it('"sign out my other sessions" keeps the current session\'s upstream sign-in', async () => {
    const who = await h.app.services.users.addUser({ username: 'keeper', groups: [], actor: 'test' });
    const [keep, other] = await twoSignedIn(who);
    const keptId = sessionIdFromToken(keep!.split('=')[1]!);
    const session = (await h.get('/legacy/', { cookie: keep! })).text;
    expect(await h.app.services.sessions.revokeAll(who, who.username, undefined, keptId)).toBe(1);
    expect(await jarsOf(other!)).toEqual([]);
    expect(await jarsOf(keep!)).toHaveLength(1);
    // Still the same upstream session for the kept one.
    expect(idOf((await h.get('/legacy/', { cookie: keep! })).text)).toBe(idOf(session));
  });

  it('disabling a user (console and CLI) ends their upstream sign-ins', async () => {
    const who = await h.app.services.users.addUser({ username: 'leaver', groups: [], actor: 'test' });
    const cookies = await twoSignedIn(who);
    const logouts = stats().logouts;
    await h.app.services.users.setDisabled('leaver', true, 'admin');
    expect(stats().logouts).toBe(logouts + 2);
    for (const cookie of cookies) expect(await jarsOf(cookie)).toEqual([]);
    const disabled = (await h.app.services.audit.tail({ limit: 20 })).find((e) => e.type === 'user.disable' && e.username === 'leaver');
    expect(disabled?.details).toMatchObject({ sessionsEnded: 2 });
  });

  it('a CSV import that disables a user ends their upstream sign-ins', async () => {
    const who = await h.app.services.users.addUser({ username: 'imported', groups: [], actor: 'test' });
    const cookies = await twoSignedIn(who);
    const logouts = stats().logouts;
    const parsed = h.app.services.userImport.parseCsv('username,disabled\nimported,true\n');
    expect(parsed.errors).toEqual([]);
    await h.app.services.userImport.apply(parsed.entries, { source: 'csv', actor: 'admin' });
    expect(stats().logouts).toBe(logouts + 2);
    for (const cookie of cookies) expect(await jarsOf(cookie)).toEqual([]);
  });
});
