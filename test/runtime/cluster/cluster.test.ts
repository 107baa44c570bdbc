/**
 * Worker mode (server.workers ≥ 2): the real entry in its own process, a primary and two
 * workers sharing the port through node:cluster, a real upstream, real TLS and SQLite, and
 * passkey ceremonies over HTTPS whose steps land on different workers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, ConfigError } from '../../../runtime/config/schema.js';
import { SESSION_COOKIE } from '../../../runtime/services/sessions.js';
import { SoftAuthenticator } from '../../support/soft-authenticator.js';
import { childPids, clientFor, eventually, freePort, processAlive, readiness, startClusterChild, type ClusterChild } from './cluster-process.js';

const ENROLL_LINE = /^Enroll the first administrator: (\S+)$/;

interface Upstream {
  readonly url: string;
  /** Requests to /slow wait here until released. */
  readonly held: ServerResponse[];
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const held: ServerResponse[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/slow') {
      held.push(res);
      return;
    }
    const body = JSON.stringify({ path: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    held,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function cookieFrom(setCookie: string | string[] | undefined): string | undefined {
  const all = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  return all.find((c) => c.startsWith(`${SESSION_COOKIE}=`))?.split(';')[0];
}

/** Worker ids that logged handling a portal request (fastify's request log lines carry the worker's id). */
function workersThatServedPortal(output: string): Set<number> {
  const ids = new Set<number>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { worker?: number; component?: string; req?: unknown; reqId?: unknown };
      if (entry.component === 'portal' && entry.reqId !== undefined && typeof entry.worker === 'number') ids.add(entry.worker);
    } catch {
      // Not a log line.
    }
  }
  return ids;
}

describe('server.workers in the config', () => {
  it('accepts "auto" and integers from 1 to 64, and defaults to one process', () => {
    expect(parseConfig({}).server.workers).toBe(1);
    expect(parseConfig({ server: { workers: 'auto' } }).server.workers).toBe('auto');
    expect(parseConfig({ server: { workers: 4 } }).server.workers).toBe(4);
  });

  it.each([0, 65, 1.5, 'many', null, true])('refuses %j with one clear message', (value) => {
    let error: unknown;
    try {
      parseConfig({ server: { workers: value as never } });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as Error).message.split('\n').filter((l) => l.includes("'workers'"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`server: option 'workers' must be "auto" or an integer from 1 to 64, got ${JSON.stringify(value)}`);
  });
});

describe('worker mode: a primary and two workers', () => {
  let dataDir: string;
  let upstream: Upstream;
  let node: ClusterChild;
  let client: ReturnType<typeof clientFor>;
  let cookie: string;
  const authenticator = () => new SoftAuthenticator({ origin: client.origin });
  let key: SoftAuthenticator;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'kanmon-cluster-'));
    upstream = await startUpstream();
    node = await startClusterChild(
      dataDir,
      { server: { workers: 2, shutdownGraceSeconds: 30 }, log: { level: 'info' }, routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: upstream.url }] },
      /"msg":"Kanmon is listening"/,
    );
    client = clientFor(dataDir, node.port);
  });

  afterAll(async () => {
    await node?.stop();
    await client?.agent.close();
    await upstream?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs the primary with two worker processes, ready, and prints the enrollment link exactly once', async () => {
    expect(childPids(node.child.pid!)).toHaveLength(2);
    const ready = await readiness(node.healthPort);
    expect(ready).toMatchObject({ status: 200, body: { ready: true, checks: { routes: '1', store: 'ok', draining: 'no' } } });
    expect(node.output().split('\n').filter((l) => ENROLL_LINE.test(l))).toHaveLength(1);
  });

  it('enrolls and signs in with a passkey, each ceremony step on a fresh connection, served by both workers', async () => {
    const link = node.output().split('\n').map((l) => ENROLL_LINE.exec(l)).find(Boolean)![1]!;
    const token = new URL(link).searchParams.get('token')!;
    key = authenticator();
    const options = await client.send('POST', '/.kanmon/api/enroll/options', { body: { token, username: 'admin' } });
    expect(options.status).toBe(200);
    const enrolled = await client.send('POST', '/.kanmon/api/enroll/verify', { body: { token, response: key.register(options.json()), name: 'key' } });
    expect(enrolled.status).toBe(200);
    // The link is single-use across workers too.
    const again = await client.send('POST', '/.kanmon/api/enroll/options', { body: { token, username: 'admin' } });
    expect(again.status).toBeGreaterThanOrEqual(400);
    expect(again.status).toBeLessThan(500);

    const login = await client.send('POST', '/.kanmon/api/login/options', {});
    expect(login.status).toBe(200);
    const assertion = key.authenticate(login.json());
    const verified = await client.send('POST', '/.kanmon/api/login/verify', { body: { response: assertion } });
    expect(verified.status).toBe(200);
    cookie = cookieFrom(verified.headers['set-cookie'])!;
    expect(cookie).toBeDefined();
    // The same assertion again is a replay, whichever worker gets it.
    const replay = await client.send('POST', '/.kanmon/api/login/verify', { body: { response: assertion } });
    expect(replay.status).toBeGreaterThanOrEqual(400);
    expect(replay.status).toBeLessThan(500);

    // Portal requests went to both workers (round-robin per connection), and the shared store carried the ceremonies.
    await eventually('portal log lines from both workers', () => workersThatServedPortal(node.output()).size === 2, 10_000);
  });

  it('proxies authenticated requests with the identity headers from every worker, and sends the unauthenticated to the login page', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await client.send('GET', `/page-${i}`, { cookie });
      expect(res.status).toBe(200);
      const seen = res.json<{ path: string; headers: Record<string, string> }>();
      expect(seen.path).toBe(`/page-${i}`);
      expect(seen.headers['x-kanmon-user']).toBe('admin');
      expect(seen.headers['x-kanmon-jwt']).toMatch(/^ey/);
    }
    const anonymous = await client.send('GET', '/page');
    expect(anonymous.status).toBe(302);
    expect(anonymous.headers.location).toMatch(/^\/\.kanmon\/login\?return=/);
    const forged = await client.send('GET', '/page', { cookie: `${SESSION_COOKIE}=not-a-session` });
    expect(forged.status).toBe(302);
  });

  it('handles concurrent store writes from both workers (SQLite WAL across processes)', async () => {
    const answers = await Promise.all(Array.from({ length: 24 }, () => client.send('POST', '/.kanmon/api/login/options', {})));
    expect(answers.map((a) => a.status)).toEqual(Array(24).fill(200));
    const pages = await Promise.all(Array.from({ length: 24 }, (_, i) => client.send('GET', `/burst-${i}`, { cookie })));
    expect(pages.map((p) => p.status)).toEqual(Array(24).fill(200));
  });

  it('replaces a worker that is killed, logs it, and keeps serving the same session', async () => {
    const before = childPids(node.child.pid!);
    expect(before).toHaveLength(2);
    const victim = before[0]!;
    process.kill(victim, 'SIGKILL');
    await eventually('a replacement worker', () => {
      const now = childPids(node.child.pid!);
      return now.length === 2 && !now.includes(victim) && now.includes(before[1]!);
    });
    await eventually('the replacement listening', () => /"msg":"worker listening"/.test(node.output().split('worker exited unexpectedly')[1] ?? ''));
    expect(node.output()).toMatch(/"signal":"SIGKILL".*"msg":"worker exited unexpectedly; starting a replacement"/);
    expect((await readiness(node.healthPort)).body.ready).toBe(true);
    for (let i = 0; i < 6; i++) {
      const res = await client.send('GET', `/after-${i}`, { cookie });
      expect(res.status).toBe(200);
      expect(res.json<{ headers: Record<string, string> }>().headers['x-kanmon-user']).toBe('admin');
    }
  });

  it('drains on SIGTERM: readiness turns false, an in-flight request finishes, every worker and the primary exit cleanly', async () => {
    const workers = childPids(node.child.pid!);
    expect(workers).toHaveLength(2);
    const inFlight = client.send('GET', '/slow', { cookie });
    await eventually('the upstream holding the request', () => upstream.held.length === 1, 10_000);
    node.child.kill('SIGTERM');
    await eventually('readiness reporting the drain', async () => {
      const r = await readiness(node.healthPort);
      return r.status === 503 && r.body.checks.draining === 'yes';
    }, 10_000);
    // Still draining: nothing has exited while the request is held.
    expect(node.child.exitCode).toBeNull();
    const held = upstream.held[0]!;
    held.writeHead(200, { 'content-type': 'text/plain', 'content-length': 8 });
    held.end('finished');
    const answer = await inFlight;
    expect(answer).toMatchObject({ status: 200, text: 'finished' });
    expect(await node.exited).toEqual({ code: 0, signal: null });
    await eventually('every worker gone', () => workers.every((pid) => !processAlive(pid)), 10_000);
    expect(node.output()).toMatch(/"reason":"primary".*"msg":"worker draining"/);
  });
});

describe('worker mode: start-up failures', () => {
  it('stops with a clear message and exit code 1 when the workers cannot listen', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kanmon-cluster-busy-'));
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', () => resolve()));
    try {
      const failed = startClusterChild(dataDir, { server: { workers: 2 }, log: { level: 'silent' }, routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: 'http://127.0.0.1:9' }] }, /never printed/, { port });
      await expect(failed).rejects.toThrow(/exited \(1\)[\s\S]*Kanmon failed to start: .*a worker could not start: .*EADDRINUSE/);
    } finally {
      squatter.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('worker mode: a primary that is killed', () => {
  it('leaves no worker behind: each exits when its primary is gone', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kanmon-cluster-orphan-'));
    try {
      const node = await startClusterChild(
        dataDir,
        { server: { workers: 2, shutdownGraceSeconds: 1 }, log: { level: 'info' }, routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: 'http://127.0.0.1:9' }] },
        /"msg":"Kanmon is listening"/,
      );
      const workers = childPids(node.child.pid!);
      expect(workers).toHaveLength(2);
      node.child.kill('SIGKILL');
      await node.exited;
      await eventually('every worker gone', () => workers.every((pid) => !processAlive(pid)), 30_000);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
