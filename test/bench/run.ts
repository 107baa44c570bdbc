/**
 * `npm run bench`: how fast Kanmon forwards, against the upstream alone and against nginx,
 * measured in one run on one machine so the ratios mean something.
 *
 * Cases, each at the same concurrency, for a 1 KiB and a 100 KiB response:
 *   direct upstream   wrk → upstream (plain HTTP): the ceiling
 *   nginx             wrk → nginx (TLS, 1 worker, upstream keep-alive pool) → upstream: the yardstick
 *   ref: fastify…     wrk → Fastify + @fastify/http-proxy → upstream  } the issue's reference proxies
 *   ref: node:http…   wrk → node:http(s) + an undici Pool → upstream    } (test/bench/reference-node.ts)
 *   bare forwarder    wrk → node https + the forwarder, no auth → upstream: what forwarding costs
 *   kanmon            wrk → Kanmon with a signed-in session cookie → upstream: the real thing
 *   bare + rewriting  the bare forwarder with body rewriting (test/bench/rewrite-case.ts); with
 *                     the nginx upstream every case also gets a 100 KiB HTML page to rewrite
 *
 * and, with --workers N above 1 (default: one per CPU), the same number of processes each:
 *   nginx, N workers  worker_processes N
 *   kanmon, N workers server.workers N (node:cluster: a primary and N workers)
 *
 * The machine has two cores: the proxy under test gets CPU 0 alone; wrk and the upstream
 * share CPU 1. The N-worker cases spread the proxy over CPUs 0..N-1 (on two cores, it shares
 * CPU 1 with the load). Options: --workers N|auto, --seconds N (measured, default 8), --warmup N (default 2),
 * --connections N (default 64), --rounds N (repeat, keep each case's best; default 1),
 * --upstream nginx|node (default nginx: static files, so the shared core is not the limit),
 * --only case,case.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLOCK_TICKS_PER_SECOND, foreignPercent, sampleCpu } from './cpu-usage.js';
import { BODIES } from './bodies.js';
import { proxyConfig, startNginx, staticConfig } from './nginx.js';
import { startScript, type Pinned } from './processes.js';
import { ensureTools, makeCertificate } from './tools.js';
import { runWrk, type LoadResult } from './wrk.js';
import { withPeakRss } from './memory.js';
import { REWRITE_BODIES } from './rewrite-case.js';
import { freePort } from '../support/ports.js';

const PROXY_CPU = 0;
const LOAD_CPU = 1;
const SIZES = [
  { path: '/1k', label: '1 KiB', bytes: BODIES['/1k']!.length },
  { path: '/100k', label: '100 KiB', bytes: BODIES['/100k']!.length },
  { path: '/100k.html', label: '100 KiB HTML', bytes: REWRITE_BODIES['/100k.html']!.length },
] as const;
/** The HTML page is a static file: only the nginx upstream serves it. */
const sizesFor = (opts: { upstream: 'nginx' | 'node' }) => SIZES.filter((s) => opts.upstream === 'nginx' || s.path !== '/100k.html');
const CASES = ['direct', 'nginx', 'fastify', 'undici', 'bare', 'kanmon', 'rewrite', 'nginx-workers', 'kanmon-workers'] as const;
type CaseName = (typeof CASES)[number];
const CASE_LABEL: Record<CaseName, string> = {
  direct: 'direct upstream', nginx: 'nginx, 1 worker', fastify: 'ref: fastify+http-proxy', undici: 'ref: node:http+undici', bare: 'bare forwarder', kanmon: 'kanmon, 1 process', rewrite: 'bare + rewriting',
  // Filled in from --workers by parseArgs.
  'nginx-workers': 'nginx, N workers', 'kanmon-workers': 'kanmon, N workers',
};
/** Each case is compared with nginx running the same number of processes. */
const baseOf = (name: CaseName) => (name.endsWith('-workers') ? 'nginx-workers' : 'nginx');

interface Target {
  readonly url: string;
  readonly headers: readonly string[];
  /** The proxy's process, whose CPU time is not counted as interference; none for the direct case. */
  readonly pid?: number;
  /** The CPUs the proxy may run on, when it is spread over several (the N-worker cases). */
  readonly cpus?: readonly number[];
  /** Bodies this case changes on purpose: path → the size it must return. */
  readonly expectBytes?: Readonly<Record<string, number>>;
}

interface Measurement extends LoadResult {
  /** Share of the proxy's core taken by unrelated processes during the run. */
  readonly proxyCoreLoad?: number;
  /** Share of the load core (wrk and upstream) taken by unrelated processes during the run. */
  readonly loadCoreLoad?: number;
  /**
   * The proxy's own CPU time per request, in microseconds: unlike req/s, barely moved by
   * other processes competing for the core, so the fairest comparison on a busy machine.
   */
  readonly cpuPerRequestUs?: number;
  /** The proxy's resident memory (its whole process tree), the largest sample taken during the run. */
  readonly peakRssBytes?: number;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const all = parseArgs(process.argv.slice(2));
  for (const transport of all.transport === 'both' ? (['tls', 'plain'] as const) : [all.transport]) {
    await runOnce({ ...all, transport });
  }
}

async function runOnce(opts: Options & { transport: 'tls' | 'plain' }): Promise<void> {
  const plain = opts.transport === 'plain';
  const tools = ensureTools(log);
  if (cpus().length < 2) log('warning: fewer than 2 CPUs; proxy and load generator will share one');
  const busy = await cpuBusyPercent();
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-bench-'));
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    while (stops.length) await stops.pop()!().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

  try {
    const { certFile, keyFile } = makeCertificate(dir);
    let upstreamPort: number;
    const upstreamPids: number[] = [];
    if (opts.upstream === 'nginx') {
      upstreamPort = await freePort();
      const dirOf = join(dir, 'nginx-upstream');
      const origin = await startNginx(tools.nginx, dirOf, staticConfig(dirOf, upstreamPort, { ...BODIES, ...REWRITE_BODIES }), upstreamPort, LOAD_CPU);
      stops.push(origin.stop);
      if (origin.pid) upstreamPids.push(origin.pid);
    } else {
      const origin = await startScript<{ port: number }>(LOAD_CPU, here('./upstream.ts'), [], 'upstream');
      stops.push(origin.stop);
      upstreamPort = origin.ready.port;
      if (origin.child.pid) upstreamPids.push(origin.child.pid);
    }
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;

    const targets = new Map<CaseName, Target>();
    if (opts.only.has('direct')) targets.set('direct', { url: upstreamUrl, headers: [] });
    if (opts.only.has('nginx')) {
      const port = await freePort();
      const dirOf = join(dir, 'nginx-proxy');
      const nginx = await startNginx(tools.nginx, dirOf, proxyConfig(dirOf, { port, upstreamPort, certFile, keyFile, tls: !plain }), port, PROXY_CPU);
      stops.push(nginx.stop);
      targets.set('nginx', { url: `${plain ? 'http' : 'https'}://127.0.0.1:${port}`, headers: [], ...(nginx.pid ? { pid: nginx.pid } : {}) });
    }
    if (opts.only.has('bare')) {
      const bare: Pinned<{ url: string }> = await startScript(PROXY_CPU, here('./forwarder-node.ts'), [upstreamUrl, certFile, keyFile, opts.transport], 'bare forwarder');
      stops.push(bare.stop);
      targets.set('bare', { url: bare.ready.url, headers: [], ...(bare.child.pid ? { pid: bare.child.pid } : {}) });
    }
    // The issue's reference proxies: whether this frame reproduces the figures the target was set on.
    for (const kind of ['fastify', 'undici'] as const) {
      if (!opts.only.has(kind)) continue;
      const ref: Pinned<{ url: string }> = await startScript(PROXY_CPU, here('./reference-node.ts'), [kind, upstreamUrl, certFile, keyFile, opts.transport], CASE_LABEL[kind]);
      stops.push(ref.stop);
      targets.set(kind, { url: ref.ready.url, headers: [], ...(ref.child.pid ? { pid: ref.child.pid } : {}) });
    }
    if (opts.only.has('rewrite')) {
      const rw: Pinned<{ url: string; expectBytes: Record<string, number> }> = await startScript(PROXY_CPU, here('./rewrite-case.ts'), [upstreamUrl, certFile, keyFile, opts.transport], 'bare + rewriting');
      stops.push(rw.stop);
      targets.set('rewrite', { url: rw.ready.url, headers: [], expectBytes: rw.ready.expectBytes, ...(rw.child.pid ? { pid: rw.child.pid } : {}) });
    }
    if (opts.only.has('kanmon')) {
      const dataDir = join(dir, 'kanmon-data');
      const kanmon: Pinned<{ url: string; cookie: string }> = await startScript(PROXY_CPU, here('./kanmon-node.ts'), [upstreamUrl, dataDir, opts.transport], 'kanmon');
      stops.push(kanmon.stop);
      targets.set('kanmon', {
        url: kanmon.ready.url,
        headers: [`Cookie: ${kanmon.ready.cookie}`],
        ...(kanmon.child.pid ? { pid: kanmon.child.pid } : {}),
      });
    }

    // Same number of processes each, spread over CPUs 0..N-1.
    const spread = Array.from({ length: Math.min(opts.workers, cpus().length) }, (_, i) => i);
    if (opts.workers > 1 && opts.only.has('nginx-workers')) {
      const port = await freePort();
      const dirOf = join(dir, 'nginx-proxy-workers');
      const nginx = await startNginx(tools.nginx, dirOf, proxyConfig(dirOf, { port, upstreamPort, certFile, keyFile, tls: !plain, workers: opts.workers }), port, spread.join(','));
      stops.push(nginx.stop);
      targets.set('nginx-workers', { url: `${plain ? 'http' : 'https'}://127.0.0.1:${port}`, headers: [], cpus: spread, ...(nginx.pid ? { pid: nginx.pid } : {}) });
    }
    if (opts.workers > 1 && opts.only.has('kanmon-workers')) {
      const dataDir = join(dir, 'kanmon-data-workers');
      const kanmon: Pinned<{ url: string; cookie: string }> = await startScript(spread.join(','), here('./kanmon-node.ts'), [upstreamUrl, dataDir, opts.transport, String(opts.workers)], 'kanmon workers');
      stops.push(kanmon.stop);
      targets.set('kanmon-workers', { url: kanmon.ready.url, headers: [`Cookie: ${kanmon.ready.cookie}`], cpus: spread, ...(kanmon.child.pid ? { pid: kanmon.child.pid } : {}) });
    }

    // A case that answers with a login redirect or an error page would be measured happily
    // by wrk; make sure every case really returns the upstream's body first.
    for (const [name, target] of targets) {
      for (const size of sizesFor(opts)) await expectBody(name, target, size.path, target.expectBytes?.[size.path] ?? size.bytes);
    }

    const results = new Map<string, Measurement>();
    for (let round = 1; round <= opts.rounds; round++) {
      for (const size of sizesFor(opts)) {
        for (const [name, target] of targets) {
          log(`measuring ${CASE_LABEL[name]} ${size.label}${opts.rounds > 1 ? ` (round ${round} of ${opts.rounds})` : ''} …`);
          const load = { url: `${target.url}${size.path}`, cpu: LOAD_CPU, connections: opts.connections, headers: target.headers };
          if (opts.warmup > 0) await runWrk({ ...load, seconds: opts.warmup });
          const proxyPids = target.pid ? [target.pid] : [];
          // A proxy spread over several CPUs shares them with the load: interference is then
          // measured over all of those CPUs at once, everything of the bench's own counted as own.
          const shared = target.cpus && target.cpus.length > 1 ? [...new Set([...target.cpus, LOAD_CPU])] : undefined;
          const sampleAll = () => sampleCpu(shared!, [...proxyPids, ...upstreamPids], true);
          const allBefore = shared ? sampleAll() : undefined;
          const before = [sampleCpu(PROXY_CPU, proxyPids), sampleCpu(LOAD_CPU, upstreamPids, true)] as const;
          const { result, peakRssBytes } = await withPeakRss(target.pid, () => runWrk({ ...load, seconds: opts.seconds }));
          const afterProxy = sampleCpu(PROXY_CPU, proxyPids);
          const allLoad = shared ? foreignPercent(allBefore, sampleAll()) : undefined;
          const proxyCoreLoad = target.pid ? (shared ? allLoad : foreignPercent(before[0], afterProxy)) : undefined;
          const cpuPerRequestUs =
            target.pid && before[0] && afterProxy && result.requests > 0
              ? ((afterProxy.ownTicks - before[0].ownTicks) * 1e6) / CLOCK_TICKS_PER_SECOND / result.requests
              : undefined;
          const loadCoreLoad = shared ? allLoad : foreignPercent(before[1], sampleCpu(LOAD_CPU, upstreamPids, true));
          const key = `${name} ${size.path}`;
          const previous = results.get(key);
          // Over several rounds keep each case's best, metric by metric: interference only
          // ever makes a run slower or costlier.
          const bestCpu = Math.min(cpuPerRequestUs ?? Infinity, previous?.cpuPerRequestUs ?? Infinity);
          const best = !previous || result.requestsPerSecond > previous.requestsPerSecond
            ? {
                ...result,
                ...(proxyCoreLoad !== undefined ? { proxyCoreLoad } : {}),
                ...(loadCoreLoad !== undefined ? { loadCoreLoad } : {}),
              }
            : previous;
          // Memory the other way round: the most any round held is what the case needs.
          const peakRss = Math.max(peakRssBytes ?? 0, previous?.peakRssBytes ?? 0);
          results.set(key, { ...best, ...(Number.isFinite(bestCpu) ? { cpuPerRequestUs: bestCpu } : {}), ...(peakRss > 0 ? { peakRssBytes: peakRss } : {}) });
        }
      }
    }

    printReport(opts, busy, targets, results);
  } finally {
    await stopAll();
  }
}

function printReport(opts: Options & { transport: 'tls' | 'plain' }, busyBefore: number, targets: Map<CaseName, Target>, results: Map<string, Measurement>): void {
  const out: string[] = [];
  out.push(`Kanmon bench — ${opts.transport === 'tls' ? 'TLS terminated by the proxy' : 'TLS offloaded (plain HTTP)'}`);
  out.push(
    `CPU pinning (taskset): proxy under test (nginx with 1 worker, bare forwarder, or Kanmon in 1 process) alone on CPU ${PROXY_CPU}; ` +
      `wrk (1 thread) and the upstream (${opts.upstream === 'nginx' ? 'nginx serving static files' : 'node http'}) together on CPU ${LOAD_CPU}.` +
      (opts.workers > 1
        ? ` "N workers" cases: nginx and Kanmon each with ${opts.workers} worker processes on CPUs 0-${Math.min(opts.workers, cpus().length) - 1}` +
          (Math.min(opts.workers, cpus().length) - 1 >= LOAD_CPU ? `, sharing CPU ${LOAD_CPU} with wrk and the upstream` : '') +
          '; compared with each other only.'
        : ''),
  );
  out.push(
    `Load: wrk, ${opts.connections} keep-alive connections, ${opts.warmup} s warm-up then ${opts.seconds} s measured per case. ` +
      (opts.transport === 'tls'
        ? 'TLS from wrk to nginx, the bare forwarder and Kanmon; plain HTTP to the upstream (and for "direct upstream").'
        : 'Plain HTTP everywhere: TLS offloaded, as behind an NLB with an ACM certificate (Kanmon tls.source "offloaded").'),
  );
  if (busyBefore > 15) out.push(`warning: the machine was ${busyBefore.toFixed(0)}% busy before the run; other work skews these numbers.`);
  out.push('');
  const header = [
    'size', 'case', 'req/s', 'vs nginx', 'p50 ms', 'vs nginx', 'p99 ms', 'vs nginx',
    'CPU µs/req', 'vs nginx', 'RSS MiB', 'vs nginx', 'errors', `other load CPU ${PROXY_CPU}/${LOAD_CPU}`,
  ];
  const rows: string[][] = [header];
  for (const size of sizesFor(opts)) {
    let first = true;
    for (const name of targets.keys()) {
      const base = results.get(`${baseOf(name)} ${size.path}`);
      const r = results.get(`${name} ${size.path}`)!;
      rows.push([
        first ? size.label : '',
        CASE_LABEL[name],
        r.requestsPerSecond.toFixed(0),
        ratio(r.requestsPerSecond, base?.requestsPerSecond),
        r.p50.toFixed(2),
        ratio(r.p50, base?.p50),
        r.p99.toFixed(2),
        ratio(r.p99, base?.p99),
        r.cpuPerRequestUs === undefined ? '-' : r.cpuPerRequestUs.toFixed(0),
        ratio(r.cpuPerRequestUs, base?.cpuPerRequestUs),
        r.peakRssBytes === undefined ? '-' : (r.peakRssBytes / 2 ** 20).toFixed(0),
        ratio(r.peakRssBytes, base?.peakRssBytes),
        String(r.errors),
        `${percent(r.proxyCoreLoad)} / ${percent(r.loadCoreLoad)}`,
      ]);
      first = false;
    }
  }
  const widths = header.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const [i, row] of rows.entries()) {
    out.push(row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
    if (i === 0) out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  out.push('');
  // Whichever process count serves more on this machine, for each: the ratio no pairing choice can flatter.
  const best = (names: readonly CaseName[], path: string) => Math.max(0, ...names.map((n) => results.get(`${n} ${path}`)?.requestsPerSecond ?? 0));
  for (const size of sizesFor(opts)) {
    const nginx = best(['nginx', 'nginx-workers'], size.path);
    const kanmon = best(['kanmon', 'kanmon-workers'], size.path);
    if (nginx > 0 && kanmon > 0) out.push(`best against best, ${size.label}: Kanmon ${kanmon.toFixed(0)} req/s, nginx ${nginx.toFixed(0)} req/s: ${ratio(kanmon, nginx)}`);
  }
  // The 1 KiB target (0.5× nginx) was set where these two measured 0.38× and 0.63×: how near this run's frame is to that one.
  const reference = (name: CaseName) => {
    const r = results.get(`${name} /1k`)?.requestsPerSecond;
    const n = results.get('nginx /1k')?.requestsPerSecond;
    return r !== undefined && n ? ratio(r, n) : undefined;
  };
  const [fastify, undici] = [reference('fastify'), reference('undici')];
  if (fastify && undici) out.push(`frame check, 1 KiB: fastify+http-proxy ${fastify} (0.38x where the target was set), node:http+undici ${undici} (0.63x there)`);
  out.push('');
  out.push("vs nginx: req/s as a multiple of nginx's with the same number of processes (higher is better); latency and CPU per request as multiples of nginx's (lower is better).");
  out.push("CPU µs/req: the proxy process's own CPU time divided by requests served; other processes hardly move it, so trust it over req/s on a busy machine.");
  out.push('RSS MiB: resident memory of the proxy (every process of it: nginx master and workers, Kanmon primary and workers), the largest sample taken every 250 ms during the run (over rounds, the largest of all).');
  out.push(
    `other load: share of CPU ${PROXY_CPU} (proxy) and CPU ${LOAD_CPU} (wrk + upstream) that unrelated processes took during that case; ` +
      'above a few percent the row is skewed (run again, or use --rounds). N-worker rows: one figure over all the CPUs they share with the load.',
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

function percent(value: number | undefined): string {
  return value === undefined ? '-' : `${value.toFixed(0)}%`;
}

function ratio(value: number | undefined, base: number | undefined): string {
  return value !== undefined && base ? `${(value / base).toFixed(2)}x` : '-';
}

interface Options {
  readonly seconds: number;
  readonly warmup: number;
  readonly connections: number;
  readonly rounds: number;
  readonly upstream: 'nginx' | 'node';
  readonly only: ReadonlySet<CaseName>;
  /** tls: every proxy terminates TLS; plain: none does (Kanmon with TLS offloaded to a load balancer). */
  readonly transport: 'tls' | 'plain' | 'both';
  /** Processes for the "N workers" cases of nginx and Kanmon; 1 leaves them out. */
  readonly workers: number;
}

function parseArgs(argv: string[]): Options {
  let seconds = 8;
  let warmup = 2;
  let connections = 64;
  let rounds = 1;
  let upstream: 'nginx' | 'node' = 'nginx';
  let only = new Set<CaseName>(CASES);
  let transport: Options['transport'] = 'both';
  let workers = availableParallelism();
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    const num = Number(value);
    if (flag === '--seconds' && num > 0) seconds = num;
    else if (flag === '--warmup' && num >= 0) warmup = num;
    else if (flag === '--connections' && Number.isInteger(num) && num > 0) connections = num;
    else if (flag === '--rounds' && Number.isInteger(num) && num > 0) rounds = num;
    else if (flag === '--upstream' && (value === 'nginx' || value === 'node')) upstream = value;
    else if (flag === '--transport' && (value === 'tls' || value === 'plain' || value === 'both')) transport = value;
    else if (flag === '--workers' && (value === 'auto' || (Number.isInteger(num) && num >= 1 && num <= 64))) workers = value === 'auto' ? availableParallelism() : num;
    else if (flag === '--only' && value) {
      const names = value.split(',');
      const unknown = names.filter((n) => !(CASES as readonly string[]).includes(n));
      if (unknown.length) throw new Error(`--only takes ${CASES.join(', ')}; got ${unknown.join(', ')}`);
      only = new Set(names as CaseName[]);
    } else {
      throw new Error(`usage: npm run bench -- [--seconds N] [--warmup N] [--connections N] [--rounds N] [--upstream nginx|node] [--transport tls|plain|both] [--workers N|auto] [--only ${CASES.join(',')}]; got ${flag} ${value ?? ''}`);
    }
  }
  CASE_LABEL['nginx-workers'] = `nginx, ${workers} workers`;
  CASE_LABEL['kanmon-workers'] = `kanmon, ${workers} workers`;
  return { seconds, warmup, connections, rounds, upstream, only, transport, workers };
}

async function expectBody(name: CaseName, target: Target, path: string, bytes: number): Promise<void> {
  const headers: Record<string, string> = {};
  for (const h of target.headers) {
    const at = h.indexOf(':');
    headers[h.slice(0, at)] = h.slice(at + 1).trim();
  }
  const { status, length } = await new Promise<{ status: number; length: number }>((resolve, reject) => {
    const url = `${target.url}${path}`;
    const options: https.RequestOptions = { headers, rejectUnauthorized: false, agent: false };
    const onResponse = (res: http.IncomingMessage) => {
      let length = 0;
      res.on('data', (c: Buffer) => (length += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length }));
    };
    (url.startsWith('https:') ? https.get(url, options, onResponse) : http.get(url, options, onResponse)).on('error', reject);
  });
  if (status !== 200 || length !== bytes) {
    throw new Error(`${CASE_LABEL[name]} answered ${path} with ${status} and ${length} bytes, expected 200 and ${bytes}; not measuring it`);
  }
}

/** Share of CPU time spent busy across all cores over one second. */
async function cpuBusyPercent(): Promise<number> {
  const sample = () => {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3]! + (fields[4] ?? 0);
    return { idle, total: fields.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = sample();
    await new Promise((r) => setTimeout(r, 1000));
    const b = sample();
    return 100 * (1 - (b.idle - a.idle) / Math.max(1, b.total - a.total));
  } catch {
    return 0;
  }
}

await main();
