import 'reflect-metadata';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as NetServer } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { parseConfig, type KanmonConfig, type KanmonConfigInput } from './config/schema.js';
import { startDemoGroupware, type DemoGroupware } from './demo/index.js';
import { Gateway, type GatewayRoute } from './gateway/gateway.js';
import { nextRequestId } from './http/request-id.js';
import { IdentityTokenCache } from './jwt/identity-token.js';
import { freePort, runCleanups, startNodeJobs, waitDrainDelay } from './lifecycle.js';
import { registerAdminConsole } from './admin/index.js';
import { registerPortal } from './portal/portal.js';
import { loadStaticFiles } from './portal/static-files.js';
import { createRouteForwarder } from './proxy/route-forwarder.js';
import { RouteTable } from './routing/route-table.js';
import { openSecretBox } from './secrets/index.js';
import { createServices, type Services } from './services/index.js';
import { LiveConfig, closeRetired, rebuildEntries, startConfigPolling, stateOf, type RouteSet } from './config/live.js';
import type { RouteConfig } from './config/schema.js';
import { diffStates } from './services/config-versions.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';
import { ensureDevCertificates } from './tls/index.js';
import { AcmeChallengeResponder } from './tls/acme-challenge-responder.js';
import { ServerCertificateDocuments } from './tls/server-certificate-documents.js';
import { ServerCertificateService } from './tls/server-certificate-service.js';
import { ServingCertificate, certificateFromPem } from './tls/serving-certificate.js';
import { SECRETS_MANAGER_POLL_MS, SecretsManagerCertificate } from './tls/secrets-manager-certificate.js';
import { ConnectionCertificateGuard, clientAuthOptions, clientCertificatesWanted, type ClientAuthOptions } from './tls/client-auth.js';
import { PeerCertificates } from './gateway/peer-certificate.js';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { AdminMailNotifier } from './notify/admin-mail-notifier.js';
import { createNotifier } from './notify/create-notifier.js';
import type { Mailer } from './notify/mailer.js';
import { nodeCertificateExpiryWarnings, type CertificateExpiryWarnings } from './ca/expiry-warnings.js';
import type { Notifier } from './notify/notifier.js';
import { clientAddressOf, listenWithProxyProtocol } from './net/index.js';
import { Metrics, requestCounter, statusClass } from './observability/metrics.js';
import { wireAuditAlerts } from './observability/audit-alerts.js';
import { SelfCheck, certificateCheck, upstreamCheck } from './observability/self-check.js';
import { startHealthServer } from './observability/health-server.js';
import { StoreHealth, observeStore } from './observability/store-health.js';
import { KANMON_VERSION } from './version.js';
import { UpstreamSignIn } from './upstream-auth/index.js';
import { upstreamTlsOptions } from './proxy/route-forwarder.js';
import { liveNodes } from './observability/node-heartbeat.js';
import type { CheckResult } from './observability/self-check.js';

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
  readonly metrics: Metrics;
  readonly selfCheck: SelfCheck;
  readonly notifier: Notifier;
  /** The internal health listener's port, when server.healthPort is set (0 there means off). */
  readonly healthPort?: number;
  /** The plain-HTTP listener's port, when server.httpPort is set. */
  readonly httpPort?: number;
  /** The certificate the TLS listener presents and its reload (and, for acme, renewal) loop; absent when offloaded. */
  readonly serverCertificate?: ServingCertificate;
  /** The hourly client-certificate expiry warnings (one node at a time under a store lease). */
  readonly certificateExpiryWarnings: CertificateExpiryWarnings;
  /**
   * Stops the node. With `graceMs`, readiness turns false at once, the listener stops accepting,
   * idle connections close, and in-flight requests get up to `graceMs` to finish. With
   * `drainDelayMs` (part of `graceMs`), the listener first goes on accepting that long with
   * readiness false, so the load balancer moves new connections away before it closes.
   */
  close(opts?: { graceMs?: number; drainDelayMs?: number }): Promise<void>;
}

export interface StartOptions {
  /** A logger to use instead of JSON lines on stdout. */
  readonly logger?: Logger;
  /** A notifier to use instead of the one the config names. */
  readonly notifier?: Notifier;
  /**
   * Set in a cluster worker (runtime/cluster): the primary already did the one-time work and
   * runs the node-wide jobs (expiry sweeps and warnings, self-check, health listener, session
   * gauge) and the demo backend, whose address it passes here. `health` gives the primary's
   * latest self-check results, which the console's dashboard shows.
   */
  readonly clusterWorker?: { readonly demoUrl?: string; readonly health?: () => readonly CheckResult[] };
  /** Server certificate timing (ms); tests shorten it. @default poll 30 s, renewal check 60 s, acme-client's ACME polling */
  readonly serverCertificate?: {
    readonly pollMs?: number;
    readonly renewalCheckMs?: number;
    readonly acmePoll?: { readonly minMs: number; readonly maxMs: number };
    /** The clock renewal decisions use (a node whose clock says renewal is due). @default Date.now */
    readonly now?: () => number;
  };
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
    const rawStore = await openStore(config);
    cleanups.push(() => rawStore.close());
    const metrics = new Metrics({ namespace: config.metrics.namespace, emit: config.metrics.emf });
    cleanups.push(metrics.start());
    if (config.notifications.adminRecipients.length > 0 && !config.notifications.mail) {
      logger.warn({ recipients: config.notifications.adminRecipients.length }, 'notifications.adminRecipients is set but notifications.mail is not: nothing is mailed to administrators');
    }
    // Administrator notifications also go by mail to notifications.adminRecipients (live) once the services' mailer exists.
    let adminMailer: Mailer | undefined;
    const notifier: Notifier = new AdminMailNotifier({ inner: opts.notifier ?? createNotifier(config.notifications, logger), mailer: () => adminMailer, recipients: () => currentConfig().notifications.adminRecipients, logger });
    // Every store call that fails for want of the store is counted, and an outage is notified once.
    const storeHealth = new StoreHealth({ probe: () => rawStore.ping(), metrics, notifier, logger });
    cleanups.push(storeHealth.start());
    const store = observeStore(rawStore, storeHealth);
    const secrets = await openSecretBox(config);
    // Routes and live settings come from the store once it holds them (runtime/config/live.ts); until then from the file.
    const fileConfig = config;
    let liveConfig: LiveConfig<RouteSet<GatewayRoute>> | undefined;
    const currentConfig = () => liveConfig?.config ?? fileConfig;
    const services = createServices({ config, store, secrets, logger, live: { get config() { return currentConfig(); } } });
    adminMailer = services.mailer;
    wireAuditAlerts(services.audit, metrics, notifier);
    // Client certificates about to lapse: hourly, one node at a time under a store lease; in a cluster the primary runs it once for the node.
    const certificateExpiryWarnings = nodeCertificateExpiryWarnings({ services, documents: store.documents, notifier, metrics, config: currentConfig, logger });
    if (!opts.clusterWorker) cleanups.push(certificateExpiryWarnings.start());
    await services.signingKeys.ensureActiveKey();
    cleanups.push(services.signingKeys.startBackgroundRefresh(10 * 60_000, (err) => logger.warn({ err }, 'signing keys could not be refreshed')));

    // Sweep, heartbeat (the console's dashboard lists nodes) and directory sync: in a cluster the primary runs them once for the node (runtime/cluster/primary.ts).
    if (!opts.clusterWorker) cleanups.push(...startNodeJobs({ store, services, logger }));
    if (services.directorySync && config.directory.ldap!.allowPlaintext && config.directory.ldap!.url.startsWith('ldap:') && !config.directory.ldap!.startTls) {
      logger.warn({ url: config.directory.ldap!.url }, 'directory.ldap.allowPlaintext: the directory bind password is sent unencrypted');
    }

    // The store's routes and live settings win once seeded; the file seeds them at first start only (README: Config model).
    const seeded = await services.configVersions.seed();
    const startConfig = services.configVersions.validate(seeded.state);
    if (!startConfig.ok) {
      throw new Error(`the stored config version ${seeded.version} is not valid with this config file; fix the file, or load its routes with \`kanmon config import FILE --apply\`:\n  - ${startConfig.errors.join('\n  - ')}`);
    }
    const ignoredFromFile = diffStates(stateOf(fileConfig), stateOf(startConfig.config));
    if (ignoredFromFile.length > 0) {
      logger.warn({ version: seeded.version, differences: ignoredFromFile.slice(0, 10).map((d) => d.path) }, 'routes and live settings come from the store; the config file\'s differ and are not used (load them with `kanmon config import FILE --apply`)');
    }
    config = startConfig.config;

    let demo: DemoGroupware | undefined;
    const clusterDemoUrl = opts.clusterWorker?.demoUrl;
    if (config.routes.some((r) => r.upstream === 'demo') && !clusterDemoUrl) {
      demo = await startDemoGroupware({ host: '127.0.0.1', port: 0 });
      cleanups.push(() => demo!.close());
    }
    // The address a route forwards to: the demo backend's (this node's, or the cluster primary's) for "demo".
    const upstreamUrl = (upstream: string) => (upstream === 'demo' ? (clusterDemoUrl ?? demo!.url) : upstream);

    const entryFor = (route: RouteConfig): GatewayRoute => ({
      route,
      forwarder: createRouteForwarder(route, { upstream: upstreamUrl(route.upstream), logger, metrics, publicOrigin: config.server.publicOrigin }),
    });
    const entries: GatewayRoute[] = rebuildEntries(config.routes, [], entryFor);
    // The gateway reads its route table from here; a new config version swaps in a new one (changed routes get new forwarders).
    const live = new LiveConfig<RouteSet<GatewayRoute>>({ version: seeded.version, config, derived: { entries, table: new RouteTable(entries) } });
    liveConfig = live;
    const configPolling = startConfigPolling<RouteSet<GatewayRoute>>({
      live,
      source: services.configVersions,
      base: fileConfig,
      build: async (next, previous) => {
        if (next.routes.some((r) => r.upstream === 'demo') && !clusterDemoUrl && !demo) throw new Error('a route names the demo upstream, which this node did not start; restart it');
        const rebuilt = rebuildEntries(next.routes, previous.derived.entries, entryFor);
        return { entries: rebuilt, table: new RouteTable(rebuilt) };
      },
      retire: (old, next) => closeRetired(old.derived.entries, next.derived.entries),
      onSwap: (next, previous) => logger.info({ version: next.version, previous: previous.version, routes: next.config.routes.length }, 'config version applied'),
      onError: (err, version) => logger.error({ err, version }, 'config version not applied; this node keeps running the one it has'),
    });
    // A save on this node applies here at once; other nodes within their next poll.
    services.configVersions.onSaved(() => void configPolling.refresh());
    cleanups.push(() => Promise.all(live.current.derived.entries.map((e) => e.forwarder.close())).then(() => undefined));
    cleanups.push(() => configPolling.stop());
    // Routes with upstreamAuth: Kanmon signs in to the upstream for the user; leaving Kanmon signs out there too.
    // Always there, reading the live routes: a stored config version may add upstreamAuth to a route.
    const upstreamSignIn = new UpstreamSignIn(
      {
        documents: store.documents,
        secrets,
        credentials: services.upstreamCredentials,
        audit: services.audit,
        logger,
        upstreamOf: (route) => {
          const tls = upstreamTlsOptions(route, { logger: logger.child({}, { level: 'silent' }) });
          return { url: upstreamUrl(route.upstream), ...(tls ? { tls: { ...tls } } : {}) };
        },
        // Jars are trusted per node as long as sessions are: a signed-in request costs no store read.
        cacheSeconds: () => live.config.session.cacheSeconds,
        // The store failing under a sign-in is answered as the gateway answers it (503, the store-outage page, Retry-After).
        storeUnavailable: { request: (req, res, err) => gateway.fail(req, res, err), upgrade: (socket, err) => gateway.failUpgrade(socket, err) },
      },
      () => live.config.routes,
    );
    services.sessions.onEnd((sessionId, context) => upstreamSignIn.signOut(sessionId, context).catch((err: unknown) => logger.warn({ err }, 'upstream sign-out failed')));
    cleanups.push(() => upstreamSignIn.close());

    // Audits nobody awaits (the gateway's and the handshake's): a store outage is logged, never an unhandled rejection.
    const auditInBackground = (input: Parameters<Services['audit']['record']>[0]) =>
      services.audit.record(input).catch((err: unknown) => logger.warn({ err, type: input.type }, 'audit event could not be stored'));
    const tokens = new IdentityTokenCache({ keys: services.signingKeys, issuer: config.jwt.issuer, ttlSeconds: config.jwt.ttlSeconds });
    // With PROXY protocol v2, the address the load balancer carried; otherwise the peer's.
    const clientIp = clientAddressOf;
    // Client certificates: the listener asks for one only when something uses it (see tls/client-auth.ts).
    const wantsClientCertificates = config.tls.source !== 'offloaded' && clientCertificatesWanted(config);
    const peerCertificates = wantsClientCertificates
      ? new PeerCertificates({
          checker: services.clientCertificates,
          userById: async (id) => {
            const u = await services.users.getById(id);
            return u && { userId: u.id, username: u.username, groups: u.groups, disabled: u.disabled };
          },
        })
      : undefined;
    const gateway = new Gateway({
      routes: { match: (host, path) => live.current.derived.table.match(host, path) },
      sessions: services.sessions,
      identityToken: (cacheKey, routeId, identity) => tokens.get(cacheKey, routeId, identity),
      clientIp,
      logger,
      onResponse: requestCounter(metrics),
      groupPolicies: config.groups,
      upstreamSignIn,
      ...(peerCertificates ? { peerCertificates, mtlsRequiredFor: config.mtls.requiredFor, audit: auditInBackground } : {}),
    });

    // The certificate is swapped in place when its source changes (see tls/serving-certificate.ts).
    let serving: ServingCertificate | undefined;
    let acmeChallenges: AcmeChallengeResponder | undefined;
    let devCaCertPath: string | undefined;
    let devCaCreated = false;
    const certTiming = { ...(opts.serverCertificate?.pollMs ? { pollMs: opts.serverCertificate.pollMs } : {}), ...(opts.serverCertificate?.renewalCheckMs ? { renewalCheckMs: opts.serverCertificate.renewalCheckMs } : {}) };
    switch (config.tls.source) {
      case 'self-signed-dev': {
        const dev = await ensureDevCertificates(config.dataDir, { hostnames: [new URL(config.server.publicOrigin).hostname] });
        serving = await ServingCertificate.open({ source: { kind: 'fixed', certificate: certificateFromPem('self-signed-dev', dev.certPem, dev.keyPem) }, logger });
        devCaCertPath = dev.caCertPath;
        devCaCreated = dev.caCreated;
        break;
      }
      case 'file':
        serving = await ServingCertificate.open({ source: { kind: 'file', certFile: config.tls.certFile, keyFile: config.tls.keyFile }, logger, ...certTiming });
        break;
      case 'acme':
      case 'imported': {
        if (config.tls.source === 'imported' && config.tls.secretArn) {
          serving = await ServingCertificate.open({
            source: { kind: 'secrets-manager', secret: new SecretsManagerCertificate({ secretArn: config.tls.secretArn }) },
            logger,
            pollMs: opts.serverCertificate?.pollMs ?? SECRETS_MANAGER_POLL_MS,
          });
          break;
        }
        const acmeConfig = config.tls.source === 'acme' ? config.tls : undefined;
        const certificates = new ServerCertificateDocuments(store.documents, secrets);
        const service = new ServerCertificateService({
          tls: config.tls,
          documents: store.documents,
          certificates,
          audit: auditInBackground,
          logger,
          notifier,
          metrics,
          ...(opts.serverCertificate?.acmePoll ? { acmePoll: opts.serverCertificate.acmePoll } : {}),
          ...(opts.serverCertificate?.now ? { now: opts.serverCertificate.now } : {}),
        });
        serving = await ServingCertificate.open({ source: { kind: 'store', service, renew: !!acmeConfig, names: acmeConfig?.domains ?? [] }, logger, ...certTiming });
        if (acmeConfig) acmeChallenges = new AcmeChallengeResponder(certificates, acmeConfig.domains, logger);
        break;
      }
      case 'offloaded':
        logger.warn('tls.source is "offloaded": this listener speaks plain HTTP and must only be reachable from the TLS-terminating load balancer');
        break;
    }
    const tlsFiles = serving?.tlsOptions();
    // TLS-ALPN-01 is answered on this listener: the ACME server's handshake gets the challenge certificate.
    const alpnChallengeOptions = acmeChallenges && config.tls.source === 'acme' && config.tls.challenge === 'tls-alpn-01' ? acmeChallenges.tlsOptions() : {};

    let clientAuth: ClientAuthOptions | undefined;
    let connectionGuard: ConnectionCertificateGuard | undefined;
    if (tlsFiles && peerCertificates) {
      // The CA exists before the first handshake names it in a CertificateRequest.
      await services.ca.ensure();
      clientAuth = clientAuthOptions(config, await services.ca.trustedCaPems());
      if (config.mtls.enforcement === 'reject-connection') connectionGuard = new ConnectionCertificateGuard(peerCertificates, logger, auditInBackground);
    }

    let server!: Server;
    // Set by close(): readiness turns false, and every answer from then on closes its
    // connection, so keep-alive clients reconnect (through the load balancer, to another node)
    // instead of having an idle connection cut under a request they are sending.
    let draining = false;
    const fastify = Fastify({
      serverFactory: (handler) => {
        const route = (req: IncomingMessage, res: ServerResponse) => {
          // Not setHeader: it would turn a forwarded raw header list's repeated fields into one.
          if (draining) res.shouldKeepAlive = false;
          if (isPortalPath(req.url)) handler(req, res);
          else gateway.handle(req, res);
        };
        // reject-connection: nothing is served on a connection whose certificate is not (or no longer) valid.
        const dispatch = connectionGuard
          ? (req: IncomingMessage, res: ServerResponse) => {
              connectionGuard!.admit(req.socket as TLSSocket).then((ok) => (ok ? route(req, res) : req.socket.destroy()));
            }
          : route;
        server = tlsFiles
          ? createHttpsServer({ ...tlsFiles, ...clientAuth, ...alpnChallengeOptions, minVersion: 'TLSv1.2', requestTimeout: 0 }, dispatch)
          : createHttpServer({ requestTimeout: 0 }, dispatch);
        serving?.attach(server as unknown as TlsServer, clientAuth);
        // Expect: 100-continue: the portal continues at once; a proxied request only once it is
        // allowed and its declared size fits the route (the forwarder sends the 100 then).
        server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
          if (isPortalPath(req.url)) res.writeContinue();
          dispatch(req, res);
        });
        if (connectionGuard) connectionGuard.attach(server as unknown as TlsServer);
        return server;
      },
      loggerInstance: logger.child({ component: 'portal' }) as FastifyBaseLogger,
      genReqId: () => nextRequestId(),
      bodyLimit: config.server.portalBodyLimitBytes,
      // Idle keep-alive connections close at shutdown; in-flight ones may finish (see close()).
      forceCloseConnections: 'idle',
    });
    const portalKit = await registerPortal(fastify as unknown as FastifyInstance, { config, services, statics: loadStaticFiles(), clientIp });
    // The administrator's console; its dashboard reads this node's self-checks once they run.
    let consoleHealth: () => readonly CheckResult[] = () => [];
    registerAdminConsole(fastify as unknown as FastifyInstance, portalKit, {
      deviceOf: async (req) => {
        const peer = peerCertificates ? await peerCertificates.evidenceOf(req.raw.socket) : undefined;
        return peer ? { clientCertificate: { valid: peer.check.valid, ...(peer.check.valid ? { owner: peer.check.owner } : {}) } } : {};
      },
      health: () => consoleHealth(),
      serverCertificateNotAfter: () => serving?.notAfter,
      nodes: () => liveNodes(store.documents),
    });
    fastify.addHook('onResponse', async (_req, reply) => {
      metrics.count('requests', { Route: 'portal', StatusClass: statusClass(reply.statusCode) });
    });
    server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
      if (isPortalPath(req.url)) socket.destroy();
      else if (connectionGuard) connectionGuard.admit(req.socket as TLSSocket).then((ok) => (ok ? gateway.upgrade(req, socket, head) : socket.destroy()));
      else gateway.upgrade(req, socket, head);
    });
    let proxyListener: NetServer | undefined;
    if (config.server.proxyProtocol.enabled) {
      // Behind the NLB: a front listener checks the peer is a load balancer, reads the PROXY v2
      // header, and hands the connection to the TLS server, which never listens itself.
      await fastify.ready();
      proxyListener = await listenWithProxyProtocol(server, {
        port: config.server.port,
        host: config.server.host,
        allowedNetworks: config.server.proxyProtocol.allowedNetworks,
        onRefused: (reason, remoteAddress, detail) => logger.warn({ reason, remoteAddress, detail }, 'connection refused: PROXY protocol'),
      });
      proxyListener.on('error', (err) => logger.error({ err }, 'PROXY protocol listener error'));
      logger.info({ port: config.server.port, allowedNetworks: config.server.proxyProtocol.allowedNetworks }, 'listener bound, expecting PROXY protocol v2');
    } else {
      await fastify.listen({
        port: config.server.port,
        host: config.server.host,
        listenTextResolver: (address) => `listener bound to ${address.replace(/^https?:/, tlsFiles ? 'https:' : 'http:')}`,
      });
    }

    if (serving) cleanups.push(serving.start());
    const fixedChecks = [storeHealth.selfCheckTarget(), ...(serving ? [certificateCheck(() => serving.notAfter, metrics)] : [])];
    const selfCheck = new SelfCheck({
      // The upstreams of the routes this node runs now (a stored config version may add or remove some).
      targets: () => [...fixedChecks, ...live.current.derived.entries.map((e) => upstreamCheck(e.route.id, upstreamUrl(e.route.upstream)))],
      logger,
      metrics,
      notifier,
    });
    consoleHealth = opts.clusterWorker?.health ?? (() => selfCheck.snapshot());
    const stopSelfCheck = opts.clusterWorker ? () => undefined : selfCheck.start();
    // In a cluster the primary gauges the node's sessions from every worker's count.
    const sessionGauge = opts.clusterWorker ? undefined : setInterval(() => metrics.gauge('activeSessions', {}, services.sessions.activeCount()), 60_000);
    sessionGauge?.unref();

    let health: Awaited<ReturnType<typeof startHealthServer>> | undefined;
    if (config.server.healthPort !== 0 && !opts.clusterWorker) {
      health = await startHealthServer({
        port: config.server.healthPort,
        host: config.server.host,
        // Readiness probes the store itself; its answers are not store calls to count.
        store: rawStore,
        version: KANMON_VERSION,
        proxyProtocol: config.server.proxyProtocol,
        readiness: { draining: () => draining, certificateLoaded: () => serving?.loaded ?? config.tls.source === 'offloaded', routeCount: () => live.current.derived.entries.length },
      });
    }
    let redirect: { close(): void } | undefined;
    if (config.server.httpPort !== 0) {
      redirect = await startRedirectListener(config.server.httpPort, config.server.host, config.server.publicOrigin, config.server.proxyProtocol, logger, acmeChallenges);
    }

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
      notifier,
      certificateExpiryWarnings,
      ...(health ? { healthPort: health.port } : {}),
      ...(redirect ? { httpPort: config.server.httpPort } : {}),
      ...(serving ? { serverCertificate: serving } : {}),
      ...(devCaCertPath ? { devCaCertPath, devCaCreated } : {}),
      ...(demo ? { demo } : {}),
      async close(closeOpts: { graceMs?: number; drainDelayMs?: number } = {}) {
        if (closed) return;
        closed = true;
        draining = true;
        stopSelfCheck();
        clearInterval(sessionGauge);
        // Readiness is false from here on; the listener still accepts until the load balancer has noticed.
        const graceLeftMs = await waitDrainDelay(closeOpts);
        // Past the grace period, whatever is still in flight is cut.
        const force = setTimeout(() => server.closeAllConnections(), graceLeftMs);
        // Connections that finish their last request during the drain are closed as soon as
        // they turn idle, instead of lingering until the keep-alive timeout.
        const sweepIdle = setInterval(() => server.closeIdleConnections(), 100);
        redirect?.close();
        if (proxyListener) {
          // The front listener stops accepting at once; its close callback fires when the last
          // handed-over connection has ended (idle ones are swept, the rest finish or are cut).
          const front = proxyListener;
          const listenerClosed = new Promise<void>((resolve) => front.close(() => resolve()));
          await fastify.close();
          server.closeIdleConnections();
          await listenerClosed;
          server.close(() => undefined);
        } else {
          await fastify.close();
        }
        clearTimeout(force);
        clearInterval(sweepIdle);
        await health?.close();
        await runCleanups(cleanups);
      },
    };
  } catch (err) {
    await runCleanups(cleanups);
    throw err;
  }
}

export function isPortalPath(url: string | undefined): boolean {
  return !!url && url.startsWith('/.kanmon') && (url.length === 8 || url[8] === '/' || url[8] === '?');
}

/** Port 80 on AWS: ACME HTTP-01 validations are answered (RFC 8555 §8.3), everything else is redirected to the https origin. */
async function startRedirectListener(
  port: number,
  host: string,
  publicOrigin: string,
  proxyProtocol: KanmonConfig['server']['proxyProtocol'],
  logger: Logger,
  acmeChallenges?: AcmeChallengeResponder,
): Promise<{ close(): void }> {
  const server = createHttpServer((req, res) => {
    if (acmeChallenges && AcmeChallengeResponder.isHttpChallengePath(req.url)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0, connection: 'close' });
        res.end();
        return;
      }
      void acmeChallenges.answerHttp(req.url!).then((answer) => {
        const body = answer.status === 200 ? answer.body : '';
        res.writeHead(answer.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', connection: 'close' });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    const path = req.url && req.url.startsWith('/') && !req.url.startsWith('//') ? req.url : '/';
    res.writeHead(301, { location: `${publicOrigin}${path}`, 'content-length': 0, connection: 'close' });
    res.end();
  });
  let front: NetServer | undefined;
  if (proxyProtocol.enabled) {
    front = await listenWithProxyProtocol(server, {
      port,
      host,
      allowedNetworks: proxyProtocol.allowedNetworks,
      onRefused: (reason, remoteAddress) => logger.warn({ reason, remoteAddress, listener: 'http' }, 'connection refused: PROXY protocol'),
    });
  } else {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  }
  return {
    close() {
      front?.close();
      server.close(() => undefined);
      server.closeAllConnections();
    },
  };
}
