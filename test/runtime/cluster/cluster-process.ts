/**
 * A Kanmon node in worker mode for the cluster tests: the real entry (runtime/main.ts) in its
 * own process, run by node with the tsx loader (no wrapper process, so the child's pid is the
 * primary's), with the config in KANMON_CONFIG_JSON and every port picked at run time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { REPO_ROOT } from '../../support/kanmon-process.js';
import { freePort } from '../../support/ports.js';

export interface ClusterChild {
  readonly child: ChildProcess;
  readonly port: number;
  readonly healthPort: number;
  /** Every line the node wrote (stdout and stderr) so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

export { freePort } from '../../support/ports.js';

/** The real entry; the worker processes run the same file. */
export const MAIN_ENTRY = 'runtime/main.ts';

/**
 * Starts the node; resolves when `until` matches a line of its output (or rejects when it exits
 * first). `entry` is the script to run (relative to the repository), `env` extra variables.
 */
export async function startClusterChild(dataDir: string, config: object, until: RegExp, opts: { port?: number; entry?: string; env?: Record<string, string> } = {}): Promise<ClusterChild> {
  const port = opts.port ?? (await freePort());
  const healthPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', opts.entry ?? MAIN_ENTRY], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      ...opts.env,
      KANMON_CONFIG_JSON: JSON.stringify(config),
      KANMON_DATA_DIR: dataDir,
      KANMON_PORT: String(port),
      KANMON_HOST: '127.0.0.1',
      KANMON_HEALTH_PORT: String(healthPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const lineListeners = new Set<(line: string) => void>();
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      output += `${line}\n`;
      for (const l of lineListeners) l(line);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${until} within 90 s; output:\n${output}`)), 90_000);
    const onLine = (line: string) => {
      if (until.test(line)) {
        clearTimeout(timer);
        lineListeners.delete(onLine);
        resolve();
      }
    };
    lineListeners.add(onLine);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`kanmon exited (${code ?? signal}) before printing ${until}; output:\n${output}`));
    });
  }).catch(async (err) => {
    await stop();
    throw err;
  });
  return { child, port, healthPort, output: () => output, exited, stop };
}

/**
 * Pids of the cluster's workers: the primary's children that run its entry (tsx's loader keeps
 * a transform service as a child of its own, which is not a worker).
 */
export function childPids(pid: number, entry = MAIN_ENTRY): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) out.push(...text.split(' ').map(Number));
    }
  } catch {
    // Gone.
  }
  return out.filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').some((arg) => arg.endsWith(entry));
    } catch {
      return false;
    }
  });
}

export function processAlive(pid: number): boolean {
  try {
    // A zombie has exited but is still listed until reaped.
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return false;
  }
}

export async function readiness(healthPort: number): Promise<{ status: number; body: { ready: boolean; checks: Record<string, string> } }> {
  const res = await request(`http://127.0.0.1:${healthPort}/readyz`, { reset: true });
  return { status: res.statusCode, body: (await res.body.json()) as { ready: boolean; checks: Record<string, string> } };
}

/** Polls `probe` until it returns true; fails after `timeoutMs` with `what`. */
export async function eventually(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An HTTPS client trusting the node's development CA; every request on a new connection, so round-robin spreads them. */
export function clientFor(dataDir: string, port: number) {
  const agent = new Agent({ connect: { ca: readFileSync(`${dataDir}/dev-ca/ca.crt`), servername: 'localhost' } });
  const origin = `https://localhost:${port}`;
  return {
    origin,
    agent,
    async send(method: 'GET' | 'POST', path: string, opts: { cookie?: string; body?: unknown } = {}) {
      const headers: Record<string, string> = { host: `localhost:${port}` };
      if (opts.cookie) headers.cookie = opts.cookie;
      if (method === 'POST') {
        headers.origin = origin;
        headers['content-type'] = 'application/json';
      }
      const res = await request(`https://127.0.0.1:${port}${path}`, {
        method,
        headers,
        reset: true,
        dispatcher: agent,
        ...(method === 'POST' ? { body: JSON.stringify(opts.body ?? {}) } : {}),
      });
      const text = await res.body.text();
      return { status: res.statusCode, headers: res.headers, text, json: <T = any>() => JSON.parse(text) as T };
    },
  };
}
