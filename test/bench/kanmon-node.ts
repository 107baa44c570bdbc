/**
 * "Kanmon" bench case: the real gateway (TLS, route match, session cookie, policy, identity
 * headers and JWT, forwarder) started as its own process so the runner can pin it to a core.
 * Adds a user, starts a passkey session for it, and prints {"url":…,"cookie":…} on stdout.
 *
 * Usage: kanmon-node.ts <upstream-url> <data-dir> [plain|tls] [workers]
 * With "plain", TLS is offloaded (tls.source "offloaded", as behind an NLB with an ACM certificate).
 * With workers ≥ 2, this process is the cluster's primary (server.workers) and forks that many
 * workers, which run this same script and take the cluster.isWorker branch.
 */
import cluster from 'node:cluster';
import { startKanmon } from '../../runtime/app.js';
import { runClusterWorker, startKanmonCluster } from '../../runtime/cluster/index.js';
import type { KanmonConfigInput } from '../../runtime/config/schema.js';

if (cluster.isWorker) {
  await runClusterWorker();
} else {
  const [upstream, dataDir, transport, workersArg] = process.argv.slice(2);
  const plain = transport === 'plain';
  const workers = workersArg ? Number(workersArg) : 1;
  if (!upstream || !dataDir || !Number.isInteger(workers) || workers < 1) throw new Error('usage: kanmon-node.ts <upstream-url> <data-dir> [plain|tls] [workers]');

  const config: KanmonConfigInput = {
    dataDir,
    server: { port: 0, host: '127.0.0.1', workers },
    ...(plain ? { tls: { source: 'offloaded' as const } } : {}),
    routes: [{ id: 'bench', match: { pathPrefix: '/' }, upstream }],
    log: { level: 'silent' },
  };
  const app = workers > 1 ? await startKanmonCluster(config, { workers }) : await startKanmon(config);
  const user = await app.services.users.addUser({ username: 'bench' });
  const { cookie } = await app.services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 'bench' });
  process.stdout.write(`${JSON.stringify({ url: `${plain ? 'http' : 'https'}://127.0.0.1:${app.port}`, cookie })}\n`);

  process.on('SIGTERM', () => {
    void app.close().then(() => process.exit(0));
  });
}
