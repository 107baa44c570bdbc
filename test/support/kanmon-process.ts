/**
 * Starting Kanmon for end-to-end tests: in-process through startKanmon (most tests), or as
 * the real `npm start` entry in a child process, plus the real CLI against the same data
 * directory. Every port is picked at run time and every data directory is a fresh tmp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startKanmon, type KanmonApp } from '../../runtime/app.js';
import type { KanmonConfigInput } from '../../runtime/config/schema.js';
import { freePort } from './ports.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The same tsx `npx tsx` would run; started directly so the child's process group is ours to end. */
const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

/** The route `npm start` uses (kanmon.config.json): the bundled demo groupware at `/`. */
export const DEMO_ROUTE = { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' } as const;

export function makeDataDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `kanmon-e2e-${label}-`));
}

/** A port free right now (picked here because a child process needs the number for KANMON_PORT). */
export { freePort } from './ports.js';

export interface TestKanmon {
  readonly app: KanmonApp;
  readonly dataDir: string;
  /** https://localhost:<port>, the WebAuthn origin. */
  readonly url: string;
  /** Stops Kanmon and removes the data directory. Close the browser first. */
  close(): Promise<void>;
}

/** Kanmon in this process on a fresh data dir and port, in front of the demo groupware. */
export async function startTestKanmon(label: string, overrides: KanmonConfigInput = {}): Promise<TestKanmon> {
  const dataDir = makeDataDir(label);
  const port = await freePort();
  const app = await startKanmon({
    ...overrides,
    dataDir,
    // localhost (not 127.0.0.1) is the public host: it is the WebAuthn RP id, and browsers
    // resolve it to the loopback address we bind.
    server: { ...(overrides.server ?? {}), port, host: '127.0.0.1' },
    log: { level: 'silent' },
    routes: overrides.routes ?? [DEMO_ROUTE],
  });
  return {
    app,
    dataDir,
    url: app.url,
    async close() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface KanmonChild {
  readonly child: ChildProcess;
  readonly port: number;
  /** The link from `Enroll the first administrator: <URL>`. */
  readonly enrollmentUrl: string;
  /** Everything the child wrote so far, for failure messages. */
  output(): string;
  /** Ends the child's process group (tsx runs node under itself) and waits for it. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
const ENROLL_LINE = /^Enroll the first administrator: (\S+)$/;

/**
 * Runs `npm start`'s command (tsx runtime/main.ts) from the repository root, so
 * kanmon.config.json with the demo route is the config, exactly as a user's first run.
 * Resolves once the first-administrator line is printed.
 */
export async function startKanmonChild(dataDir: string, opts: { bundle?: boolean } = {}): Promise<KanmonChild> {
  const port = await freePort();
  // The bundle is what the container runs (`npm run build` → dist/kanmon.mjs); the sources are what `npm start` runs.
  const [command, args] = opts.bundle ? [process.execPath, ['dist/kanmon.mjs']] : [TSX, ['runtime/main.ts']];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, KANMON_DATA_DIR: dataDir, KANMON_PORT: String(port), KANMON_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so stop() reaches tsx's node child as well.
    detached: true,
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const killLater = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, 5_000);
      await exited;
      clearTimeout(killLater);
    }
  };

  try {
    const enrollmentUrl = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => reject(new Error(`no enrollment line within ${START_TIMEOUT_MS} ms; output:\n${output}`)), START_TIMEOUT_MS);
      lines.on('line', (line) => {
        output += `${line}\n`;
        const m = ENROLL_LINE.exec(line.trim());
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`kanmon exited (${code ?? signal}) before printing the enrollment link; output:\n${output}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return { child, port, enrollmentUrl, output: () => output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the real CLI (`npx kanmon …` is tsx runtime/cli/main.ts) against a data directory
 * in its own process, as an administrator would next to a running node; SQLite's WAL lets
 * both have the database open.
 */
export function runCli(dataDir: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, ['runtime/cli/main.ts', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, KANMON_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
