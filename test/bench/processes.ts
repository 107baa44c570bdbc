/**
 * Child processes for the bench: started pinned to one CPU with `taskset`, announcing
 * readiness with one JSON line on stdout, stopped by their own pid.
 *
 * Node cases run from an esbuild bundle made with the container's own options
 * (runtime/build.mjs), so the bench measures the code as it ships rather than as a
 * development loader transpiles it (which, for one, wraps every class field's function to
 * keep its name).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundleOptions, copyStaticFiles } from '../../runtime/build.mjs';

export interface Pinned<T> {
  readonly child: ChildProcess;
  /** The JSON the process printed when it was ready. */
  readonly ready: T;
  stop(): Promise<void>;
}

/** Runs `command args…` on CPU `cpu` (a number or a taskset list like "0-1") and waits for its first stdout line, parsed as JSON. */
export async function startPinned<T>(cpu: number | string, command: string, args: readonly string[], what: string): Promise<Pinned<T>> {
  const child = spawn('taskset', ['-c', String(cpu), command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < 8192) stderr += c.toString();
  });
  const ready = await new Promise<T>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => fail(new Error(`${what} did not start within 60 s`)), 60_000);
    function fail(err: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${err.message}\n${stderr}`));
    }
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        fail(new Error(`${what} printed something other than its address: ${line}`));
      }
    });
    child.once('exit', (code) => fail(new Error(`${what} exited early with code ${code}`)));
  });
  return { child, ready, stop: () => stopChild(child) };
}

let bundles: { readonly dir: string; readonly built: Map<string, Promise<string>> } | undefined;

/** `script` bundled as the container's runtime is (under node_modules/.cache, so the native addon resolves); once per run. */
function bundled(script: string): Promise<string> {
  if (!bundles) {
    const cache = fileURLToPath(new URL('../../node_modules/.cache/', import.meta.url));
    mkdirSync(cache, { recursive: true });
    const dir = mkdtempSync(join(cache, 'kanmon-bench-'));
    copyStaticFiles(dir);
    bundles = { dir, built: new Map() };
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const { dir, built } = bundles;
  let out = built.get(script);
  if (!out) {
    const outfile = join(dir, basename(script).replace(/\.ts$/, '.mjs'));
    out = build({ ...bundleOptions(dir), entryPoints: [script], outfile, sourcemap: false, metafile: false, logLevel: 'error' }).then(() => outfile);
    built.set(script, out);
  }
  return out;
}

/** Starts a Node/TypeScript script of the bench, bundled, pinned to `cpu`. */
export async function startScript<T>(cpu: number | string, script: string, args: readonly string[], what: string): Promise<Pinned<T>> {
  return startPinned<T>(cpu, process.execPath, [await bundled(script), ...args], what);
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}
