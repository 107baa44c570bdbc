import 'reflect-metadata';
import cluster, { type Worker } from 'node:cluster';
import { pino, type Logger } from 'pino';
import { parseConfig, type KanmonConfig, type KanmonConfigInput } from '../config/schema.js';
import { LiveConfig, startConfigPolling } from '../config/live.js';
import { nodeCertificateExpiryWarnings } from '../ca/expiry-warnings.js';
import { AdminMailNotifier } from '../notify/admin-mail-notifier.js';
import { startDemoGroupware, type DemoGroupware } from '../demo/index.js';
import { freePort, runCleanups, startNodeJobs, waitDrainDelay } from '../lifecycle.js';
import { createNotifier } from '../notify/create-notifier.js';
import type { Notifier } from '../notify/notifier.js';
import { wireAuditAlerts } from '../observability/audit-alerts.js';
import { startHealthServer } from '../observability/health-server.js';
import { Metrics } from '../observability/metrics.js';
import { SelfCheck, certificateCheck, storeCheck, upstreamCheck, type CheckResult } from '../observability/self-check.js';
import { openSecretBox } from '../secrets/index.js';
import { createServices, type Services } from '../services/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { ensureDevCertificates } from '../tls/index.js';
import { watchStoredCertificate } from '../tls/certificate-watch.js';
import { ServingCertificate, notAfterOf } from '../tls/serving-certificate.js';
import { clientCertificatesWanted } from '../tls/client-auth.js';
import { KANMON_VERSION } from '../version.js';
import { isWorkerMessage, type PrimaryMessage } from './messages.js';

export interface ClusterOptions {
  /** Worker processes to run (2 or more; one process needs no cluster). */
  readonly workers: number;
  readonly logger?: Logger;
  readonly notifier?: Notifier;
  /** How long a worker may take from fork to listening. @default 60000 */
  readonly startTimeoutMs?: number;
  /** How often workers report their live sessions for the ActiveSessions gauge. @default 60000 */
  readonly sessionReportMs?: number;
  /** Called when workers die faster than they can be replaced; the node is then closed. */
  readonly onGiveUp?: (reason: string) => void;
  /** How often the primary and the workers look for new certificate files (tls.source "file"); tests shorten it. @default 30000 */
  readonly certificatePollMs?: number;
  /** Timing of the client-certificate expiry warnings; tests shorten it. @default first run after 5-30 s, then hourly */
  readonly certificateExpiryWarnings?: { readonly firstRunDelayMs?: number; readonly intervalMs?: number };
  /** How often the self-check runs (its results go to every worker's console). @default 60000 */
  readonly selfCheckIntervalMs?: number;
}

export interface KanmonCluster {
  readonly config: KanmonConfig;
  readonly url: string;
  readonly port: number;
  readonly services: Services;
  readonly store: Store;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly selfCheck: SelfCheck;
  readonly devCaCertPath?: string;
  readonly devCaCreated?: boolean;
  readonly healthPort?: number;
  readonly workerCount: number;
  /** Process ids of the workers that are listening right now. */
  listeningWorkerPids(): number[];
  /** Resolves once `workerCount` workers are listening again (after a replacement). */
  whenAllListening(timeoutMs?: number): Promise<void>;
  /**
   * Drains the node: readiness turns false, every worker stops accepting and gets `graceMs`
   * for its in-flight requests (a worker still running later is killed), then the primary's
   * own jobs and the store close. With `drainDelayMs` (part of `graceMs`), the workers first go
   * on accepting that long with readiness false, so the load balancer moves new connections
   * away before they stop, as a single process does (KanmonApp.close).
   */
  close(opts?: { graceMs?: number; drainDelayMs?: number }): Promise<void>;
}

/** Consecutive worker deaths, with no replacement reaching listening in between, before the primary gives up. */
export const MAX_CRASH_STREAK = 5;
/** Extra time past the grace period for a worker to exit before it is killed. */
const EXIT_MARGIN_MS = 5_000;

/**
 * The cluster's primary: does the one-time work (open and migrate the store, signing key,
 * development CA and server certificate, client-certificate CA, demo backend), then forks
 * `workers` processes that each serve the listener through node:cluster's shared port
 * (round-robin: the primary accepts and hands each connection to the next worker). The
 * node-wide jobs run here once: expiry sweeps, client-certificate expiry warnings, self-check
 * and its notifications (each run's results are sent to every worker, whose console shows
 * them), the health listener, the ActiveSessions gauge. A worker that dies is logged,
 * notified and replaced.
 *
 * The primary never serves a request; the entry script must run `runClusterWorker()` when
 * `cluster.isWorker` (runtime/main.ts does).
 */
export async function startKanmonCluster(input: KanmonConfig | KanmonConfigInput, opts: ClusterOptions): Promise<KanmonCluster> {
  if (!cluster.isPrimary) throw new Error('startKanmonCluster runs in the primary process only');
  if (!Number.isInteger(opts.workers) || opts.workers < 2) throw new RangeError(`startKanmonCluster: workers must be an integer of at least 2, got ${String(opts.workers)}`);
  let config = parseConfig(input);
  if (config.server.port === 0) {
    // Port 0 (tests): chosen once here so every worker and the WebAuthn origin agree on it.
    const raw = structuredClone(input) as { server?: Record<string, unknown> };
    raw.server = { ...(raw.server ?? {}), port: await freePort(config.server.host) };
    config = parseConfig(raw);
  }
  const logger = opts.logger ?? pino({ level: config.log.level, base: { service: 'kanmon', role: 'primary' } });
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const sessionReportMs = opts.sessionReportMs ?? 60_000;
  const cleanups: Array<() => Promise<void> | void> = [];
  const workers = new Map<number, { worker: Worker; started: boolean; listening: boolean; sessions: number }>();
  let stopping = false;

  try {
    const store = await openStore(config);
    cleanups.push(() => store.close());
    const secrets = await openSecretBox(config);
    // The routes and live settings the workers run (stored versions), for the self-check and readiness.
    let liveConfig: LiveConfig<undefined> | undefined;
    const services = createServices({ config, store, secrets, logger, live: { get config() { return liveConfig?.config ?? config; } } });
    const metrics = new Metrics({ namespace: config.metrics.namespace, emit: config.metrics.emf });
    cleanups.push(metrics.start());
    // Administrators' notices also go by mail to the live recipient list, as on a single-process node.
    const notifier: Notifier = new AdminMailNotifier({ inner: opts.notifier ?? createNotifier(config.notifications, logger), mailer: () => services.mailer, recipients: () => (liveConfig?.config ?? config).notifications.adminRecipients, logger });
    wireAuditAlerts(services.audit, metrics, notifier);
    // Created here once, so workers starting together only ever read it.
    await services.signingKeys.ensureActiveKey();

    // The certificate the workers serve, as the primary sees it for readiness and the expiry check.
    let servedCertificate: { readonly notAfter: Date | undefined } | undefined;
    let devCaCertPath: string | undefined;
    let devCaCreated = false;
    let certificateFiles: ServingCertificate | undefined;
    if (config.tls.source === 'self-signed-dev') {
      const dev = await ensureDevCertificates(config.dataDir, { hostnames: [new URL(config.server.publicOrigin).hostname] });
      servedCertificate = { notAfter: notAfterOf(dev.certPem) };
      devCaCertPath = dev.caCertPath;
      devCaCreated = dev.caCreated;
    } else if (config.tls.source === 'file') {
      // Followed as the workers follow them (same loader, same poll), so a swap of the files shows here too.
      certificateFiles = await ServingCertificate.open({ source: { kind: 'file', certFile: config.tls.certFile, keyFile: config.tls.keyFile }, logger, ...(opts.certificatePollMs ? { pollMs: opts.certificatePollMs } : {}) });
      servedCertificate = certificateFiles;
      cleanups.push(certificateFiles.start());
    }
    // acme and imported certificates are loaded (and renewed) by the workers; the primary watches their expiry.
    const storedCertificate = watchStoredCertificate(config, services.serverCertificates, logger);
    if (storedCertificate) {
      servedCertificate = storedCertificate;
      cleanups.push(() => storedCertificate.stop());
    }
    if (config.tls.source !== 'offloaded' && clientCertificatesWanted(config)) await services.ca.ensure();

    let demo: DemoGroupware | undefined;
    if (config.routes.some((r) => r.upstream === 'demo')) {
      demo = await startDemoGroupware({ host: '127.0.0.1', port: 0 });
      cleanups.push(() => demo!.close());
    }
    const upstreamOf = (upstream: string) => (upstream === 'demo' ? demo!.url : upstream);

    // Sweep, heartbeat and directory sync once for the node (the console lists nodes, not workers).
    cleanups.push(...startNodeJobs({ store, services, logger }));
    // Client certificates about to lapse: here once for the node, not in every worker (each would try for the lease).
    const certificateExpiryWarnings = nodeCertificateExpiryWarnings({ services, documents: store.documents, notifier, metrics, config: () => liveConfig?.config ?? config, logger });
    cleanups.push(certificateExpiryWarnings.start(opts.certificateExpiryWarnings?.intervalMs, opts.certificateExpiryWarnings?.firstRunDelayMs));

    const fixedChecks = [storeCheck(store), ...(servedCertificate ? [certificateCheck(() => servedCertificate.notAfter, metrics)] : [])];
    const live = new LiveConfig<undefined>({ version: 0, config, derived: undefined });
    liveConfig = live;
    // The workers serve the console, whose dashboard shows these results: each run's go to every started worker.
    const shareHealth = (results: readonly CheckResult[]) => {
      const message: PrimaryMessage = { kanmon: 'health', results };
      for (const { worker, started } of workers.values()) {
        if (started && worker.isConnected()) worker.send(message, (err: Error | null) => err && logger.debug({ err, worker: worker.id }, 'self-check results not delivered to a worker'));
      }
    };
    const selfCheck = new SelfCheck({
      // The upstreams of the routes in force (the workers refuse a version naming a demo this node did not start).
      targets: () => [...fixedChecks, ...live.config.routes.filter((r) => r.upstream !== 'demo' || demo).map((r) => upstreamCheck(r.id, upstreamOf(r.upstream)))],
      logger,
      metrics,
      notifier,
      onRun: shareHealth,
    });
    // New certificate files are checked at once, as the workers put them into service.
    certificateFiles?.onChange(() => void selfCheck.runOnce());
    // The workers seed and apply the stored versions; the primary follows them for what it checks.
    const configPolling = startConfigPolling<undefined>({
      live,
      source: services.configVersions,
      base: config,
      build: async () => undefined,
      retire: async () => undefined,
      // New routes are checked at once, not at the next minute.
      onSwap: () => void selfCheck.runOnce(),
      onError: (err, version) => logger.warn({ err, version }, 'the primary cannot read this config version; the workers log why'),
    });
    cleanups.push(() => configPolling.stop());
    await configPolling.refresh();
    cleanups.push(selfCheck.start(opts.selfCheckIntervalMs));

    // A session's connections are spread over the workers, so each worker sees part of the
    // node's sessions: the largest worker count is the closest lower bound without sharing ids.
    const sessionGauge = setInterval(() => {
      metrics.gauge('activeSessions', {}, Math.max(0, ...[...workers.values()].map((w) => w.sessions)));
    }, sessionReportMs);
    sessionGauge.unref();
    cleanups.push(() => clearInterval(sessionGauge));

    const listeningCount = () => [...workers.values()].filter((w) => w.listening).length;
    let health: Awaited<ReturnType<typeof startHealthServer>> | undefined;
    if (config.server.healthPort !== 0) {
      health = await startHealthServer({
        port: config.server.healthPort,
        host: config.server.host,
        store,
        version: KANMON_VERSION,
        proxyProtocol: config.server.proxyProtocol,
        readiness: {
          draining: () => stopping,
          certificateLoaded: () => !!servedCertificate?.notAfter || config.tls.source === 'offloaded',
          // Routes served right now: none while no worker is listening (all died, or still starting).
          routeCount: () => (listeningCount() > 0 ? live.config.routes.length : 0),
        },
      });
      cleanups.push(() => health!.close());
    }

    // --- workers -------------------------------------------------------------------
    // With the latest self-check results, so a worker started later (a replacement) shows them at once.
    const startMessage = (): PrimaryMessage => ({
      kanmon: 'start',
      config,
      ...(demo ? { demoUrl: demo.url } : {}),
      sessionReportMs,
      health: selfCheck.snapshot(),
      ...(opts.certificatePollMs ? { certificatePollMs: opts.certificatePollMs } : {}),
    });
    const waiters = new Set<() => void>();
    const notifyWaiters = () => {
      for (const w of waiters) w();
    };
    let crashStreak = 0;
    let replaceTimer: NodeJS.Timeout | undefined;
    let firstStart = true;
    let firstFailure: ((err: Error) => void) | undefined;

    const fork = () => {
      const worker = cluster.fork();
      const entry = { worker, started: false, listening: false, sessions: 0 };
      workers.set(worker.id, entry);
      const startTimer = setTimeout(() => {
        logger.error({ worker: worker.id, pid: worker.process.pid, startTimeoutMs }, 'worker did not start listening in time; killing it');
        worker.process.kill('SIGKILL');
      }, startTimeoutMs);
      worker.on('message', (m: unknown) => {
        if (!isWorkerMessage(m)) return;
        if (m.kanmon === 'awaiting-start') {
          worker.send(startMessage());
          entry.started = true;
        } else if (m.kanmon === 'listening') {
          clearTimeout(startTimer);
          entry.listening = true;
          crashStreak = 0;
          logger.info({ worker: worker.id, pid: worker.process.pid, listening: listeningCount(), of: opts.workers }, 'worker listening');
          notifyWaiters();
        } else if (m.kanmon === 'sessions') {
          entry.sessions = Number.isFinite(m.count) ? m.count : 0;
        } else if (m.kanmon === 'failed') {
          logger.error({ worker: worker.id, reason: m.message }, 'worker could not start');
          firstFailure?.(new Error(`a worker could not start: ${m.message}`));
        }
      });
      worker.once('exit', (code, signal) => {
        clearTimeout(startTimer);
        workers.delete(worker.id);
        notifyWaiters();
        if (stopping) return;
        if (firstStart) {
          firstFailure?.(new Error(`a worker exited during start-up (${signal ?? `code ${code}`})`));
          return;
        }
        crashStreak++;
        const detail = { worker: worker.id, pid: worker.process.pid, code, signal, crashStreak };
        if (crashStreak > MAX_CRASH_STREAK) {
          const reason = `${crashStreak} workers died in a row without a replacement reaching listening`;
          logger.fatal(detail, `giving up: ${reason}`);
          opts.onGiveUp?.(reason);
          return;
        }
        // Back off while replacements keep dying, so a broken worker does not spin the CPU.
        const delayMs = crashStreak <= 1 ? 0 : Math.min(30_000, 250 * 2 ** (crashStreak - 1));
        logger.error({ ...detail, delayMs }, 'worker exited unexpectedly; starting a replacement');
        void notifier.notify({
          event: 'cluster.worker.exited',
          severity: 'warning',
          subject: 'Kanmon worker process exited; replaced',
          message: `worker ${worker.id} (pid ${String(worker.process.pid)}) exited with ${signal ?? `code ${String(code)}`}; a replacement is being started`,
          details: { worker: worker.id, code: code ?? null, signal: signal ?? null },
        }).catch((err: unknown) => logger.warn({ err }, 'worker exit could not be notified'));
        replaceTimer = setTimeout(() => {
          replaceTimer = undefined;
          if (!stopping) fork();
        }, delayMs);
      });
    };

    const whenAllListening = (timeoutMs = startTimeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (listeningCount() >= opts.workers) {
            done();
            resolve();
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${listeningCount()} of ${opts.workers} workers listening after ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });

    const stopWorkers = async (graceMs: number) => {
      if (replaceTimer) clearTimeout(replaceTimer);
      const exits = [...workers.values()].map(
        ({ worker }) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            const kill = setTimeout(() => worker.process.kill('SIGKILL'), graceMs + EXIT_MARGIN_MS);
            worker.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (worker.isConnected()) worker.send({ kanmon: 'drain', graceMs } satisfies PrimaryMessage);
            else worker.process.kill('SIGTERM');
          }),
      );
      await Promise.all(exits);
    };
    cleanups.push(() => stopWorkers(0));

    for (let i = 0; i < opts.workers; i++) fork();
    await new Promise<void>((resolve, reject) => {
      firstFailure = reject;
      whenAllListening().then(resolve, reject);
    });
    firstStart = false;
    firstFailure = undefined;

    let closed = false;
    return {
      config,
      url: config.server.publicOrigin,
      port: config.server.port,
      services,
      store,
      logger,
      metrics,
      selfCheck,
      workerCount: opts.workers,
      ...(devCaCertPath ? { devCaCertPath, devCaCreated } : {}),
      ...(health ? { healthPort: health.port } : {}),
      listeningWorkerPids: () => [...workers.values()].filter((w) => w.listening).map((w) => w.worker.process.pid!),
      whenAllListening,
      async close(closeOpts: { graceMs?: number; drainDelayMs?: number } = {}) {
        if (closed) return;
        closed = true;
        stopping = true;
        // Readiness is false from here on; the workers still accept until the load balancer has noticed.
        await stopWorkers(await waitDrainDelay(closeOpts));
        await runCleanups(cleanups);
      },
    };
  } catch (err) {
    stopping = true;
    await runCleanups(cleanups);
    throw err;
  }
}
