/**
 * Start-up and shutdown steps the single process (app.ts) and the cluster's primary
 * (cluster/primary.ts) share.
 */
import { createServer } from 'node:net';
import type { Logger } from 'pino';
import { startNodeHeartbeat } from './observability/node-heartbeat.js';
import type { Services } from './services/index.js';
import { randomId } from './store/ids.js';
import type { Store } from './store/types.js';
import { KANMON_VERSION } from './version.js';

/** Runs the clean-ups registered during start-up, last first, each once; one that fails does not stop the rest. */
export async function runCleanups(cleanups: Array<() => Promise<void> | void>): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch {
      // Shutting down: keep closing the rest.
    }
  }
}

/** A port free right now on `host` (loopback for the wildcard address). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host === '0.0.0.0' ? '127.0.0.1' : host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The first part of a drain: with readiness already false, goes on accepting for the drain
 * delay (part of the grace, never more), so the load balancer moves new connections away
 * first. Resolves with the grace left for in-flight requests.
 */
export async function waitDrainDelay(opts: { graceMs?: number; drainDelayMs?: number }): Promise<number> {
  const graceMs = opts.graceMs ?? 0;
  const drainDelayMs = Math.min(opts.drainDelayMs ?? 0, graceMs);
  if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
  return graceMs - drainDelayMs;
}

/**
 * The jobs a node runs once, whatever its worker count (the single process, or a cluster's
 * primary): the sweep of expired items, the heartbeat the console lists nodes by, and the
 * directory sync schedule. Returns what stops them.
 */
export function startNodeJobs(deps: { readonly store: Store; readonly services: Services; readonly logger: Logger }): Array<() => Promise<void> | void> {
  const { store, services, logger } = deps;
  const stops: Array<() => Promise<void> | void> = [];
  const sweep = setInterval(() => {
    store.sweepExpired(Date.now()).catch((err) => logger.warn({ err }, 'expired items could not be swept'));
  }, 60_000);
  sweep.unref();
  stops.push(() => clearInterval(sweep));
  stops.push(startNodeHeartbeat({ documents: store.documents, nodeId: randomId(12), version: KANMON_VERSION, onError: (err) => logger.warn({ err }, 'node heartbeat could not be written') }));
  const directory = services.directorySync;
  if (directory) {
    stops.push(
      directory.startSchedule(
        randomId(12),
        (plan) => logger.info({ directory: directory.source, ...plan.summary }, 'directory sync applied'),
        (err) => logger.warn({ err, directory: directory.source }, 'directory sync failed; it is retried at the next period'),
      ),
    );
  }
  return stops;
}
