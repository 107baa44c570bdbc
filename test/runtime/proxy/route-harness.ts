/**
 * A route's forwarder as the app builds it (config → createRouteForwarder) behind a plain
 * HTTP listener on port 0 that, like the app, leaves Expect: 100-continue to the forwarder.
 */
import http, { type Server } from 'node:http';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach } from 'vitest';
import { parseConfig, type KanmonConfigInput, type RouteConfig } from '../../../runtime/config/schema.js';
import { Metrics } from '../../../runtime/observability/metrics.js';
import type { ForwardContext, Forwarder } from '../../../runtime/proxy/index.js';
import { createRouteForwarder } from '../../../runtime/proxy/route-forwarder.js';
import { CONTEXT, closeServer, listen } from './harness.js';

export type RouteInput = Omit<NonNullable<KanmonConfigInput['routes']>[number], 'id'>;

export interface LogCapture {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
}

export function captureLogs(): LogCapture {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

export function routeFrom(input: RouteInput): RouteConfig {
  return parseConfig({ routes: [{ id: 'app', ...input }] as KanmonConfigInput['routes'] }).routes[0]!;
}

export interface RouteGateway {
  readonly url: string;
  readonly port: number;
  readonly route: RouteConfig;
  readonly forwarder: Forwarder;
  readonly metrics: Metrics;
  readonly logs: Record<string, unknown>[];
  readonly server: Server;
  close(): Promise<void>;
}

export async function startRouteGateway(input: RouteInput, ctx: ForwardContext = CONTEXT): Promise<RouteGateway> {
  const route = routeFrom(input);
  const { logger, lines } = captureLogs();
  const metrics = new Metrics({ namespace: 'KanmonTest', emit: false });
  const forwarder = createRouteForwarder(route, { upstream: route.upstream, logger, metrics });
  const server = http.createServer((req, res) => forwarder.forward(req, res, ctx));
  server.on('checkContinue', (req, res) => forwarder.forward(req, res, ctx));
  server.on('upgrade', (req, socket, head) => forwarder.upgrade(req, socket, head, ctx));
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    route,
    forwarder,
    metrics,
    logs: lines,
    server,
    async close() {
      server.closeAllConnections();
      await forwarder.close();
      await closeServer(server);
    },
  };
}

/**
 * For a test file's top level: `cleanups` run after each test, last added first, and
 * `gateway(input)` starts a route gateway that closes with them.
 */
export function routeGatewaysPerTest(): { cleanups: (() => Promise<void>)[]; gateway(input: RouteInput): Promise<RouteGateway> } {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  return {
    cleanups,
    async gateway(input) {
      const gw = await startRouteGateway(input);
      cleanups.push(() => gw.close());
      return gw;
    },
  };
}
