/**
 * Worker mode, the primary's side of live config and shutdown: the primary's self-check and
 * readiness follow the routes of the stored config version the workers run, and SIGTERM keeps
 * the workers accepting for server.drainDelaySeconds with readiness false, as a single
 * process does. The real entry in its own process, SQLite shared with this test process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { ConfigVersionService } from '../../../runtime/services/config-versions.js';
import { openStore } from '../../../runtime/store/index.js';
import type { Store } from '../../../runtime/store/types.js';
import { clientFor, eventually, freePort, readiness, startClusterChild, type ClusterChild } from './cluster-process.js';

const LISTENING = /"msg":"Kanmon is listening"/;

let upstream: Server;
let upstreamUrl: string;
beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

/** Log lines of the primary (role: primary) with this message. */
function primaryLines(output: string, msg: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((e) => e.role === 'primary' && e.msg === msg);
}

describe("the primary follows the stored config version's routes", () => {
  let dir: string;
  let node: ClusterChild | undefined;
  let store: Store | undefined;
  afterAll(async () => {
    await node?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('checks the upstream of a route added in the console at once, and counts it in readiness', async () => {
    dir = mkdtempSync(join(tmpdir(), 'kanmon-primary-live-'));
    const config = { server: { workers: 2 }, log: { level: 'info' }, routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: upstreamUrl }] };
    node = await startClusterChild(dir, config, LISTENING);
    await eventually('readiness with one route', async () => (await readiness(node!.healthPort)).body.checks.routes === '1', 20_000);

    // An administrator adds a route whose upstream is down (nothing listens on its port).
    const dead = `http://127.0.0.1:${await freePort()}`;
    const base = parseConfig({ ...config, dataDir: dir, server: { ...config.server, port: node.port } });
    store = await openStore(base);
    const versions = new ConfigVersionService({ documents: store.documents, audit: new AuditLog(store, pino({ level: 'silent' })), base });
    const saved = await versions.save({ routes: [...config.routes, { id: 'reports', match: { pathPrefix: '/reports' }, upstream: dead }] }, { author: 'admin' });
    expect(saved.ok).toBe(true);

    // Within the poll: the primary's self-check reports the new upstream failing (not a minute later), and readiness counts two routes.
    await eventually('the self-check of the new route', () => primaryLines(node!.output(), 'self-check upstream:reports is failing').length > 0, 20_000);
    await eventually('readiness with two routes', async () => (await readiness(node!.healthPort)).body.checks.routes === '2', 20_000);
  }, 120_000);
});

describe('SIGTERM in worker mode with server.drainDelaySeconds', () => {
  let dir: string;
  let node: ClusterChild | undefined;
  afterAll(async () => {
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps serving new connections through the drain delay while readiness is false, then exits cleanly', async () => {
    dir = mkdtempSync(join(tmpdir(), 'kanmon-primary-drain-'));
    node = await startClusterChild(
      dir,
      { server: { workers: 2, drainDelaySeconds: 4, shutdownGraceSeconds: 10 }, log: { level: 'info' }, routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: upstreamUrl }] },
      LISTENING,
    );
    const client = clientFor(dir, node.port);
    await eventually('ready', async () => (await readiness(node!.healthPort)).status === 200, 20_000);
    node.child.kill('SIGTERM');
    await eventually('readiness false', async () => (await readiness(node!.healthPort)).status === 503, 5_000);
    // Well inside the delay, but long after the workers would have stopped accepting without it.
    await new Promise((r) => setTimeout(r, 500));
    // Answered by a worker (the sign-in redirect: this client has no session).
    const during = await client.send('GET', '/during-drain');
    expect(during.status).toBe(302);
    expect(during.headers.location).toBe('/.kanmon/login?return=%2Fduring-drain');
    expect(await node.exited).toEqual({ code: 0, signal: null });
    await client.agent.close();
  }, 120_000);
});
