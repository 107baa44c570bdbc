/**
 * The server-side cookie jar is sealed at rest: the legacy app's session cookies are bearer
 * credentials, so the stored document holds them only sealed with the secret box, bound to the
 * session's user, the route's credential set, the session and the route. A jar copied into
 * another user's session, altered, or stored unsealed by an earlier version does not open: it
 * is logged (without cookie values) and read as empty, so Kanmon signs in to the app again for
 * the right user; never a 500. SQLite and DynamoDB Local, a real app on port 0, a controlled clock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type KanmonConfig, type KanmonConfigInput } from '../../../runtime/config/schema.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import { ConcurrentUpdateError } from '../../../runtime/store/errors.js';
import { openStore, type Store, type User } from '../../../runtime/store/index.js';
import { JAR_KIND, JarStore, type JarState } from '../../../runtime/upstream-auth/index.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { startCookieApp, type CookieApp } from './cookie-app.js';
import { startNode, type Node } from './gateway-node.js';

const CACHE_SECONDS = 5;
const CLI = { actor: 'test' };

let dynamo: DynamoDbLocal | undefined;
afterAll(async () => dynamo?.stop());

describe.each(['sqlite', 'dynamodb'] as const)('cookie jars at rest on %s', (kind) => {
  let app: CookieApp;
  let dataDir: string;
  let raw: Store;
  let node: Node;
  let config: KanmonConfig;
  let t = Date.now();
  const now = () => t;
  const logLines: string[] = [];
  const users: Record<string, { user: User; cookie: string; sessionId: string }> = {};

  beforeAll(async () => {
    app = await startCookieApp();
    dataDir = mkdtempSync(join(tmpdir(), 'kanmon-jar-seal-'));
    let store: KanmonConfigInput['store'] = { kind: 'sqlite' };
    if (kind === 'dynamodb') {
      dynamo ??= await startDynamoDbLocal();
      const table = await freshTable(dynamo.endpoint, 'kanmon-jar-seal');
      store = { kind: 'dynamodb', table, endpoint: dynamo.endpoint };
    }
    config = parseConfig({
      dataDir,
      store,
      session: { cacheSeconds: CACHE_SECONDS },
      routes: [{ id: 'app', match: { pathPrefix: '/app' }, upstream: app.url, upstreamAuth: { kind: 'form', loginUrl: '/app/login', usernameTemplate: '{username}', logoutUrl: '/app/logout' } }],
    });
    raw = await openStore(config);
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    node = await startNode(config, raw, now, logger);
    for (const username of ['hanako', 'taro']) {
      const user = await node.services.users.addUser({ username, groups: [], actor: 'test' });
      await node.services.upstreamCredentials.set(node.services.upstreamCredentials.route('app'), { kind: 'user', userId: user.id }, { secret: 'pw' }, CLI);
      const { cookie } = await node.services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 'test' });
      users[username] = { user, cookie, sessionId: sessionIdFromToken(cookie.split('=')[1]!) };
    }
  }, 120_000);

  afterAll(async () => {
    await node?.close();
    await raw?.close();
    await app?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const pastTheBound = () => (t += CACHE_SECONDS * 1000);
  const jarDoc = (who: string) => raw.documents.get(JAR_KIND, JarStore.idOf(users[who]!.sessionId, 'app'), t);
  const keyOf = (who: string) => ({ sessionId: users[who]!.sessionId, routeId: 'app', userId: users[who]!.user.id, credentialSet: 'app' });
  /** Replaces a jar's stored body as someone with write access to the store would (after any write the last answer started in the background). */
  const put = async (who: string, body: string) => {
    for (let attempt = 0; ; attempt++) {
      const doc = (await jarDoc(who))!;
      try {
        await raw.documents.put({ kind: JAR_KIND, id: doc.id, body, expiresAt: doc.expiresAt }, { now: t, expectedVersion: doc.version });
        return;
      } catch (err) {
        if (!(err instanceof ConcurrentUpdateError) || attempt > 5) throw err;
      }
    }
  };
  /** Log lines written since `from`; none may hold a session id of the app. */
  const logsSince = (from: number) => {
    const lines = logLines.slice(from);
    for (const sid of app.sessions.keys()) for (const line of lines) expect(line).not.toContain(sid);
    return lines.map((l) => JSON.parse(l) as { msg: string; reason?: string; route?: string });
  };

  it('the stored jar holds no cookie value, only a sealed one that opens for its owner', async () => {
    const page = await node.get('/app/', users.hanako!.cookie);
    expect(page.status).toBe(200);
    expect(page.who).toBe('hanako');
    const sid = page.sid!;
    expect(sid).toMatch(/^[0-9a-f]{48}$/);
    const doc = (await jarDoc('hanako'))!;
    expect(doc.body).not.toContain(sid);
    expect(doc.body).not.toContain(Buffer.from(sid).toString('base64'));
    expect(doc.body).not.toContain('SID');
    expect(doc.body).not.toContain('cookies');
    const body = JSON.parse(doc.body) as { v: number; owner: string; sealed: string };
    expect(Object.keys(body).sort()).toEqual(['owner', 'sealed', 'v']);
    expect(body).toMatchObject({ v: 2, owner: users.hanako!.user.id });
    // It is the jar: opened with its context, it holds the app's session cookie.
    const state = JSON.parse(new TextDecoder().decode(await node.secrets.open(body.sealed, JarStore.contextOf(keyOf('hanako'))))) as JarState;
    expect(state.cookies).toEqual([{ name: 'SID', value: sid, path: '/app' }]);
    expect(state.signedInAt).toBeDefined();
  });

  it("a jar copied into another user's session does not open there: that user is signed in as themselves, and the log names no cookie", async () => {
    const hanako = await node.get('/app/', users.hanako!.cookie);
    const taro = await node.get('/app/', users.taro!.cookie);
    expect(taro.who).toBe('taro');
    await put('taro', (await jarDoc('hanako'))!.body);
    pastTheBound();
    const signIns = app.stats.signIns;
    const from = logLines.length;
    const after = await node.get('/app/', users.taro!.cookie);
    expect(after.status).toBe(200);
    // Not hanako's session of the app: a fresh one of taro's own.
    expect(after.who).toBe('taro');
    expect(after.sid).not.toBe(hanako.sid);
    expect(after.sid).not.toBe(taro.sid);
    expect(app.stats.signIns).toBe(signIns + 1);
    const logged = logsSince(from).filter((l) => l.msg.includes('cookie jar could not be opened'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ route: 'app', reason: 'sealed for another owner, or altered' });
    // The copy was replaced by taro's own sealed jar; hanako's still opens for her.
    expect(JSON.parse((await jarDoc('taro'))!.body)).toMatchObject({ v: 2, owner: users.taro!.user.id });
    expect((await node.get('/app/', users.hanako!.cookie)).sid).toBe(hanako.sid);
  });

  it('a copy whose owner field was changed to match does not open either (the seal names the session)', async () => {
    const hanakoBody = JSON.parse((await jarDoc('hanako'))!.body) as { sealed: string };
    await put('taro', JSON.stringify({ v: 2, owner: users.taro!.user.id, sealed: hanakoBody.sealed }));
    pastTheBound();
    const hanakoSid = (await node.get('/app/', users.hanako!.cookie)).sid;
    const after = await node.get('/app/', users.taro!.cookie);
    expect(after.status).toBe(200);
    expect(after.who).toBe('taro');
    expect(after.sid).not.toBe(hanakoSid);
  });

  it('a jar stored unsealed by an earlier version is not used: it is read as empty, then replaced by a sealed one', async () => {
    // The worst case: the unsealed jar holds a live session of another user of the app.
    const hanakoSid = (await node.get('/app/', users.hanako!.cookie)).sid!;
    await put('taro', JSON.stringify({ cookies: [{ name: 'SID', value: hanakoSid, path: '/app' }], signedInAt: t, confirmed: true }));
    pastTheBound();
    const signIns = app.stats.signIns;
    const from = logLines.length;
    const after = await node.get('/app/', users.taro!.cookie);
    expect(after.status).toBe(200);
    expect(after.who).toBe('taro');
    expect(after.sid).not.toBe(hanakoSid);
    expect(app.stats.signIns).toBe(signIns + 1);
    expect(logsSince(from).filter((l) => l.msg.includes('cookie jar could not be opened'))).toEqual([
      expect.objectContaining({ reason: 'stored unsealed by an earlier version' }),
    ]);
    const doc = (await jarDoc('taro'))!;
    expect(doc.body).not.toContain(after.sid!);
    expect(JSON.parse(doc.body)).toMatchObject({ v: 2, owner: users.taro!.user.id });
  });

  it.each([
    ['not JSON', () => '{"cookies": [ SID='],
    ['a sealed value that is not one', () => JSON.stringify({ v: 2, owner: users.taro!.user.id, sealed: 'v1.AAAA.BBBB.CCCC' })],
    ['a sealed value with one character changed', async () => {
      const body = JSON.parse((await jarDoc('taro'))!.body) as { v: 2; owner: string; sealed: string };
      const i = body.sealed.length - 5;
      return JSON.stringify({ ...body, sealed: body.sealed.slice(0, i) + (body.sealed[i] === 'A' ? 'B' : 'A') + body.sealed.slice(i + 1) });
    }],
    ['an unknown format version', () => JSON.stringify({ v: 3, owner: users.taro!.user.id, sealed: 'x' })],
    ['a JSON array', () => '[1,2,3]'],
  ])('a stored jar that is %s: logged, read as empty, signed in again; no 500', async (_name, body) => {
    await node.get('/app/', users.taro!.cookie);
    await put('taro', await body());
    pastTheBound();
    const signIns = app.stats.signIns;
    const from = logLines.length;
    const after = await node.get('/app/', users.taro!.cookie);
    expect(after.status).toBe(200);
    expect(after.who).toBe('taro');
    expect(app.stats.signIns).toBe(signIns + 1);
    expect(logsSince(from).some((l) => l.msg.includes('cookie jar could not be opened'))).toBe(true);
  });

  it('sign-out opens the sealed jar and signs out of the app with it, then deletes it', async () => {
    const page = await node.get('/app/', users.hanako!.cookie);
    expect(app.sessions.has(page.sid!)).toBe(true);
    const logouts = app.stats.logouts;
    expect(await node.services.sessions.revokeAll(users.hanako!.user, 'test')).toBe(1);
    expect(app.stats.logouts).toBe(logouts + 1);
    expect(app.sessions.has(page.sid!)).toBe(false);
    expect(await jarDoc('hanako')).toBeUndefined();
  });
});
