/**
 * `npm start`: runs one Kanmon node. Config from --config FILE, KANMON_CONFIG_FILE,
 * KANMON_CONFIG_JSON or ./kanmon.config.json, with single-value environment overrides.
 * With server.workers above 1 this process is the cluster's primary and forks the workers,
 * which run this same file and take the `cluster.isWorker` branch.
 */
import cluster from 'node:cluster';
import { ConfigError, loadConfig } from './config/index.js';
import { startKanmon } from './app.js';
import { guardUnhandledRejections } from './observability/unhandled-rejections.js';
import { resolveWorkerCount, runClusterWorker, startKanmonCluster } from './cluster/index.js';

// Before anything can fail in the background (README: Operations, store failure).
guardUnhandledRejections();

function configFileArg(argv: readonly string[]): string | undefined {
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') file = argv[++i];
    else if (a.startsWith('--config=')) file = a.slice('--config='.length);
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: kanmon-server [--config FILE]\n(see README: Configuration)\n');
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument ${JSON.stringify(a)}; usage: kanmon-server [--config FILE]\n`);
      process.exit(2);
    }
  }
  if (argv.includes('--config') && !file) {
    process.stderr.write('--config needs a file name\n');
    process.exit(2);
  }
  return file;
}

async function main(): Promise<void> {
  let loaded;
  try {
    const file = configFileArg(process.argv.slice(2));
    loaded = loadConfig(file ? { file } : {});
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`Kanmon cannot start: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const workers = resolveWorkerCount(loaded.config.server.workers);
  let giveUp: ((reason: string) => void) | undefined;
  const app =
    workers > 1
      ? await startKanmonCluster(loaded.config, { workers, onGiveUp: (reason) => giveUp?.(reason) })
      : await startKanmon(loaded.config);
  app.logger.info(
    { url: app.url, store: app.config.store.kind, config: loaded.source, routes: app.config.routes.map((r) => r.id), workers: workers > 1 ? workers : 'single process' },
    'Kanmon is listening',
  );
  if (app.devCaCertPath) {
    const msg = app.devCaCreated
      ? 'a new development CA was created: trust this certificate in your browser or OS once (README: "Trusting the development CA")'
      : 'development TLS certificate issued by the local development CA';
    app.logger[app.devCaCreated ? 'warn' : 'info']({ caCertificate: app.devCaCertPath }, msg);
  }
  const link = await app.services.enrollment.createBootstrapLink();
  if (link) process.stdout.write(`Enroll the first administrator: ${link.url}\n`);

  let stopping = false;
  const stop = (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    const graceMs = app.config.server.shutdownGraceSeconds * 1000;
    const drainDelayMs = app.config.server.drainDelaySeconds * 1000;
    app.logger.info({ signal, graceMs, drainDelayMs }, 'draining: readiness is now false; new connections are accepted for drainDelayMs, in-flight requests may finish within graceMs');
    app.close({ graceMs, drainDelayMs }).then(
      () => process.exit(exitCode),
      (err) => {
        app.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Workers dying faster than they can be replaced: exit non-zero so the supervisor (ECS, systemd) restarts the node.
  giveUp = () => stop('workers crash-looping', 1);
}

(cluster.isWorker ? runClusterWorker() : main()).catch((err) => {
  process.stderr.write(`Kanmon failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
