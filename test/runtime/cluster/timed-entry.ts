/**
 * Worker mode with the cluster's timing options set from KANMON_CLUSTER_TIMING (JSON of the
 * numeric options of ClusterOptions: certificatePollMs, certificateExpiryWarnings,
 * selfCheckIntervalMs), which runtime/main.ts leaves at their defaults. Otherwise as that
 * entry: the config from KANMON_CONFIG_JSON and the environment, `Kanmon is listening`, the
 * first administrator's enrollment link, SIGTERM drains. The workers run this same file.
 */
import cluster from 'node:cluster';
import { resolveWorkerCount, runClusterWorker, startKanmonCluster, type ClusterOptions } from '../../../runtime/cluster/index.js';
import { loadConfig } from '../../../runtime/config/index.js';
import { guardUnhandledRejections } from '../../../runtime/observability/unhandled-rejections.js';

guardUnhandledRejections();

type Timing = Pick<ClusterOptions, 'certificatePollMs' | 'certificateExpiryWarnings' | 'selfCheckIntervalMs'>;

async function runPrimary(): Promise<void> {
  const { config } = loadConfig();
  const timing = JSON.parse(process.env.KANMON_CLUSTER_TIMING ?? '{}') as Timing;
  const app = await startKanmonCluster(config, { workers: resolveWorkerCount(config.server.workers), ...timing });
  app.logger.info({ url: app.url, workers: app.workerCount }, 'Kanmon is listening');
  const link = await app.services.enrollment.createBootstrapLink();
  if (link) process.stdout.write(`Enroll the first administrator: ${link.url}\n`);
  process.once('SIGTERM', () => {
    app.close({ graceMs: app.config.server.shutdownGraceSeconds * 1000 }).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

(cluster.isWorker ? runClusterWorker() : runPrimary()).catch((err) => {
  process.stderr.write(`Kanmon failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
