/**
 * One Kanmon node's request path for the upstream sign-in tests: its own services, upstream
 * sign-in and gateway on a shared real store, wired as startKanmon wires them, with every store
 * call it makes recorded.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { request } from 'undici';
import type { KanmonConfig } from '../../../runtime/config/schema.js';
import { Gateway, type GatewayRoute } from '../../../runtime/gateway/gateway.js';
import { IdentityTokenCache } from '../../../runtime/jwt/identity-token.js';
import { createForwarder } from '../../../runtime/proxy/index.js';
import { RouteTable } from '../../../runtime/routing/route-table.js';
import { openLocalSecretBox } from '../../../runtime/secrets/index.js';
import { createServices, type Services } from '../../../runtime/services/create-services.js';
import type { Store } from '../../../runtime/store/index.js';
import { UpstreamSignIn } from '../../../runtime/upstream-auth/index.js';

const silent = pino({ level: 'silent' });

/**
 * The store, with every call through it recorded as "aggregate.method"; `idle()` resolves once
 * no call made through it is under way (writes an answer started in the background included).
 */
export function counting(store: Store): { store: Store; calls: string[]; idle: () => Promise<void> } {
  const calls: string[] = [];
  const pending = new Set<Promise<unknown>>();
  const wrap = (target: object, name: string) =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(`${name}.${String(prop)}`);
          const out = (value as (...a: unknown[]) => unknown).apply(t, args);
          if (out instanceof Promise) {
            const settled: Promise<unknown> = out.then(
              () => pending.delete(settled),
              () => pending.delete(settled),
            );
            pending.add(settled);
          }
          return out;
        };
      },
    });
  const proxied = new Proxy(store, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t);
      if (prop === 'close' || prop === 'kind') return typeof value === 'function' ? (value as () => unknown).bind(t) : value;
      if (typeof value === 'function') return wrap(value.bind(t), String(prop));
      if (value && typeof value === 'object') return wrap(value as object, String(prop));
      return value;
    },
  });
  const idle = async () => {
    // A background write starts after the answer's head was relayed (and its jar sealed): let it begin, then wait for it.
    for (let round = 0; round < 3 || pending.size > 0; round++) {
      await new Promise((r) => setImmediate(r));
      await Promise.all(pending);
    }
  };
  return { store: proxied, calls, idle };
}

/** One Kanmon node's request path on `store`: services, upstream sign-in and the gateway, wired as startKanmon does. */
export async function startNode(config: KanmonConfig, raw: Store, now: () => number, logger: Logger = silent) {
  const { store, calls, idle } = counting(raw);
  const secrets = await openLocalSecretBox(config.dataDir);
  const services: Services = createServices({ config, store, secrets, logger: silent, now });
  await services.signingKeys.ensureActiveKey();
  const entries: GatewayRoute[] = config.routes.map((route) => ({ route, forwarder: createForwarder({ upstream: route.upstream, preserveHost: false }) }));
  const table = new RouteTable(entries);
  let gateway: Gateway | undefined;
  const signIn = new UpstreamSignIn(
    {
      documents: store.documents,
      secrets,
      credentials: services.upstreamCredentials,
      audit: services.audit,
      logger,
      upstreamOf: (route) => ({ url: route.upstream }),
      cacheSeconds: () => config.session.cacheSeconds,
      storeUnavailable: { request: (req, res, err) => gateway!.fail(req, res, err), upgrade: (socket, err) => gateway!.failUpgrade(socket, err) },
      now,
    },
    config.routes,
  );
  services.sessions.onEnd((sessionId, context) => signIn.signOut(sessionId, context));
  const tokens = new IdentityTokenCache({ keys: services.signingKeys, issuer: config.jwt.issuer, ttlSeconds: config.jwt.ttlSeconds });
  gateway = new Gateway({
    routes: table,
    sessions: services.sessions,
    identityToken: (key, routeId, identity) => tokens.get(key, routeId, identity),
    clientIp: (req) => req.socket.remoteAddress ?? '',
    logger: silent,
    upstreamSignIn: signIn,
    now,
  });
  const server = createServer((req, res) => gateway!.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    services,
    secrets,
    signIn,
    calls,
    idle,
    async get(path: string, cookie: string, headers: Record<string, string> = {}) {
      const res = await request(`${origin}${path}`, { headers: { cookie, accept: 'text/html', 'sec-fetch-mode': 'navigate', ...headers } });
      const text = await res.body.text();
      return { status: res.statusCode, location: res.headers.location as string | undefined, text, who: /id="who">([^<]*)</.exec(text)?.[1], sid: /id="sid">([^<]*)</.exec(text)?.[1] };
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await signIn.close();
      await Promise.all(entries.map((e) => e.forwarder.close()));
    },
  };
}
export type Node = Awaited<ReturnType<typeof startNode>>;
