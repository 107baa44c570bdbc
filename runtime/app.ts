import 'reflect-metadata';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { parseConfig, type KanmonConfig, type KanmonConfigInput } from './config/schema.js';
import { startDemoGroupware, type DemoGroupware } from './demo/index.js';
import { Gateway, type GatewayRoute } from './gateway/gateway.js';
import { nextRequestId } from './http/request-id.js';
import { IdentityTokenCache } from './jwt/identity-token.js';
import { registerPortal } from './portal/portal.js';
import { loadStaticFiles } from './portal/static-files.js';
import { createForwarder } from './proxy/index.js';
import { RouteTable } from './routing/route-table.js';
import { openLocalSecretBox } from './secrets/index.js';
import { createServices, type Services } from './services/index.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';
import { ensureDevCertificates } from './tls/index.js';

export interface KanmonApp {
  readonly config: KanmonConfig;
  /** Where the listener is reachable, e.g. https://localhost:8443 (the public origin). */
  readonly url: string;
  readonly port: number;
  readonly services: Services;
  readonly store: Store;
  readonly logger: Logger;
  /** The development CA's certificate file, when tls.source is self-signed-dev. */
  readonly devCaCertPath?: string;
  /** True when this start created the development CA, which browsers must now be told to trust. */
  readonly devCaCreated?: boolean;
  readonly demo?: DemoGroupware;
  close(): Promise<void>;
}

export interface StartOptions {
  /** A logger to use instead of JSON lines on stdout. */
  readonly logger?: Logger;
}

/** Starts a Kanmon node: store, keys, certificates, portal, gateway, listener. */
export async function startKanmon(input: KanmonConfig | KanmonConfigInput, opts: StartOptions = {}): Promise<KanmonApp> {
  let config = parseConfig(input);
  if (config.server.port === 0) {
    // Port 0 (tests): pick the port first, because the WebAuthn origin names it.
    const port = await freePort(config.server.host);
    const raw = structuredClone(input) as { server?: Record<string, unknown> };
    raw.server = { ...(raw.server ?? {}), port };
    config = parseConfig(raw);
  }
  const logger = opts.logger ?? pino({ level: config.log.level, base: { service: 'kanmon' } });
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const store = await openStore(config);
    cleanups.push(() => store.close());
    const secrets = await openLocalSecretBox(config.dataDir);
    const services = createServices({ config, store, secrets, logger });
    await services.signingKeys.ensureActiveKey();
    cleanups.push(services.signingKeys.startBackgroundRefresh(10 * 60_000, (err) => logger.warn({ err }, 'signing keys could not be refreshed')));

    const sweep = setInterval(() => {
      store.sweepExpired(Date.now()).catch((err) => logger.warn({ err }, 'expired items could not be swept'));
    }, 60_000);
    sweep.unref();
    cleanups.push(() => clearInterval(sweep));

    let demo: DemoGroupware | undefined;
    if (config.routes.some((r) => r.upstream === 'demo')) {
      demo = await startDemoGroupware({ host: '127.0.0.1', port: 0 });
      cleanups.push(() => demo!.close());
    }

    const entries: GatewayRoute[] = config.routes.map((route) => ({
      route,
      forwarder: createForwarder({
        upstream: route.upstream === 'demo' ? demo!.url : route.upstream,
        preserveHost: route.preserveHost,
        onError: (kind, req, err) => logger.warn({ route: route.id, kind, err: err.message, url: req.url?.split('?')[0] }, 'upstream error'),
      }),
    }));
    cleanups.push(() => Promise.all(entries.map((e) => e.forwarder.close())).then(() => undefined));

    const tokens = new IdentityTokenCache({ keys: services.signingKeys, issuer: config.jwt.issuer, ttlSeconds: config.jwt.ttlSeconds });
    const clientIp = (req: IncomingMessage) => normalizeIp(req.socket.remoteAddress);
    const gateway = new Gateway({
      routes: new RouteTable(entries),
      sessions: services.sessions,
      identityToken: (active, routeId) =>
        tokens.get(active.session.id, routeId, {
          userId: active.user.id,
          username: active.user.username,
          groups: active.user.groups,
          authMethods: active.session.authMethods,
        }),
      clientIp,
      logger,
    });

    let tlsFiles: { cert: string; key: string } | undefined;
    let devCaCertPath: string | undefined;
    let devCaCreated = false;
    switch (config.tls.source) {
      case 'self-signed-dev': {
        const dev = await ensureDevCertificates(config.dataDir, { hostnames: [new URL(config.server.publicOrigin).hostname] });
        tlsFiles = { cert: dev.certPem, key: dev.keyPem };
        devCaCertPath = dev.caCertPath;
        devCaCreated = dev.caCreated;
        break;
      }
      case 'file':
        tlsFiles = { cert: readFileSync(config.tls.certFile, 'utf8'), key: readFileSync(config.tls.keyFile, 'utf8') };
        break;
      case 'offloaded':
        logger.warn('tls.source is "offloaded": this listener speaks plain HTTP and must only be reachable from the TLS-terminating load balancer');
        break;
      default:
        throw new Error(`tls.source "${config.tls.source}" is not supported by this version of Kanmon`);
    }

    let server!: Server;
    const fastify = Fastify({
      serverFactory: (handler) => {
        const dispatch = (req: IncomingMessage, res: ServerResponse) => {
          if (isPortalPath(req.url)) handler(req, res);
          else gateway.handle(req, res);
        };
        server = tlsFiles
          ? createHttpsServer({ ...tlsFiles, minVersion: 'TLSv1.2', requestTimeout: 0 }, dispatch)
          : createHttpServer({ requestTimeout: 0 }, dispatch);
        return server;
      },
      loggerInstance: logger.child({ component: 'portal' }) as FastifyBaseLogger,
      genReqId: () => nextRequestId(),
      bodyLimit: config.server.portalBodyLimitBytes,
      forceCloseConnections: true,
    });
    await registerPortal(fastify as unknown as FastifyInstance, { config, services, statics: loadStaticFiles(), clientIp });
    server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
      if (isPortalPath(req.url)) socket.destroy();
      else gateway.upgrade(req, socket, head);
    });
    await fastify.listen({
      port: config.server.port,
      host: config.server.host,
      listenTextResolver: (address) => `listener bound to ${address.replace(/^https?:/, tlsFiles ? 'https:' : 'http:')}`,
    });
    cleanups.push(() => fastify.close());

    let closed = false;
    return {
      config,
      url: config.server.publicOrigin,
      port: config.server.port,
      services,
      store,
      logger,
      ...(devCaCertPath ? { devCaCertPath, devCaCreated } : {}),
      ...(demo ? { demo } : {}),
      async close() {
        if (closed) return;
        closed = true;
        await runCleanups(cleanups);
      },
    };
  } catch (err) {
    await runCleanups(cleanups);
    throw err;
  }
}

async function runCleanups(cleanups: Array<() => Promise<void> | void>): Promise<void> {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      // Shutting down: keep closing the rest.
    }
  }
}

export function isPortalPath(url: string | undefined): boolean {
  return !!url && url.startsWith('/.kanmon') && (url.length === 8 || url[8] === '/' || url[8] === '?');
}

function normalizeIp(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, host === '0.0.0.0' ? '127.0.0.1' : host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
