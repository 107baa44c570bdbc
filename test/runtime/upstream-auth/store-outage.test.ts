/**
 * The store failing while upstream sign-in reads the credentials or the cookie jar: the user
 * gets the gateway's store-outage answer (503, Retry-After, the operations.storeUnavailable
 * page in their language; a bare 503 with Retry-After on a WebSocket handshake), not the
 * sign-in failure page, keeps their cookie, and nothing reaches the upstream. A real Kanmon
 * with TLS on SQLite, whose database is closed for the outage (as the readiness test does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEGACY_DEMO_PASSWORD } from '../../../runtime/demo/legacy.js';
import { escapeHtml } from '../../../runtime/portal/html.js';
import { operationsEn, operationsJa } from '../../../runtime/portal/messages/operations.js';
import { upstreamEn } from '../../../runtime/portal/messages/upstream.js';
import type { User } from '../../../runtime/store/types.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { LEGACY_ROUTES } from '../../support/legacy-routes.js';

const CLI = { actor: 'test' };
const shown = (text: string) => escapeHtml(text);
const PAGE = { accept: 'text/html', 'sec-fetch-mode': 'navigate' };

let h: KanmonHarness;
/** Credentials read once before the outage (cached); their jar on the form route never read. */
let cachedCreds: string;
/** Credentials stored but never read: the outage hits the credential read. */
let unreadCreds: string;
let signInsBefore: number;

beforeAll(async () => {
  // Sessions stay in the node's cache across the outage, so the gateway lets the requests through to upstream sign-in.
  h = await KanmonHarness.start({ routes: LEGACY_ROUTES, session: { cacheSeconds: 60 } });
  const route = h.app.services.upstreamCredentials.route('legacy');
  const users: User[] = [];
  for (const username of ['hanako', 'taro']) {
    const user = await h.app.services.users.addUser({ username, groups: [], actor: 'test' });
    await h.app.services.upstreamCredentials.set(route, { kind: 'user', userId: user.id }, { secret: LEGACY_DEMO_PASSWORD }, CLI);
    users.push(user);
  }
  cachedCreds = await h.sessionCookie(users[0]!);
  unreadCreds = await h.sessionCookie(users[1]!);
  // HTTP Basic shares the credential set: this reads hanako's credentials, and no jar.
  const basic = await h.get('/legacy/basic/', { cookie: cachedCreds });
  expect(basic.text).toContain('<strong id="basic-user">hanako</strong>');
  signInsBefore = h.app.demo!.legacy.stats.signIns;
  await h.app.store.close();
}, 60_000);

afterAll(async () => h?.close());

function expectStoreOutage(res: { status: number; headers: Record<string, unknown>; text: string }, texts: Record<keyof typeof operationsEn, string>): void {
  expect(res.status).toBe(503);
  expect(res.headers['retry-after']).toBe('30');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.text).toContain(shown(texts['operations.storeUnavailable.title']));
  expect(res.text).toContain(shown(texts['operations.storeUnavailable.body']));
  expect(res.text).not.toContain(shown(upstreamEn['upstream.signIn.failedTitle']));
  // Not a sign-in prompt, and the session cookie is left alone.
  expect(res.headers.location).toBeUndefined();
  expect(res.headers['set-cookie']).toBeUndefined();
}

describe('a store outage under upstream sign-in', () => {
  it('while reading the credentials: the store-outage page in English, 503 with Retry-After', async () => {
    expectStoreOutage(await h.get('/legacy/basic/', { cookie: unreadCreds, headers: { ...PAGE, 'accept-language': 'en' } }), operationsEn);
  });

  it('while reading the credentials for a form login: the same, in Japanese', async () => {
    expectStoreOutage(await h.get('/legacy/', { cookie: unreadCreds, headers: { ...PAGE, 'accept-language': 'ja' } }), operationsJa);
  });

  it('while reading the cookie jar (credentials already known to the node): the same', async () => {
    expectStoreOutage(await h.get('/legacy/', { cookie: cachedCreds, headers: { ...PAGE, 'accept-language': 'en' } }), operationsEn);
  });

  it('answers a fetch and a form post the same way, and nothing reaches the upstream', async () => {
    expectStoreOutage(await h.get('/legacy/items', { cookie: cachedCreds, headers: { accept: 'application/json', 'accept-language': 'en' } }), operationsEn);
    const post = await h.post('/legacy/notes', undefined, { cookie: cachedCreds, raw: 'note=hello', contentType: 'application/x-www-form-urlencoded', headers: { 'accept-language': 'en' } });
    expectStoreOutage(post, operationsEn);
    expect(h.app.demo!.legacy.stats.signIns).toBe(signInsBefore);
  });

  it('the same sessions still reach a route without upstream sign-in (the 503 comes from the sign-in reads, not the session)', async () => {
    const plain = await h.get('/', { cookie: cachedCreds, headers: PAGE });
    expect(plain.status).toBe(200);
  });

  it('refuses a WebSocket handshake with 503 and Retry-After, as the gateway does', async () => {
    const head = await h.handshake('/legacy/socket', unreadCreds);
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/\r\nRetry-After: 30\r\n/i);
  });
});
