import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from 'pino';
import type { Notifier } from '../notify/notifier.js';
import type { Store } from '../store/types.js';
import type { Metrics } from './metrics.js';

export type CheckState = 'ok' | 'failing';

export interface CheckResult {
  readonly name: string;
  readonly state: CheckState;
  readonly detail: string;
  readonly checkedAt: number;
}

export interface SelfCheckTarget {
  readonly name: string;
  /** Listed and counted, but its changes are not logged or notified here (the target reports them itself, e.g. StoreHealth). */
  readonly quiet?: boolean;
  run(): Promise<{ state: CheckState; detail: string }>;
}

/** A certificate closer to expiry than this is reported failing (the stack's alarm uses the same 14 days). */
export const CERTIFICATE_WARNING_DAYS = 14;

/**
 * Runs every check once a minute (and once at start). A change of state is logged, counted
 * and notified; the steady state is not, so operators hear about changes, not noise.
 */
export class SelfCheck {
  private readonly results = new Map<string, CheckResult>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      /** The checks, or a getter read at each run (a node's upstreams follow its live routes). */
      readonly targets: readonly SelfCheckTarget[] | (() => readonly SelfCheckTarget[]);
      readonly logger: Logger;
      readonly metrics: Metrics;
      readonly notifier: Notifier;
      readonly now?: () => number;
      /** Told every run's results (a cluster's primary sends them to its workers' consoles). */
      readonly onRun?: (results: readonly CheckResult[]) => void;
    },
  ) {}

  /** Runs all checks now; concurrent callers share one run. */
  runOnce(): Promise<void> {
    if (!this.running) {
      this.running = this.runAll().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async runAll(): Promise<void> {
    const targets = typeof this.deps.targets === 'function' ? this.deps.targets() : this.deps.targets;
    // A check no longer among the targets (a route removed) is no longer reported.
    const names = new Set(targets.map((t) => t.name));
    for (const name of this.results.keys()) if (!names.has(name)) this.results.delete(name);
    await Promise.all(
      targets.map(async (t) => {
        let outcome: { state: CheckState; detail: string };
        try {
          outcome = await t.run();
        } catch (err) {
          outcome = { state: 'failing', detail: err instanceof Error ? err.message : String(err) };
        }
        this.record(t.name, outcome, t.quiet === true);
      }),
    );
    this.deps.onRun?.(this.snapshot());
  }

  private record(name: string, outcome: { state: CheckState; detail: string }, quiet = false): void {
    const previous = this.results.get(name);
    const result: CheckResult = { name, ...outcome, checkedAt: (this.deps.now ?? Date.now)() };
    this.results.set(name, result);
    if (outcome.state === 'failing') this.deps.metrics.count('selfCheckFailures', { Check: name });
    // The first result of a healthy check is not news; a first failing result is.
    if (quiet || (previous ? previous.state === outcome.state : outcome.state === 'ok')) return;
    const failing = outcome.state === 'failing';
    this.deps.logger[failing ? 'error' : 'info']({ check: name, state: outcome.state, detail: outcome.detail }, `self-check ${name} is ${outcome.state}`);
    void this.deps.notifier.notify({
      event: `selfcheck.${name}.${outcome.state}`,
      severity: failing ? 'critical' : 'info',
      subject: failing ? `Kanmon self-check failing: ${name}` : `Kanmon self-check recovered: ${name}`,
      message: `${name}: ${outcome.detail}`,
      details: { check: name, state: outcome.state },
    });
  }

  snapshot(): CheckResult[] {
    return [...this.results.values()];
  }

  start(intervalMs = 60_000): () => void {
    void this.runOnce();
    this.timer = setInterval(() => void this.runOnce(), intervalMs);
    this.timer.unref();
    return () => {
      if (this.timer) clearInterval(this.timer);
    };
  }
}

export function storeCheck(store: Store, timeoutMs = 3000): SelfCheckTarget {
  return {
    name: 'store',
    async run() {
      const started = Date.now();
      await withTimeout(store.ping(), timeoutMs, 'store did not answer');
      return { state: 'ok', detail: `round trip ${Date.now() - started} ms` };
    },
  };
}

export function certificateCheck(notAfter: () => Date | undefined, metrics: Metrics, now: () => number = Date.now): SelfCheckTarget {
  return {
    name: 'certificate',
    async run() {
      const expiry = notAfter();
      if (!expiry) return { state: 'failing', detail: 'no server certificate loaded' };
      const days = Math.floor((expiry.getTime() - now()) / 86_400_000);
      metrics.gauge('serverCertificateDaysToExpiry', {}, days);
      if (days < CERTIFICATE_WARNING_DAYS) return { state: 'failing', detail: `server certificate expires in ${days} days (${expiry.toISOString()})` };
      return { state: 'ok', detail: `server certificate valid for ${days} more days` };
    },
  };
}

/** An upstream is reachable when a TCP (or TLS) connection opens; no request is sent to it. */
export function upstreamCheck(routeId: string, upstream: string, timeoutMs = 3000): SelfCheckTarget {
  const url = new URL(upstream);
  const secure = url.protocol === 'https:';
  const port = Number(url.port || (secure ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    name: `upstream:${routeId}`,
    run: () =>
      new Promise((resolve) => {
        const socket = secure ? tlsConnect({ host, port, servername: host, rejectUnauthorized: false }) : netConnect({ host, port });
        const done = (state: CheckState, detail: string) => {
          clearTimeout(timer);
          socket.destroy();
          resolve({ state, detail });
        };
        const timer = setTimeout(() => done('failing', `no connection within ${timeoutMs} ms`), timeoutMs);
        socket.once(secure ? 'secureConnect' : 'connect', () => done('ok', 'reachable'));
        socket.once('error', (err: NodeJS.ErrnoException) => done('failing', err.code ?? err.message));
      }),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
