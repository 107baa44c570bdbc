/**
 * A route's forwarder, built from its config: connection control, upstream TLS (the files the
 * config names are read here, once, at start-up) and the branded error pages. The metrics and
 * log lines for upstream failures are attached here too, so every node reports them alike.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { CONNECTION_DEFAULTS, type RouteConfig } from '../config/routes.js';
import type { Metrics } from '../observability/metrics.js';
import { upstreamErrorPage } from '../portal/pages/upstream-error.js';
import { createRouteRewriter } from '../rewrite/index.js';
import { createForwarder, type Forwarder, type UpstreamTlsOptions } from './forwarder.js';
import type { RouteRewriter } from './hooks.js';

export interface RouteForwarderDeps {
  /** Where the route's upstream is reached (the demo groupware's address for `demo`). */
  readonly upstream: string;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** The gateway's public origin (server.publicOrigin): what rewriting turns internal URLs into when a request does not say. */
  readonly publicOrigin?: string;
  /** @default the one createRouteRewriter builds from the route's `rewrite` rules (none without rules) */
  readonly rewriter?: RouteRewriter;
  /** Reads a file named in the route's upstreamTls. @default readFileSync */
  readonly readFile?: (path: string) => Buffer;
}

export class UpstreamTlsFileError extends Error {
  constructor(routeId: string, option: string, file: string, cause: unknown) {
    const why = (cause as { code?: string } | null)?.code ?? (cause instanceof Error ? cause.message : String(cause));
    super(`routes: route "${routeId}" option 'upstreamTls.${option}' must name a readable PEM file, got ${JSON.stringify(file)} (${why})`, { cause });
    this.name = 'UpstreamTlsFileError';
  }
}

/** The TLS options toward the route's upstream; logs the warning for skipped verification (on every start). */
export function upstreamTlsOptions(route: RouteConfig, deps: Pick<RouteForwarderDeps, 'logger' | 'readFile'>): UpstreamTlsOptions | undefined {
  const t = route.upstreamTls;
  if (!t) return undefined;
  const read = deps.readFile ?? ((path: string) => readFileSync(path));
  const load = (option: string, file: string): Buffer => {
    try {
      return read(file);
    } catch (err) {
      throw new UpstreamTlsFileError(route.id, option, file, err);
    }
  };
  if (t.insecureSkipVerify) {
    deps.logger.warn(
      { route: route.id },
      `route "${route.id}": upstreamTls.insecureSkipVerify is true, so the upstream's certificate is not checked and anyone on the network path can impersonate it; give its CA in upstreamTls.caFile instead`,
    );
  }
  return {
    ...(t.caFile !== undefined ? { ca: load('caFile', t.caFile) } : {}),
    ...(t.servername !== undefined ? { servername: t.servername } : {}),
    ...(t.clientCertFile !== undefined && t.clientKeyFile !== undefined ? { cert: load('clientCertFile', t.clientCertFile), key: load('clientKeyFile', t.clientKeyFile) } : {}),
    rejectUnauthorized: !t.insecureSkipVerify,
  };
}

export function createRouteForwarder(route: RouteConfig, deps: RouteForwarderDeps): Forwarder {
  const c = route.connection ?? CONNECTION_DEFAULTS;
  const { logger, metrics } = deps;
  const dimensions = { Route: route.id };
  const tls = upstreamTlsOptions(route, deps);
  const rewriter =
    deps.rewriter ??
    createRouteRewriter(route, {
      publicOrigin: deps.publicOrigin ?? `https://${route.match.host && !route.match.host.startsWith('*') ? route.match.host : 'localhost'}`,
      upstreamOrigin: new URL(deps.upstream).origin,
      onRuleError: (ruleId, err) => logger.warn({ route: route.id, rule: ruleId, err: err.message }, 'rewrite rule failed'),
      onWarning: (ruleId, message) => logger.warn({ route: route.id, rule: ruleId }, message),
    });
  return createForwarder({
    upstream: deps.upstream,
    preserveHost: route.preserveHost,
    connections: c.poolSize,
    keepAlive: c.keepAlive,
    connectTimeoutMs: c.connectTimeoutMs,
    responseTimeoutMs: c.responseTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
    retries: c.retries,
    maxRequestBodyBytes: c.maxRequestBodyBytes,
    ...(tls ? { tls } : {}),
    ...(rewriter ? { rewriter } : {}),
    errorPage: upstreamErrorPage,
    onError: (kind, req, err, ctx) => {
      metrics?.count('upstreamErrors', dimensions);
      if (kind === 'timeout') metrics?.count('upstreamTimeouts', dimensions);
      // The detail (address, error text) is for the operator only; the client saw a fixed page.
      logger.warn({ route: route.id, kind, err: err.message, code: (err as { code?: string }).code, url: req.url?.split('?')[0], requestId: ctx.requestId }, 'upstream error');
    },
    onRequestTooLarge: (req, ctx) => {
      metrics?.count('requestBodyTooLarge', dimensions);
      logger.info({ route: route.id, url: req.url?.split('?')[0], requestId: ctx.requestId, limit: c.maxRequestBodyBytes, declared: req.headers['content-length'] }, 'request body too large');
    },
    onUpstreamResponse: metrics
      ? upstreamResponseRecorder(metrics.sampler('upstreamLatency', dimensions), metrics.counter('upstream5xx', dimensions))
      : undefined,
  });
}

/** Per route, bound once: the request path records into ready series instead of building keys. */
function upstreamResponseRecorder(latency: (ms: number) => void, upstream5xx: () => void): (status: number, latencyMs: number) => void {
  return (status, latencyMs) => {
    latency(latencyMs);
    if (status >= 500) upstream5xx();
  };
}
