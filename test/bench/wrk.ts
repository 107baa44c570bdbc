/** Runs `wrk` (keep-alive HTTP/1.1 load) pinned to a CPU and reads its summary. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LoadResult {
  readonly requestsPerSecond: number;
  /** Requests completed during the run. */
  readonly requests: number;
  /** Milliseconds. */
  readonly p50: number;
  readonly p99: number;
  /** Responses outside 2xx/3xx plus socket errors; a case with any is not a fair number. */
  readonly errors: number;
}

export interface LoadOptions {
  readonly url: string;
  readonly cpu: number;
  readonly connections: number;
  readonly seconds: number;
  readonly headers?: readonly string[];
}

export async function runWrk(opts: LoadOptions): Promise<LoadResult> {
  const args = ['-c', String(opts.cpu), 'wrk', '-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', '--timeout', '10s'];
  for (const h of opts.headers ?? []) args.push('-H', h);
  args.push(opts.url);
  const { stdout } = await run('taskset', args, { timeout: (opts.seconds + 30) * 1000 });
  return parseWrk(stdout);
}

export function parseWrk(out: string): LoadResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in /.exec(out);
  const p50 = /^\s+50%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out);
  if (!rps || !total || !p50 || !p99) throw new Error(`could not read wrk's output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSecond: Number(rps[1]),
    requests: Number(total[1]),
    p50: toMs(p50[1]!, p50[2]!),
    p99: toMs(p99[1]!, p99[2]!),
    errors: (non2xx ? Number(non2xx[1]) : 0) + socketErrors,
  };
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : n;
}
