import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { parseProxyV2, PROXY_V2_SIGNATURE } from '../net/proxy-protocol.js';
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
  // header too (with no client address); the container's own health check does not. So a
  // header is optional here and only stripped: nothing on this port depends on the address.
  const front = createNetServer((socket) => stripOptionalProxyHeader(socket, () => server.emit('connection', socket)));
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(opts.port, opts.host, () => resolve());
  });
  const port = (front.address() as { port: number }).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        front.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Reads just enough to tell whether a PROXY v2 header starts the stream, removes it, and hands the rest on. */
function stripOptionalProxyHeader(socket: Socket, handOver: () => void): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), 5000);
  const finish = (rest: Buffer) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    if (rest.length > 0) socket.unshift(rest);
    handOver();
    socket.resume();
  };
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const prefix = buffered.subarray(0, Math.min(buffered.length, PROXY_V2_SIGNATURE.length));
    if (!PROXY_V2_SIGNATURE.subarray(0, prefix.length).equals(prefix)) return finish(buffered);
    const parsed = parseProxyV2(buffered);
    if (parsed.kind === 'incomplete') return;
    if (parsed.kind === 'invalid') {
      clearTimeout(timer);
      socket.destroy();
      return;
    }
    finish(buffered.subarray(parsed.headerLength));
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
}
