/**
 * A cookie jar is written only when it matters: an app that sets its session cookie again with
 * a fresh Max-Age on every answer costs a store write per quarter of the cookie's lifetime,
 * not one per request, and the stored cookie never lapses while the user is active. Two nodes
 * on one real store (SQLite and DynamoDB Local), every store call counted, a real app on port
 * 0, a clock the test controls; a cookie whose value changes is written at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type KanmonConfig, type KanmonConfigInput } from '../../../runtime/config/schema.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import { openStore, type Store, type User } from '../../../runtime/store/index.js';
import { EXPIRY_WRITE_SHARE, JAR_KIND, JarStore, type JarState } from '../../../runtime/upstream-auth/jar-store.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { startCookieApp, type CookieApp } from './cookie-app.js';
import { startNode, type Node } from './gateway-node.js';

const CACHE_SECONDS = 5;
const MAX_AGE = 600;
const CLI = { actor: 'test' };

let dynamo: DynamoDbLocal | undefined;
afterAll(async () => dynamo?.stop());

describe.each(['sqlite', 'dynamodb'] as const)('jar writes on %s', (kind) => {
  let app: CookieApp;
  let dataDir: string;
  let raw: Store;
  let a: Node;
  let b: Node;
  let config: KanmonConfig;
  let t = Date.now();
  const now = () => t;
  let user: User;
  let cookie: string;
  let sessionId: string;

  beforeAll(async () => {
    app = await startCookieApp({ maxAgeSeconds: MAX_AGE });
    dataDir = mkdtempSync(join(tmpdir(), 'kanmon-jar-writes-'));
    let store: KanmonConfigInput['store'] = { kind: 'sqlite' };
    if (kind === 'dynamodb') {
      dynamo ??= await startDynamoDbLocal();
      const table = await freshTable(dynamo.endpoint, 'kanmon-jar-writes');
      store = { kind: 'dynamodb', table, endpoint: dynamo.endpoint };
    }
    config = parseConfig({
      dataDir,
      store,
      session: { cacheSeconds: CACHE_SECONDS },
      routes: [{ id: 'app', match: { pathPrefix: '/app' }, upstream: app.url, upstreamAuth: { kind: 'form', loginUrl: '/app/login', usernameTemplate: '{username}' } }],
    });
    raw = await openStore(config);
    a = await startNode(config, raw, now);
    b = await startNode(config, raw, now);
    user = await a.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
    await a.services.upstreamCredentials.set(a.services.upstreamCredentials.route('app'), { kind: 'user', userId: user.id }, { secret: 'pw' }, CLI);
    ({ cookie } = await a.services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 'test' }));
    sessionId = sessionIdFromToken(cookie.split('=')[1]!);
  }, 120_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await raw?.close();
    await app?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** The jar as the store holds it (read past the nodes, so not counted). */
  const stored = async (): Promise<JarState> => {
    const doc = (await raw.documents.get(JAR_KIND, JarStore.idOf(sessionId, 'app'), t))!;
    const { sealed } = JSON.parse(doc.body) as { sealed: string };
    const key = { sessionId, routeId: 'app', userId: user.id, credentialSet: 'app' };
    return JSON.parse(new TextDecoder().decode(await a.secrets.open(sealed, JarStore.contextOf(key)))) as JarState;
  };
  const writes = (n: Node) => n.calls.filter((c) => c === 'documents.put').length;
  /** Lets writes an answer started in the background land, on both nodes. */
  const settle = async () => {
    await a.idle();
    await b.idle();
  };

  it('N requests, each answered with a fresh Max-Age: at most one write per quarter of the lifetime, and the stored cookie never lapses', async () => {
    const first = await a.get('/app/', cookie);
    expect(first.who).toBe('hanako');
    await a.get('/app/', cookie);
    await settle();
    const signIns = app.stats.signIns;
    a.calls.length = 0;
    b.calls.length = 0;
    const STEP_MS = 10_000;
    const N = 120;
    for (let i = 0; i < N; i++) {
      // Each step is past the cache bound: every request reads the stored jar, so it is the stored copy that must stay alive.
      t += STEP_MS;
      const node = i % 2 === 0 ? a : b;
      const page = await node.get(`/app/page-${i}`, cookie);
      expect(page.status).toBe(200);
      expect(page.who).toBe('hanako');
      expect(page.sid).toBe(first.sid);
      await settle();
      const sid = (await stored()).cookies.find((c) => c.name === 'SID')!;
      expect(sid.value).toBe(first.sid);
      // Never lapsing, and never lagging the app's expiry by more than a quarter of its lifetime.
      expect(sid.expiresAt! - t).toBeGreaterThanOrEqual(MAX_AGE * 1000 * EXPIRY_WRITE_SHARE);
    }
    // One write per quarter lifetime of activity at most (a write per request would be N).
    const spanMs = N * STEP_MS;
    const bound = Math.ceil(spanMs / (MAX_AGE * 1000 * (1 - EXPIRY_WRITE_SHARE)));
    const total = writes(a) + writes(b);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(bound);
    expect(total).toBeLessThan(N / 10);
    // The app never asked for a new sign-in.
    expect(app.stats.signIns).toBe(signIns);
  });

  it('within the cache bound, answers cost no store call at all; this node keeps the latest expiry', async () => {
    t += CACHE_SECONDS * 1000;
    await a.get('/app/', cookie);
    await settle();
    const before = (await stored()).cookies[0]!.expiresAt!;
    a.calls.length = 0;
    for (let i = 0; i < 20; i++) {
      t += 100;
      expect((await a.get('/app/', cookie)).who).toBe('hanako');
    }
    await settle();
    expect(a.calls).toEqual([]);
    expect((await stored()).cookies[0]!.expiresAt).toBe(before);
  });

  it("a cookie whose value changes is written at once, and the other node sends the new one once its copy is past the bound", async () => {
    t += CACHE_SECONDS * 1000;
    const old = (await b.get('/app/', cookie)).sid;
    a.calls.length = 0;
    const rotated = await a.get('/app/rotate', cookie);
    await settle();
    expect(rotated.sid).not.toBe(old);
    expect(writes(a)).toBe(1);
    expect((await stored()).cookies[0]!.value).toBe(rotated.sid);
    // This node: at once.
    expect((await a.get('/app/', cookie)).sid).toBe(rotated.sid);
    t += CACHE_SECONDS * 1000;
    const signIns = app.stats.signIns;
    expect((await b.get('/app/', cookie)).sid).toBe(rotated.sid);
    expect(app.stats.signIns).toBe(signIns);
  });

  it('an idle user: once the stored cookie has lapsed, Kanmon signs in again (the app would have forgotten a browser too)', async () => {
    t += (MAX_AGE + 1) * 1000;
    const signIns = app.stats.signIns;
    const page = await a.get('/app/', cookie);
    expect(page.status).toBe(200);
    expect(page.who).toBe('hanako');
    expect(app.stats.signIns).toBe(signIns + 1);
  });
});
