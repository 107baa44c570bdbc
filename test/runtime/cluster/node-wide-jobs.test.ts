/**
 * Worker mode does each node-wide job once and shows the node's health on every worker: the
 * client-certificate expiry warnings run in the primary only (not once per worker); with
 * tls.source "file" the primary follows swapped certificate files as the workers do; and the
 * console's dashboard, served by the workers, lists the primary's self-check results, also
 * on a worker started later. A real primary and three workers in their own process group,
 * real TLS with openssl-made certificates, SQLite, a real upstream, passkey sign-in over HTTPS.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../../../runtime/services/sessions.js';
import { SoftAuthenticator } from '../../support/soft-authenticator.js';
import { childPids, eventually, startClusterChild, type ClusterChild } from './cluster-process.js';

const ENTRY = 'test/runtime/cluster/timed-entry.ts';
const ENROLL_LINE = /^Enroll the first administrator: (\S+)$/;
const WORKERS = 3;

interface LogEntry {
  readonly msg?: string;
  readonly role?: string;
  readonly worker?: number;
  readonly holder?: string;
  readonly reqId?: unknown;
  readonly req?: { readonly url?: string };
  readonly [key: string]: unknown;
}

function logEntries(output: string): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      entries.push(JSON.parse(line) as LogEntry);
    } catch {
      // Not a log line.
    }
  }
  return entries;
}

/** A CA, and leaves for localhost signed by it with the given lifetimes (openssl). */
function makeCertificates(dir: string, lifetimesDays: readonly number[]): { ca: string; leaves: Array<{ cert: string; key: string }> } {
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  run('req', '-x509', ...ec, '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=Kanmon cluster test CA', '-days', '800');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  const leaves = lifetimesDays.map((days, i) => {
    const cert = join(dir, `leaf${i}.pem`);
    const key = join(dir, `leaf${i}.key`);
    run('req', ...ec, '-nodes', '-keyout', key, '-out', join(dir, `leaf${i}.csr`), '-subj', '/CN=localhost');
    run('x509', '-req', '-in', join(dir, `leaf${i}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', cert, '-days', String(days), '-extfile', join(dir, 'ext.cnf'));
    return { cert, key };
  });
  return { ca: join(dir, 'ca.pem'), leaves };
}

/** The dashboard's health panel: each check's name, state and detail. */
function healthPanel(page: string): Array<{ name: string; state: string; detail: string }> {
  const list = /<ul id="health" class="plain">([\s\S]*?)<\/ul>/.exec(page);
  if (!list) throw new Error('no health panel on the page');
  return [...list[1]!.matchAll(/<li class="(ok|failing)"><span[^>]*>[^<]*<\/span> (\S+) <small>([^<]*)<\/small><\/li>/g)].map((m) => ({ state: m[1]!, name: m[2]!, detail: m[3]! }));
}

describe('worker mode: node-wide jobs once, the primary’s health on every worker', () => {
  let work: string;
  let upstream: Server;
  let node: ClusterChild;
  let agent: Agent;
  let origin: string;
  let certFile: string;
  let keyFile: string;
  let renewed: { cert: string; key: string };
  let cookie: string;
  let probes = 0;

  /** A request on a fresh connection (round-robin hands each to the next worker). */
  async function send(method: 'GET' | 'POST', path: string, body?: unknown, withCookie?: string) {
    const headers: Record<string, string> = { host: new URL(origin).host };
    if (withCookie) headers.cookie = withCookie;
    if (method === 'POST') Object.assign(headers, { origin, 'content-type': 'application/json' });
    const res = await request(`https://127.0.0.1:${node.port}${path}`, { method, headers, reset: true, dispatcher: agent, ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}) });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: <T = any>() => JSON.parse(text) as T };
  }

  /** The dashboard as one worker serves it, and which worker that was (from its request log line). */
  async function dashboard(): Promise<{ worker: number; health: ReturnType<typeof healthPanel> }> {
    const probe = `probe-${++probes}`;
    const res = await send('GET', `/.kanmon/admin?${probe}`, undefined, cookie);
    expect(res.status).toBe(200);
    let worker: number | undefined;
    await eventually(`the request log line of ${probe}`, () => {
      worker = logEntries(node.output()).find((e) => typeof e.worker === 'number' && e.req?.url?.endsWith(probe))?.worker;
      return worker !== undefined;
    }, 10_000);
    return { worker: worker!, health: healthPanel(res.text) };
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'kanmon-cluster-jobs-'));
    const certs = join(work, 'certs');
    mkdirSync(certs);
    // The first certificate is inside the 14-day warning window (its check fails); the second is not.
    const made = makeCertificates(certs, [10, 400]);
    renewed = made.leaves[1]!;
    certFile = join(work, 'server.pem');
    keyFile = join(work, 'server.key');
    copyFileSync(made.leaves[0]!.cert, certFile);
    copyFileSync(made.leaves[0]!.key, keyFile);

    upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;

    const dataDir = join(work, 'data');
    mkdirSync(dataDir);
    node = await startClusterChild(
      dataDir,
      {
        server: { workers: WORKERS, shutdownGraceSeconds: 2 },
        log: { level: 'debug' },
        tls: { source: 'file', certFile, keyFile },
        routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: upstreamUrl }],
      },
      /"msg":"Kanmon is listening"/,
      {
        entry: ENTRY,
        // Self-check every 5 minutes: within this test, only its first run and the runs a change
        // triggers happen, so a replacement worker can only have the results from its start.
        env: { KANMON_CLUSTER_TIMING: JSON.stringify({ certificatePollMs: 200, selfCheckIntervalMs: 300_000, certificateExpiryWarnings: { firstRunDelayMs: 100, intervalMs: 300 } }) },
      },
    );
    origin = `https://localhost:${node.port}`;
    agent = new Agent({ connect: { ca: readFileSync(made.ca), servername: 'localhost' } });
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    await agent?.close();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('runs the client-certificate expiry warnings in the primary only: one job for the node, not one per worker', async () => {
    expect(childPids(node.child.pid!, ENTRY)).toHaveLength(WORKERS);
    const runs = () => logEntries(node.output()).filter((e) => typeof e.msg === 'string' && e.msg.startsWith('certificate expiry warnings'));
    await eventually('three runs of the expiry warnings', () => runs().filter((e) => e.msg === 'certificate expiry warnings ran').length >= 3, 30_000);
    // Every attempt (a run, or a lease found held) was the primary's, and always the same job's.
    const attempts = runs();
    expect(attempts.filter((e) => e.worker !== undefined)).toEqual([]);
    expect(attempts.every((e) => e.role === 'primary')).toBe(true);
    expect(new Set(attempts.map((e) => e.holder)).size).toBe(1);
    expect(attempts.some((e) => e.msg === 'certificate expiry warnings: another node holds the lease')).toBe(false);
  });

  it('shows the primary’s self-check on the console dashboard, whichever worker serves it', async () => {
    const link = node.output().split('\n').map((l) => ENROLL_LINE.exec(l)).find(Boolean)![1]!;
    const token = new URL(link).searchParams.get('token')!;
    const key = new SoftAuthenticator({ origin });
    const options = await send('POST', '/.kanmon/api/enroll/options', { token, username: 'admin' });
    expect(options.status).toBe(200);
    expect((await send('POST', '/.kanmon/api/enroll/verify', { token, response: key.register(options.json()), name: 'key' })).status).toBe(200);
    const login = await send('POST', '/.kanmon/api/login/options', {});
    const verified = await send('POST', '/.kanmon/api/login/verify', { response: key.authenticate(login.json()) });
    expect(verified.status).toBe(200);
    const setCookie = verified.headers['set-cookie'];
    cookie = (Array.isArray(setCookie) ? setCookie : [setCookie]).find((c) => c?.startsWith(`${SESSION_COOKIE}=`))!.split(';')[0]!;

    const servedBy = new Set<number>();
    for (let i = 0; i < 2 * WORKERS; i++) {
      const { worker, health } = await dashboard();
      servedBy.add(worker);
      expect(health.map((h) => h.name).sort()).toEqual(['certificate', 'store', 'upstream:app']);
      expect(health.find((h) => h.name === 'store')!.state).toBe('ok');
      expect(health.find((h) => h.name === 'upstream:app')!.state).toBe('ok');
      // The 10-day certificate, as the primary checks it.
      expect(health.find((h) => h.name === 'certificate')).toMatchObject({ state: 'failing', detail: expect.stringMatching(/^server certificate expires in 9 days/) });
    }
    expect(servedBy.size).toBe(WORKERS);
  });

  it('follows certificate files swapped under the running node: the primary’s check, its log and every worker’s dashboard', async () => {
    // Replaced as an operator (or certbot's deploy hook) does: each file renamed into place.
    copyFileSync(renewed.key, `${keyFile}.new`);
    copyFileSync(renewed.cert, `${certFile}.new`);
    renameSync(`${keyFile}.new`, keyFile);
    renameSync(`${certFile}.new`, certFile);

    const primary = () => logEntries(node.output()).filter((e) => e.role === 'primary');
    await eventually('the primary reloading the certificate', () => primary().some((e) => e.msg === 'server certificate reloaded'), 20_000);
    await eventually('the primary’s certificate check turning ok', () => primary().some((e) => e.msg === 'self-check certificate is ok'), 20_000);
    // The workers put it into service too (each logs its own reload).
    await eventually('every worker reloading it', () => new Set(logEntries(node.output()).filter((e) => e.msg === 'server certificate reloaded' && typeof e.worker === 'number').map((e) => e.worker)).size >= WORKERS, 20_000);

    const servedBy = new Set<number>();
    for (let i = 0; i < 2 * WORKERS; i++) {
      const { worker, health } = await dashboard();
      servedBy.add(worker);
      expect(health.find((h) => h.name === 'certificate')).toMatchObject({ state: 'ok', detail: expect.stringMatching(/^server certificate valid for 399 more days/) });
    }
    expect(servedBy.size).toBe(WORKERS);
  });

  it('gives a worker started later the latest results at once', async () => {
    const before = childPids(node.child.pid!, ENTRY);
    process.kill(before[0]!, 'SIGKILL');
    let replacement: number | undefined;
    await eventually('a replacement worker listening', () => {
      const after = node.output().split('worker exited unexpectedly')[1] ?? '';
      replacement = logEntries(after).find((e) => e.role === 'primary' && e.msg === 'worker listening')?.worker;
      return replacement !== undefined;
    }, 60_000);
    // The self-check does not run again within this test (every 5 minutes), so what the replacement shows came with its start.
    let seen: ReturnType<typeof healthPanel> | undefined;
    for (let i = 0; i < 4 * WORKERS && !seen; i++) {
      const { worker, health } = await dashboard();
      expect(health.map((h) => h.name).sort()).toEqual(['certificate', 'store', 'upstream:app']);
      if (worker === replacement) seen = health;
    }
    expect(seen).toBeDefined();
    expect(seen!.find((h) => h.name === 'certificate')).toMatchObject({ state: 'ok', detail: expect.stringMatching(/^server certificate valid for 399 more days/) });
  });
});
