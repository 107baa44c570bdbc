/**
 * Two Kanmon nodes (real processes) on one DynamoDB Local, behind haproxy in TCP mode with
 * send-proxy-v2 and health checks on the nodes' health ports, standing in for the NLB; all on
 * 127.0.0.1, the client connecting from 127.0.0.2. A client signed in through a real passkey
 * ceremony runs a steady load while one node is killed, both are restarted one after the other,
 * and the store is stopped for 20 s. The figures are printed (README: Operations, measured).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProxyV2Header } from '../../runtime/net/index.js';
import { createDynamoDbClient, createTable, openDynamoStore } from '../../runtime/store/dynamodb/index.js';
import { operationsEn, operationsJa } from '../../runtime/portal/messages/operations.js';
import { freePort } from '../support/kanmon-process.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import { bundleRuntime, Client, DiskDynamoDb, HAPROXY, Haproxy, NodeProcess, sleep, steadyLoad, tally, until, type Sample } from './cluster.js';

const TABLE = 'kanmon-ha';
const CACHE_SECONDS = 5;
const OUTAGE_MS = 20_000;

const figures: Record<string, unknown> = {};

describe.skipIf(!existsSync(HAPROXY))('two nodes as one gateway', () => {
  let dir: string;
  let ddb: DiskDynamoDb;
  let haproxy: Haproxy;
  let upstream: Server;
  let client: Client;
  let origin: string;
  let cookie: string;
  let key: SoftAuthenticator;
  const nodes = new Map<string, NodeProcess>();
  const everyNode: NodeProcess[] = [];
  const ports = new Map<string, { port: number; healthPort: number }>();
  let configOf: (name: string) => unknown;
  let bundle: string;
  let ddbRunning = false;

  const startNode = async (name: string): Promise<NodeProcess> => {
    const p = ports.get(name)!;
    const node = new NodeProcess(name, p.port, p.healthPort, configOf(name), bundle);
    nodes.set(name, node);
    everyNode.push(node);
    await node.waitReady();
    return node;
  };

  /**
   * Each scenario starts from a healthy pair, whatever the one before left behind (a node it
   * killed, a store it stopped), so one failure does not hide the others' results.
   */
  const ensurePair = async (): Promise<void> => {
    if (!ddbRunning) {
      await ddb.start();
      ddbRunning = true;
    }
    for (const name of ['n1', 'n2']) {
      const node = nodes.get(name);
      if (!node?.alive) await startNode(name);
    }
    await Promise.all(['n1', 'n2'].map((name) => haproxy.waitStatus(name, 'UP')));
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kanmon-ha-'));
    ddb = new DiskDynamoDb(await freePort(), mkdtempSync(join(tmpdir(), 'kanmon-ha-ddb-')));
    const [bundled] = await Promise.all([bundleRuntime(), ddb.start()]);
    bundle = bundled;
    ddbRunning = true;
    const tableClient = createDynamoDbClient({ endpoint: ddb.endpoint });
    await createTable(tableClient, TABLE);
    tableClient.destroy();

    // The protected application: says whom Kanmon sent.
    upstream = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: req.headers['x-kanmon-user'] ?? null, path: req.url }));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));

    const publicPort = await freePort();
    origin = `https://localhost:${publicPort}`;
    for (const name of ['n1', 'n2']) ports.set(name, { port: await freePort(), healthPort: await freePort() });
    configOf = (name) => ({
      // One data directory for both: the local secret box's key and the development CA are
      // the pair's shared secrets here (on AWS, KMS and a real certificate).
      dataDir: join(dir, 'data'),
      server: {
        port: ports.get(name)!.port,
        host: '127.0.0.1',
        publicOrigin: origin,
        healthPort: ports.get(name)!.healthPort,
        proxyProtocol: { enabled: true, allowedNetworks: ['127.0.0.1/32'] },
        shutdownGraceSeconds: 10,
        // haproxy checks every 200 ms and needs 2 failures: 1 s is well past that.
        drainDelaySeconds: 1,
      },
      store: { kind: 'dynamodb', table: TABLE, endpoint: ddb.endpoint },
      session: { cacheSeconds: CACHE_SECONDS },
      routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` }],
      log: { level: 'info' },
    });

    // n1 first (it creates the development CA), then n2, whose bootstrap link is the valid one.
    await startNode('n1');
    const n2 = await startNode('n2');
    const token = new URL((await n2.waitLine(/Enroll the first administrator: (\S+)/))[1]!).searchParams.get('token')!;

    haproxy = new Haproxy(publicPort, await freePort(), dir);
    await haproxy.start([...ports].map(([name, p]) => ({ name, ...p })));
    await haproxy.waitStatus('n1', 'UP');
    await haproxy.waitStatus('n2', 'UP');
    client = new Client(origin, publicPort, join(dir, 'data', 'dev-ca', 'ca.crt'));

    // A real sign-up and sign-in through the load balancer: enrollment, then a passkey login.
    key = new SoftAuthenticator({ origin });
    const options = (await client.send('POST', '/.kanmon/api/enroll/options', { body: { token, username: 'admin' } })).json();
    const enrolled = await client.send('POST', '/.kanmon/api/enroll/verify', { body: { token, response: key.register(options), name: 'ha key' } });
    expect(enrolled.status, `${enrolled.text}\n${n2.output()}\n${nodes.get('n1')!.output()}`).toBe(200);
    cookie = await passkeyLogin();
  }, 180_000);

  afterAll(async () => {
    console.log(`HA figures: ${JSON.stringify(figures, null, 2)}`);
    await haproxy?.stop();
    for (const n of everyNode) if (n.alive) n.kill('SIGKILL');
    await Promise.all(everyNode.map((n) => n.exited));
    await ddb?.stop();
    await new Promise((r) => upstream?.close(r));
    await client?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (ddb) rmSync(ddb.dir, { recursive: true, force: true });
    if (bundle) rmSync(dirname(bundle), { recursive: true, force: true });
  });

  async function passkeyLogin(): Promise<string> {
    const options = await client.send('POST', '/.kanmon/api/login/options');
    expect(options.status, options.text).toBe(200);
    const verified = await client.send('POST', '/.kanmon/api/login/verify', { body: { response: key.authenticate(options.json()) } });
    expect(verified.status, verified.text).toBe(200);
    const set = [verified.headers['set-cookie']].flat().find((c) => c?.startsWith('__Host-kanmon-session='));
    return set!.split(';')[0]!;
  }

  it('serves the signed-in client from either node, with the client address the load balancer carried', async () => {
    const load = steadyLoad(client, cookie, 'admin');
    await sleep(1000);
    const samples = await load.stop();
    expect(tally(samples)).toMatchObject({ login: 0, unavailable: 0, error: 0 });
    // Throttling, logs and audit see 127.0.0.2 (the PROXY v2 source), not haproxy's 127.0.0.1.
    const store = await openDynamoStore({ table: TABLE, endpoint: ddb.endpoint });
    const admin = await store.users.getByUsername('admin');
    const sessions = await store.sessions.listByUser(admin!.id);
    expect(sessions.map((s) => s.ip)).toContain('127.0.0.2');
    await store.close();
  });

  it('refuses a PROXY v2 header from outside the load balancer networks', async () => {
    const { port } = ports.get('n1')!;
    const closed = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => {
        s.write(buildProxyV2Header({ source: { address: '10.9.9.9', port: 1 }, destination: { address: '10.0.0.1', port: 443 } }));
      });
      let got = '';
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(closed).toBe('');
    await until('the refusal logged', async () => (/"reason":"peer-not-allowed","remoteAddress":"127\.0\.0\.2"/.test(nodes.get('n1')!.output()) ? true : undefined), 5000);
  });

  it('survives SIGKILL of one node: no re-login, errors only for requests in flight at the kill', async () => {
    await ensurePair();
    const load = steadyLoad(client, cookie, 'admin');
    await sleep(1000);
    const victim = nodes.get('n1')!;
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    await victim.exited;
    // The kernel has closed the node's sockets by the time its parent hears of the exit.
    const deadAt = Date.now();
    await haproxy.waitStatus('n1', 'DOWN');
    const detectedAt = Date.now();
    await sleep(1500);
    const samples = await load.stop();
    const failed = samples.filter((s) => s.outcome !== 'ok');
    // haproxy logs a connection when it ends; the victim's ended with it.
    await until('haproxy logged the failed requests\' connections', async () => (failed.every((s) => !s.wire || haproxy.serverOf(s.wire.localPort)) ? true : undefined), 5000).catch(() => undefined);
    // In flight at the kill: written, before the node was gone, to a connection the balancer
    // had given to that node. A request still connecting (nothing sent) never counts: a new
    // connection must reach the surviving node.
    const nodeOf = (s: Sample) => (s.wire ? haproxy.serverOf(s.wire.localPort) : undefined);
    const inFlight = (s: Sample) => !!s.wire && s.wire.sentAt <= deadAt && /^n1(-failopen)?$/.test(nodeOf(s) ?? '');
    const t = tally(samples);
    const afterDeath = samples.filter((s) => s.start > deadAt);
    figures.sigkill = {
      requests: t.total,
      ok: t.ok,
      failed: failed.length,
      failedInFlightAtKill: failed.filter(inFlight).length,
      failedOtherwise: failed.filter((s) => !inFlight(s)).length,
      reLogins: t.login,
      requestsStartedAfterDeath: afterDeath.length,
      okStartedAfterDeath: afterDeath.filter((s) => s.outcome === 'ok').length,
      exitSeenAfterKillMs: deadAt - killedAt,
      loadBalancerMarkedDownAfterMs: detectedAt - killedAt,
      failures: failed.map((s) => ({ detail: s.detail, node: nodeOf(s) ?? null, sentBeforeDeath: !!s.wire && s.wire.sentAt <= deadAt })),
    };
    expect(t.login).toBe(0);
    expect(failed.filter((s) => !inFlight(s)), JSON.stringify(figures.sigkill)).toEqual([]);
    expect(afterDeath.length).toBeGreaterThan(0);
    // The other node kept the session: the same cookie goes on working.
    expect((await client.send('GET', '/after-kill', { cookie })).status).toBe(200);
  }, 90_000);

  it('rolls both nodes with SIGTERM without a single failed request', async () => {
    await ensurePair();
    const before = await haproxy.servers();
    const load = steadyLoad(client, cookie, 'admin');
    await sleep(500);
    const drains: Record<string, number> = {};
    for (const name of ['n1', 'n2']) {
      const old = nodes.get(name)!;
      const termAt = Date.now();
      old.kill('SIGTERM');
      const exit = await old.exited;
      drains[name] = Date.now() - termAt;
      expect(exit.code, old.output()).toBe(0);
      await startNode(name);
      await haproxy.waitStatus(name, 'UP');
    }
    await sleep(500);
    const samples = await load.stop();
    const t = tally(samples);
    const stats = await haproxy.servers();
    figures.rollingRestart = {
      requests: t.total,
      ok: t.ok,
      failed: t.total - t.ok,
      drainMs: drains,
      haproxyRedispatches: [...stats].reduce((n, [name, s]) => n + s.redispatches - (before.get(name)?.redispatches ?? 0), 0),
      failures: samples.filter((s) => s.outcome !== 'ok').map((s) => s.detail),
    };
    expect(samples.filter((s) => s.outcome !== 'ok')).toEqual([]);
    expect(t.ok).toBeGreaterThan(0);
  }, 120_000);

  it('rides out 20 s without the store: sessions within the bound, sign-in refused with a clear page, recovery by itself', async () => {
    await ensurePair();
    // Counted from here: notifications a node sent in earlier scenarios are not this outage's.
    const seen = new Map([...nodes].map(([name, node]) => [name, node.notifications.length]));
    const notificationsOf = (name: string) => nodes.get(name)!.notifications.slice(seen.get(name));
    const load = steadyLoad(client, cookie, 'admin', 4, 50);
    await sleep(1000);
    ddbRunning = false;
    await ddb.stop();
    const stoppedAt = Date.now();

    // New sign-ins fail closed, with the page's explanation in both languages.
    await sleep(500);
    const en = await client.send('POST', '/.kanmon/api/login/options', { lang: 'en' });
    const ja = await client.send('POST', '/.kanmon/api/login/options', { lang: 'ja' });
    expect(en.status).toBe(503);
    expect(en.json()).toMatchObject({ error: 'store-unavailable', message: operationsEn['operations.storeUnavailable.body'] });
    expect(ja.status).toBe(503);
    expect(ja.json()).toMatchObject({ error: 'store-unavailable', message: operationsJa['operations.storeUnavailable.body'] });
    const totp = await client.send('POST', '/.kanmon/api/login/totp', { body: { username: 'admin', code: '123456' } });
    expect(totp.status).toBe(503);

    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
    const restartingAt = Date.now();
    await ddb.start();
    ddbRunning = true;
    const restartedAt = Date.now();
    // Recovery without a restart: a full passkey sign-in works again through the same nodes.
    await until('sign-in works again', async () => ((await client.send('POST', '/.kanmon/api/login/options')).status === 200 ? true : undefined), 30_000, 200);
    const recoveredAt = Date.now();
    await sleep(1000);
    const samples = await load.stop();
    const fresh = await passkeyLogin();
    expect((await client.send('GET', '/after-outage', { cookie: fresh })).status).toBe(200);

    const during = samples.filter((s) => s.start >= stoppedAt && s.end <= restartedAt);
    const after = samples.filter((s) => s.start >= recoveredAt + 500);
    // Served from the node's cache: only sessions checked at most CACHE_SECONDS ago (plus 1 s for the request itself).
    const okBeyondBound = during.filter((s) => s.outcome === 'ok' && s.start > stoppedAt + CACHE_SECONDS * 1000 + 1000);
    const t = tally(during);
    const lastOk = Math.max(0, ...during.filter((s) => s.outcome === 'ok').map((s) => s.end - stoppedAt));
    figures.storeOutage = {
      outageMs: restartedAt - stoppedAt,
      storeStartTookMs: restartedAt - restartingAt,
      requestsDuringOutage: t.total,
      okFromCache: t.ok,
      unavailablePage: t.unavailable,
      errors: t.error,
      reLogins: t.login,
      lastOkAfterMs: lastOk,
      signInWorksAgainAfterRestartMs: recoveredAt - restartedAt,
      afterRecovery: tally(after),
      notifications: Object.fromEntries([...nodes.keys()].map((n) => [n, notificationsOf(n)])),
    };
    expect(t.login).toBe(0);
    expect(t.error, JSON.stringify(during.filter((s) => s.outcome === 'error').slice(0, 5))).toBe(0);
    expect(t.ok).toBeGreaterThan(0);
    expect(t.unavailable).toBeGreaterThan(0);
    expect(okBeyondBound).toEqual([]);
    // The same cookie works again: nobody had to sign in again.
    expect(tally(after)).toMatchObject({ login: 0, unavailable: 0, error: 0 });
    expect(tally(after).ok).toBeGreaterThan(0);
    for (const [name, node] of nodes) {
      expect(node.alive, `${name} crashed:\n${node.output()}`).toBe(true);
      // Notified once per outage and once on recovery, not per request.
      await until(`${name} reports recovery`, async () => (notificationsOf(name).includes('store.recovered') ? true : undefined), 10_000);
      expect(notificationsOf(name).filter((e) => e === 'store.unavailable')).toHaveLength(1);
      expect(notificationsOf(name).filter((e) => e === 'store.recovered')).toHaveLength(1);
    }
  }, 120_000);

  it('sent the store no request it refused as malformed, in any scenario', () => {
    expect(everyNode.flatMap((n) => n.refusedByStore.map((line) => `${n.name}: ${line}`))).toEqual([]);
  });
});
