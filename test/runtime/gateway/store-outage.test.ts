/**
 * A signed-in user whose session is past the cache bound while the store is out gets the same
 * clear store-outage page sign-in shows (503, Retry-After, both languages), not a generic
 * error, and keeps their cookie; a WebSocket handshake gets a 503 with Retry-After. A real
 * Kanmon with TLS on DynamoDB Local, which is stopped for the outage.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationsEn, operationsJa } from '../../../runtime/portal/messages/operations.js';
import { escapeHtml } from '../../../runtime/portal/html.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';

let dynamo: DynamoDbLocal;
let upstream: Server;
let h: KanmonHarness;
let cookie: string;

beforeAll(async () => {
  dynamo = await startDynamoDbLocal();
  const table = await freshTable(dynamo.endpoint, 'kanmon-outage');
  upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  h = await KanmonHarness.start({
    store: { kind: 'dynamodb', table, endpoint: dynamo.endpoint },
    session: { cacheSeconds: 1 },
    routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` }],
  });
  const user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
  cookie = await h.sessionCookie(user);
  expect((await h.get('/before', { cookie })).status).toBe(200);
  await dynamo.stop();
  // Past the session cache bound (1 s): the next request must read the store, which is gone.
  await new Promise((r) => setTimeout(r, 1500));
}, 120_000);

afterAll(async () => {
  await h?.close();
  await dynamo?.stop();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

/** The page's texts as they appear in HTML. */
const shown = (text: string) => escapeHtml(text);

describe('a session past the cache bound during a store outage', () => {
  it('gets the store-outage page in English with 503 and Retry-After, and keeps its cookie', async () => {
    const res = await h.get('/after', { cookie, headers: { 'accept-language': 'en', accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toContain(shown(operationsEn['operations.storeUnavailable.title']));
    expect(res.text).toContain(shown(operationsEn['operations.storeUnavailable.body']));
    // Not a sign-in prompt, and the session cookie is left alone.
    expect(res.headers.location).toBeUndefined();
    expect(res.headers['set-cookie']).toBeUndefined();
  }, 30_000);

  it('in Japanese too, and for a fetch as for a page load', async () => {
    const res = await h.get('/api/items', { cookie, headers: { 'accept-language': 'ja', accept: 'application/json' } });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.text).toContain(shown(operationsJa['operations.storeUnavailable.title']));
    expect(res.text).toContain(shown(operationsJa['operations.storeUnavailable.body']));
  }, 30_000);

  it('answers a POST with a body the same way, without reading it whole first', async () => {
    const res = await h.post('/form', undefined, { cookie, raw: 'a=1', contentType: 'application/x-www-form-urlencoded', headers: { 'accept-language': 'en' } });
    expect(res.status).toBe(503);
    expect(res.text).toContain(shown(operationsEn['operations.storeUnavailable.title']));
  }, 30_000);

  it('refuses a WebSocket handshake with 503 and Retry-After', async () => {
    const head = await h.handshake('/socket', cookie);
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/\r\nRetry-After: 30\r\n/i);
  }, 30_000);
});
