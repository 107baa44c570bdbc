/**
 * Issue 2: a signed-in user with a signed-in upstream session costs no store round trip per
 * proxied request. Two "nodes" (each its own services, upstream sign-in and gateway, as
 * startKanmon wires them) share one real store (SQLite, and DynamoDB Local), each through a
 * proxy that records every store call it makes. A clock the test controls moves past the
 * cache bound (session.cacheSeconds); no wall-clock time is asserted.
 *
 * - steady state: N requests after sign-in make no store call (form login with its jar, HTTP Basic);
 * - a change made on this node (replace, clear, refusal, the app's own logout) applies at its next request;
 * - a change made on the other node (credentials replaced, the jar deleted at sign-out) applies here
 *   once the cached copy is older than the bound, with one store read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type KanmonConfig, type KanmonConfigInput } from '../../../runtime/config/schema.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import { openStore, type Store, type User } from '../../../runtime/store/index.js';
import { JAR_KIND, JarStore } from '../../../runtime/upstream-auth/index.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { startNode, type Node } from './gateway-node.js';

const CACHE_SECONDS = 5;
const CLI = { actor: 'test' };

/**
 * A legacy app: a form login (any user name, a password from `passwords`) whose session cookie
 * is set once; pages under /app/ say who is signed in, with which password; /basic/ checks HTTP
 * Basic and says the same; /app/logout ends the app's session.
 */
function legacyApp() {
  const sessions = new Map<string, string>();
  const stats = { signIns: 0, requests: 0 };
  let next = 0;
  const passwords = new Set(['pw1', 'pw2', 'pw3']);
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      stats.requests++;
      const url = req.url ?? '/';
      if (url.startsWith('/basic/')) {
        const [user, password] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':');
        if (!password || !passwords.has(password)) return res.writeHead(401, { 'www-authenticate': 'Basic realm="app"' }).end();
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(`<p id="who">${user}:${password}</p>`);
      }
      if (url === '/app/login' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<form method="post" action="/app/login"><input name="username"><input type="password" name="password"></form>');
      }
      if (url === '/app/login' && req.method === 'POST') {
        const form = new URLSearchParams(body);
        if (!passwords.has(form.get('password') ?? '')) return res.writeHead(302, { location: '/app/login' }).end();
        stats.signIns++;
        const sid = `s${++next}`;
        sessions.set(sid, `${form.get('username')}:${form.get('password')}`);
        return res.writeHead(302, { location: '/app/', 'set-cookie': `SID=${sid}; Path=/app; HttpOnly` }).end();
      }
      const sid = /(?:^|; )SID=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      const who = sid !== undefined ? sessions.get(sid) : undefined;
      if (url === '/app/logout') {
        if (sid) sessions.delete(sid);
        return res.writeHead(302, { location: '/app/login', 'set-cookie': 'SID=; Path=/app; Max-Age=0' }).end();
      }
      if (!who) return res.writeHead(302, { location: '/app/login' }).end();
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<p id="who">${who}</p><p id="sid">${sid}</p>`);
    });
  });
  return { server, stats };
}


let dynamo: DynamoDbLocal | undefined;
afterAll(async () => dynamo?.stop());

describe.each(['sqlite', 'dynamodb'] as const)('upstream sign-in on %s', (kind) => {
  const app = legacyApp();
  let dataDir: string;
  let raw: Store;
  let a: Node;
  let b: Node;
  let t = Date.now();
  const now = () => t;
  let user: User;
  let cookie: string;
  let config: KanmonConfig;

  beforeAll(async () => {
    await new Promise<void>((r) => app.server.listen(0, '127.0.0.1', r));
    const upstream = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    dataDir = mkdtempSync(join(tmpdir(), 'kanmon-roundtrip-'));
    let store: KanmonConfigInput['store'] = { kind: 'sqlite' };
    if (kind === 'dynamodb') {
      dynamo ??= await startDynamoDbLocal();
      const table = await freshTable(dynamo.endpoint, 'kanmon-roundtrip');
      store = { kind: 'dynamodb', table, endpoint: dynamo.endpoint };
    }
    config = parseConfig({
      dataDir,
      store,
      session: { cacheSeconds: CACHE_SECONDS },
      routes: [
        { id: 'app', match: { pathPrefix: '/app' }, upstream, upstreamAuth: { kind: 'form', loginUrl: '/app/login', usernameTemplate: '{username}', logoutUrl: '/app/logout' } },
        { id: 'basic', match: { pathPrefix: '/basic' }, upstream, upstreamAuth: { kind: 'basic', usernameTemplate: '{username}' } },
      ],
    });
    raw = await openStore(config);
    a = await startNode(config, raw, now);
    b = await startNode(config, raw, now);
    user = await a.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
    for (const route of ['app', 'basic']) {
      await a.services.upstreamCredentials.set(a.services.upstreamCredentials.route(route), { kind: 'user', userId: user.id }, { secret: 'pw1' }, CLI);
    }
    ({ cookie } = await a.services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 'test' }));
  }, 120_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await raw?.close();
    app.server.closeAllConnections();
    await new Promise((r) => app.server.close(r));
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Past the cache bound: every node's cached copies are stale now. */
  const pastTheBound = () => (t += CACHE_SECONDS * 1000);

  it('N requests after sign-in make no store call (form login with its jar, and HTTP Basic)', async () => {
    const first = await a.get('/app/', cookie);
    expect(first.who).toBe('hanako:pw1');
    // The first answer after a sign-in confirms it in the jar (one write); from then on, nothing.
    await a.get('/app/', cookie);
    await a.get('/basic/', cookie);
    const signIns = app.stats.signIns;
    const requests = app.stats.requests;
    a.calls.length = 0;
    for (let i = 0; i < 25; i++) {
      const page = await a.get(`/app/page-${i}`, cookie);
      expect(page.status).toBe(200);
      expect(page.who).toBe('hanako:pw1');
      expect((await a.get('/basic/x', cookie)).who).toBe('hanako:pw1');
    }
    expect(a.calls).toEqual([]);
    expect(app.stats.requests - requests).toBe(50);
    expect(app.stats.signIns).toBe(signIns);
  });

  it('past the bound, one read of each (session, credentials, jar), then none again', async () => {
    pastTheBound();
    a.calls.length = 0;
    expect((await a.get('/app/', cookie)).who).toBe('hanako:pw1');
    const reads = [...a.calls];
    expect(reads.filter((c) => c === 'documents.get')).toHaveLength(2);
    expect(reads.every((c) => ['sessions.get', 'users.getById', 'documents.get'].includes(c))).toBe(true);
    a.calls.length = 0;
    for (let i = 0; i < 5; i++) expect((await a.get('/app/', cookie)).who).toBe('hanako:pw1');
    expect(a.calls).toEqual([]);
  });

  it('credentials replaced on another node are used here once the bound has passed, with one store read', async () => {
    expect((await a.get('/basic/', cookie)).who).toBe('hanako:pw1');
    await b.services.upstreamCredentials.set(b.services.upstreamCredentials.route('basic'), { kind: 'user', userId: user.id }, { secret: 'pw2' }, CLI);
    // On the node that made the change: at once.
    expect((await b.get('/basic/', cookie)).who).toBe('hanako:pw2');
    // Here: the copy read before the change, until it is older than the bound.
    expect((await a.get('/basic/', cookie)).who).toBe('hanako:pw1');
    pastTheBound();
    a.calls.length = 0;
    expect((await a.get('/basic/', cookie)).who).toBe('hanako:pw2');
    expect(a.calls.filter((c) => c.startsWith('documents.'))).toEqual(['documents.get']);
  });

  it('a change on this node applies at its next request: replaced, refused, cleared', async () => {
    const route = a.services.upstreamCredentials.route('basic');
    await a.services.upstreamCredentials.set(route, { kind: 'user', userId: user.id }, { secret: 'pw3' }, CLI);
    expect((await a.get('/basic/', cookie)).who).toBe('hanako:pw3');

    // A password the app refuses: marked, and the next request is not sent upstream with it.
    await a.services.upstreamCredentials.set(route, { kind: 'user', userId: user.id }, { secret: 'wrong' }, CLI);
    const refused = await a.get('/basic/', cookie);
    expect(refused.status).toBe(303);
    expect(refused.location).toContain('/.kanmon/account/apps?route=basic');
    const requests = app.stats.requests;
    expect((await a.get('/basic/', cookie)).location).toContain('/.kanmon/account/apps?route=basic');
    expect(app.stats.requests).toBe(requests);
    expect((await a.services.upstreamCredentials.status(route, { kind: 'user', userId: user.id })).rejectedAt).toBeDefined();

    await a.services.upstreamCredentials.set(route, { kind: 'user', userId: user.id }, { secret: 'pw1' }, CLI);
    expect((await a.get('/basic/', cookie)).who).toBe('hanako:pw1');
    await a.services.upstreamCredentials.clear(route, { kind: 'user', userId: user.id }, CLI);
    expect((await a.get('/basic/', cookie)).location).toContain('/.kanmon/account/apps?route=basic');
    await a.services.upstreamCredentials.set(route, { kind: 'user', userId: user.id }, { secret: 'pw1' }, CLI);
  });

  it('a refusal seen on a node with an old copy does not mark credentials replaced meanwhile', async () => {
    const route = a.services.upstreamCredentials.route('basic');
    const owner = { kind: 'user', userId: user.id } as const;
    await a.services.upstreamCredentials.set(route, owner, { secret: 'wrong' }, CLI);
    // Node B reads the refused password and keeps it; node A replaces it with a good one.
    const stale = (await b.services.upstreamCredentials.resolve(route, user))!;
    expect(stale.secret).toBe('wrong');
    await a.services.upstreamCredentials.set(route, owner, { secret: 'pw2' }, CLI);
    await b.services.upstreamCredentials.markRejected(route, user, stale, 'the upstream answered 401 to HTTP Basic');
    expect((await a.services.upstreamCredentials.status(route, owner)).rejectedAt).toBeUndefined();
    expect((await a.get('/basic/', cookie)).who).toBe('hanako:pw2');
  });

  it("the app's own logout through this node: the next request signs in afresh at once", async () => {
    const before = await a.get('/app/', cookie);
    const signIns = app.stats.signIns;
    const out = await a.get('/app/logout', cookie);
    expect(out.status).toBe(302);
    const after = await a.get('/app/', cookie);
    expect(after.status).toBe(200);
    expect(app.stats.signIns).toBe(signIns + 1);
    expect(after.sid).not.toBe(before.sid);
  });

  it('a jar cleared on another node: this node follows once the bound has passed', async () => {
    const before = await a.get('/app/', cookie);
    expect(before.sid).toBeDefined();
    // The other node forgets this session's jar for the app (the app's own session lives on).
    expect(await raw.documents.delete(JAR_KIND, JarStore.idOf(sessionIdFromToken(cookie.split('=')[1]!), 'app'))).toBe(true);
    const signIns = app.stats.signIns;
    // Here: the cached jar, so the same upstream session, until the bound.
    expect((await a.get('/app/', cookie)).sid).toBe(before.sid);
    pastTheBound();
    // Then the store says there is no jar: Kanmon signs in afresh.
    const after = await a.get('/app/', cookie);
    expect(after.status).toBe(200);
    expect(after.who).toBe('hanako:pw1');
    expect(after.sid).not.toBe(before.sid);
    expect(app.stats.signIns).toBe(signIns + 1);
  });

  it("sign-out on this node: the session's jars are gone at once and its requests no longer pass", async () => {
    expect((await a.get('/app/', cookie)).status).toBe(200);
    const sessionId = sessionIdFromToken(cookie.split('=')[1]!);
    expect((await raw.documents.list(JAR_KIND, { now: t, prefix: `${sessionId}/` })).documents).toHaveLength(1);
    expect(await a.services.sessions.revokeAll(user, 'test')).toBe(1);
    expect((await raw.documents.list(JAR_KIND, { now: t, prefix: `${sessionId}/` })).documents).toEqual([]);
    const requests = app.stats.requests;
    const after = await a.get('/app/', cookie);
    expect(after.status).toBe(302);
    expect(after.location).toContain('/.kanmon/login');
    // The app was signed out of (its logout URL), and nothing else reached it.
    expect(app.stats.requests).toBe(requests);
  });
});
