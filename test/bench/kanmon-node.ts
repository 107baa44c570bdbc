/**
 * "Kanmon" bench case: the real gateway (TLS, route match, session cookie, policy, identity
 * headers and JWT, forwarder) started as its own process so the runner can pin it to a core.
 * Adds a user, starts a passkey session for it, and prints {"url":…,"cookie":…} on stdout.
 *
 * Usage: kanmon-node.ts <upstream-url> <data-dir> [plain]
 * With "plain", TLS is offloaded (tls.source "offloaded", as behind an NLB with an ACM certificate).
 */
import { startKanmon } from '../../runtime/app.js';

const [upstream, dataDir, transport] = process.argv.slice(2);
const plain = transport === 'plain';
if (!upstream || !dataDir) throw new Error('usage: kanmon-node.ts <upstream-url> <data-dir>');

const app = await startKanmon({
  dataDir,
  server: { port: 0, host: '127.0.0.1' },
  ...(plain ? { tls: { source: 'offloaded' as const } } : {}),
  routes: [{ id: 'bench', match: { pathPrefix: '/' }, upstream }],
  log: { level: 'silent' },
});
const user = await app.services.users.addUser({ username: 'bench' });
const { cookie } = await app.services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 'bench' });
process.stdout.write(`${JSON.stringify({ url: `${plain ? 'http' : 'https'}://127.0.0.1:${app.port}`, cookie })}\n`);

process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
