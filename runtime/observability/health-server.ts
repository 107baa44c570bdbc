import { createServer, type Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import type { ProxyProtocolConfig } from '../config/schema.js';
import { listenWithProxyProtocol } from '../net/proxy-listener.js';
import type { Store } from '../store/types.js';

export interface Readiness {
  /** Set while the node drains on shutdown, so the load balancer moves traffic away. */
  draining(): boolean;
  certificateLoaded(): boolean;
  routeCount(): number;
}

/**
 * The internal health listener, separate from the public port so health and readiness are
 * never exposed to the internet:
 * - /healthz: the process is alive (liveness; the container health check);
 * - /readyz: the store answers, a certificate is loaded, routes are configured, and the node
 *   is not draining (the load balancer's target health).
 */
export async function startHealthServer(opts: {
  readonly port: number;
  readonly host: string;
  readonly store: Store;
  readonly readiness: Readiness;
  readonly version: string;
  readonly storeTimeoutMs?: number;
  /** With PROXY protocol on, the NLB's health checks carry a header too (see below). */
  readonly proxyProtocol?: ProxyProtocolConfig;
}): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const timeoutMs = opts.storeTimeoutMs ?? 2000;
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    if (path === '/healthz') return send(200, { status: 'alive', version: opts.version });
    if (path !== '/readyz') return send(404, { error: 'not found' });
    const checks: Record<string, string> = {};
    checks.draining = opts.readiness.draining() ? 'yes' : 'no';
    checks.certificate = opts.readiness.certificateLoaded() ? 'loaded' : 'missing';
    checks.routes = String(opts.readiness.routeCount());
    try {
      await Promise.race([
        opts.store.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), timeoutMs).unref()),
      ]);
      checks.store = 'ok';
    } catch (err) {
      checks.store = `failing: ${err instanceof Error ? err.message.slice(0, 120) : 'error'}`;
    }
    const ready = checks.draining === 'no' && checks.certificate === 'loaded' && opts.readiness.routeCount() > 0 && checks.store === 'ok';
    send(ready ? 200 : 503, { ready, checks });
  });
  server.keepAliveTimeout = 5000;
  // When the target group has PROXY protocol v2 on, the NLB's health checks carry a PROXY
  // header too (with no client address); the container's own health check does not. So the
  // header is optional here; nothing on this port depends on the address it carries.
  let front: NetServer | undefined;
  if (opts.proxyProtocol?.enabled) {
    front = await listenWithProxyProtocol(server, {
      port: opts.port,
      host: opts.host,
      allowedNetworks: opts.proxyProtocol.allowedNetworks,
      headerOptional: true,
    });
  } else {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => resolve());
    });
  }
  const port = ((front ?? server).address() as { port: number }).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        if (front) front.close(() => resolve());
        else server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
