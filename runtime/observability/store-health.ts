import type { Logger } from 'pino';
import type { Notifier } from '../notify/notifier.js';
import { StoreUnavailableError } from '../store/errors.js';
import type { Store } from '../store/types.js';
import type { Metrics } from './metrics.js';
import type { SelfCheckTarget } from './self-check.js';

/**
 * 'ok': the last probe answered. 'suspect': a store call failed since, and a probe is on its
 * way. 'failing': a probe failed too; the outage has been reported.
 */
export type StoreState = 'ok' | 'suspect' | 'failing';

export interface StoreHealthSnapshot {
  readonly state: StoreState;
  /** When the current outage was declared (state 'failing'). */
  readonly failingSince?: number;
  /** Store calls that failed since the outage began (or since the last probe that answered). */
  readonly failedCalls: number;
  readonly lastError?: string;
}

/** How often the store is probed while it answers, and while it does not. */
export const STORE_PROBE_OK_MS = 30_000;
export const STORE_PROBE_FAILING_MS = 2_000;
const PROBE_TIMEOUT_MS = 3_000;

/**
 * The store's health as this node sees it, learned from every store call that fails and from
 * its own probes. Every failed call is counted (StoreErrors); an outage is reported once, when
 * a probe confirms it (a single failed call that the next probe contradicts is only counted),
 * and its end once, when a probe answers again. While failing, the probe runs every
 * STORE_PROBE_FAILING_MS, so the node notices recovery by itself, with or without traffic.
 * Nothing here decides what a request may do: callers fail closed on their own errors.
 */
export class StoreHealth {
  private current: StoreState = 'ok';
  private failingSince: number | undefined;
  private failedCalls = 0;
  private lastError: string | undefined;
  private probing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly deps: {
      /** One cheap round trip to the store (Store.ping). */
      readonly probe: () => Promise<void>;
      readonly metrics: Metrics;
      readonly notifier: Notifier;
      readonly logger: Logger;
      readonly now?: () => number;
      readonly okIntervalMs?: number;
      readonly failingIntervalMs?: number;
      readonly probeTimeoutMs?: number;
    },
  ) {
    this.now = deps.now ?? Date.now;
  }

  get state(): StoreState {
    return this.current;
  }

  snapshot(): StoreHealthSnapshot {
    return {
      state: this.current,
      ...(this.failingSince !== undefined ? { failingSince: this.failingSince } : {}),
      failedCalls: this.failedCalls,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  /** A store call failed because the store could not be reached or failed (never for conflicts or not-found). */
  failed(operation: string, err: unknown): void {
    this.deps.metrics.count('storeErrors', {});
    this.failedCalls++;
    this.lastError = `${operation}: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}`;
    if (this.current === 'ok') {
      this.current = 'suspect';
      void this.probeNow();
    }
  }

  /** Probes now; concurrent callers share one probe. Never rejects. */
  probeNow(): Promise<void> {
    if (!this.probing) {
      this.probing = this.runProbe().finally(() => {
        this.probing = undefined;
        this.schedule();
      });
    }
    return this.probing;
  }

  /** Starts the periodic probe; returns its stop function. */
  start(): () => void {
    this.stopped = false;
    this.schedule();
    return () => {
      this.stopped = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
    };
  }

  /**
   * For the self-check list (the console shows it): the store's state after a fresh probe. The
   * self-check must not report it again (`quiet`), since this class reports outages itself.
   */
  selfCheckTarget(): SelfCheckTarget {
    return {
      name: 'store',
      quiet: true,
      run: async () => {
        await this.probeNow();
        const s = this.snapshot();
        return s.state === 'ok' ? { state: 'ok', detail: 'answering' } : { state: 'failing', detail: s.lastError ?? 'not answering' };
      },
    };
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const every = this.current === 'ok' ? (this.deps.okIntervalMs ?? STORE_PROBE_OK_MS) : (this.deps.failingIntervalMs ?? STORE_PROBE_FAILING_MS);
    this.timer = setTimeout(() => void this.probeNow(), every);
    this.timer.unref();
  }

  private async runProbe(): Promise<void> {
    const timeoutMs = this.deps.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.deps.probe(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      this.answered();
    } catch (err) {
      this.unanswered(err);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private answered(): void {
    const was = this.current;
    this.current = 'ok';
    if (was !== 'failing') {
      // A single failed call the probe contradicts: counted, not reported.
      this.failedCalls = 0;
      return;
    }
    const since = this.failingSince ?? this.now();
    const seconds = Math.round((this.now() - since) / 1000);
    const failed = this.failedCalls;
    this.failingSince = undefined;
    this.failedCalls = 0;
    this.deps.logger.info({ outageSeconds: seconds, failedCalls: failed }, 'store is answering again');
    void this.deps.notifier.notify({
      event: 'store.recovered',
      severity: 'info',
      subject: 'Kanmon: the store is answering again',
      message: `The store answers again after about ${seconds} s. ${failed} store call(s) failed meanwhile. Sign-ins work again; nothing needs a restart.`,
      details: { outageSeconds: seconds, failedCalls: failed },
    });
  }

  private unanswered(err: unknown): void {
    this.lastError = `ping: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}`;
    if (this.current === 'failing') return;
    this.current = 'failing';
    this.failingSince = this.now();
    this.deps.logger.error({ detail: this.lastError, failedCalls: this.failedCalls }, 'store is not answering: new sign-ins fail until it is back');
    void this.deps.notifier.notify({
      event: 'store.unavailable',
      severity: 'critical',
      subject: 'Kanmon: the store is not answering',
      message:
        `This node cannot reach its store (${this.lastError}). New sign-ins fail with a "temporarily unavailable" page. ` +
        'Users already signed in keep working for at most session.cacheSeconds after their session was last checked, then see the same page until the store is back. ' +
        'The node keeps probing and recovers by itself; a second message follows when the store answers again. Check the DynamoDB table, the network path to it, and the task role.',
      details: { error: this.lastError },
    });
  }
}

/**
 * The store, with every call that fails for want of the store reported to `health`. Named
 * outcomes (conflicts, not found, unusable tokens) are answers, not failures, and pass
 * unreported. Aggregates and their methods are wrapped once and reused.
 */
export function observeStore(store: Store, health: Pick<StoreHealth, 'failed'>): Store {
  const wrappedAggregates = new Map<PropertyKey, unknown>();
  const wrapMethod = (fn: (...args: unknown[]) => unknown, self: object, name: string) =>
    function observed(...args: unknown[]): unknown {
      let result: unknown;
      try {
        result = fn.apply(self, args);
      } catch (err) {
        if (err instanceof StoreUnavailableError) health.failed(name, err);
        throw err;
      }
      if (result instanceof Promise) {
        return result.catch((err: unknown) => {
          if (err instanceof StoreUnavailableError) health.failed(name, err);
          throw err;
        });
      }
      return result;
    };
  const wrapAggregate = (aggregate: object, aggregateName: string): object => {
    const methods = new Map<PropertyKey, unknown>();
    return new Proxy(aggregate, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        let m = methods.get(prop);
        if (!m) {
          m = wrapMethod(value as (...args: unknown[]) => unknown, target, `${aggregateName}.${String(prop)}`);
          methods.set(prop, m);
        }
        return m;
      },
    });
  };
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === 'close') return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      let w = wrappedAggregates.get(prop);
      if (w) return w;
      if (typeof value === 'function') w = wrapMethod(value as (...args: unknown[]) => unknown, target, String(prop));
      else if (value && typeof value === 'object') w = wrapAggregate(value, String(prop));
      else return value;
      wrappedAggregates.set(prop, w);
      return w;
    },
  });
}
