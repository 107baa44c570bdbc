import cluster from 'node:cluster';
import { pino } from 'pino';
import { startKanmon, type KanmonApp } from '../app.js';
import type { CheckResult } from '../observability/self-check.js';
import { checkResultsOf, isPrimaryMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';

/**
 * A cluster worker's whole life: wait for the primary's start message, serve the listener
 * (the port is shared through node:cluster), report live sessions, and drain when the
 * primary says so or on SIGTERM/SIGINT (Ctrl-C reaches the whole process group). When the
 * primary is gone without a word (killed), node:cluster ends the worker as soon as the IPC
 * channel closes, so no worker outlives its primary.
 */
export async function runClusterWorker(): Promise<void> {
  const send = (m: WorkerMessage) => {
    if (process.connected) process.send!(m);
  };
  // The primary's latest self-check results: with the start message, then after each of its runs.
  let health: readonly CheckResult[] = [];
  process.on('message', (m: unknown) => {
    if (isPrimaryMessage(m) && m.kanmon === 'health') health = checkResultsOf(m.results);
  });
  const start = await new Promise<Extract<PrimaryMessage, { kanmon: 'start' }>>((resolve) => {
    const onMessage = (m: unknown) => {
      if (isPrimaryMessage(m) && m.kanmon === 'start') {
        process.off('message', onMessage);
        // Here, not after the await: a 'health' message right behind this one must not be overwritten by it.
        health = checkResultsOf(m.health);
        resolve(m);
      }
    };
    process.on('message', onMessage);
    send({ kanmon: 'awaiting-start' });
  });
  const id = cluster.worker?.id ?? 0;
  const logger = pino({ level: start.config.log.level, base: { service: 'kanmon', worker: id } });

  let app: KanmonApp;
  try {
    app = await startKanmon(start.config, {
      logger,
      clusterWorker: { ...(start.demoUrl ? { demoUrl: start.demoUrl } : {}), health: () => health },
      ...(start.certificatePollMs ? { serverCertificate: { pollMs: start.certificatePollMs } } : {}),
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    logger.error({ err }, 'worker failed to start');
    send({ kanmon: 'failed', message });
    process.exit(1);
  }

  let draining = false;
  const drain = (graceMs: number, reason: string, drainDelayMs = 0) => {
    if (draining) return;
    draining = true;
    clearInterval(report);
    logger.info({ reason, graceMs, drainDelayMs }, 'worker draining');
    app.close({ graceMs, drainDelayMs }).then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'worker shutdown failed');
        process.exit(1);
      },
    );
  };
  const graceMs = app.config.server.shutdownGraceSeconds * 1000;
  process.on('message', (m: unknown) => {
    if (isPrimaryMessage(m) && m.kanmon === 'drain') drain(m.graceMs, 'primary');
  });
  // A signal sent to the whole group (systemd's default) reaches workers too: they keep the drain delay like the primary.
  const drainDelayMs = app.config.server.drainDelaySeconds * 1000;
  process.on('SIGTERM', () => drain(graceMs, 'SIGTERM', drainDelayMs));
  process.on('SIGINT', () => drain(graceMs, 'SIGINT', drainDelayMs));

  const report = setInterval(() => send({ kanmon: 'sessions', count: app.services.sessions.activeCount() }), start.sessionReportMs);
  report.unref();
  send({ kanmon: 'listening' });
}
