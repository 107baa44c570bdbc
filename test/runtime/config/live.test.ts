/**
 * The live config seam: a node polls the stored version, rebuilds and swaps on a change, keeps
 * the old state for a version it cannot use, and services built on live views see new settings
 * at their next use (sessions' idle timeout, the login guard's threshold).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LiveConfig, effectiveConfig, liveView, readConfigState, startConfigPolling, stateOf, type LiveState } from '../../../runtime/config/live.js';
import { parseConfig, type KanmonConfig } from '../../../runtime/config/schema.js';
import { createServices, type Services } from '../../../runtime/services/create-services.js';
import { openSecretBox } from '../../../runtime/secrets/index.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';

let dir: string;
let store: Store;
let base: KanmonConfig;
let now: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-live-'));
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  now = Date.UTC(2026, 0, 5, 9);
  base = parseConfig({ dataDir: dir, routes: [{ id: 'app', match: { pathPrefix: '/' }, upstream: 'http://127.0.0.1:9', policy: { allowGroups: ['staff'] } }] });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function servicesWith(live: { readonly config: KanmonConfig }): Promise<Services> {
  return createServices({ config: base, store, secrets: await openSecretBox(base), logger: pino({ level: 'silent' }), now: () => now, live });
}

type Derived = { readonly builtFrom: string; readonly closed: { value: boolean } };

describe('live config', () => {
  it('a second node sees a saved change within one poll, swaps it whole and retires the old state', async () => {
    const nodeA = await servicesWith({ config: base });
    const seeded = await nodeA.configVersions.seed();
    const live = new LiveConfig<Derived>({ version: seeded.version, config: base, derived: { builtFrom: 'start', closed: { value: false } } });
    const builds: string[] = [];
    const retired: Derived[] = [];
    const polling = startConfigPolling<Derived>({
      live,
      source: nodeA.configVersions,
      base,
      pollMs: 60_000,
      build: async (config) => {
        builds.push(config.routes[0]!.policy.allowGroups.join(','));
        return { builtFrom: config.routes[0]!.policy.allowGroups.join(','), closed: { value: false } };
      },
      retire: async (old) => {
        old.derived.closed.value = true;
        retired.push(old.derived);
      },
    });
    try {
      await polling.refresh();
      expect(builds).toEqual([]);
      const first = live.current;
      const state = JSON.parse(JSON.stringify(seeded.state));
      state.routes[0].policy.allowGroups = ['admins'];
      const saved = await nodeA.configVersions.save(state, { author: 'kanri' });
      expect(saved.ok).toBe(true);
      await polling.refresh();
      expect(live.version).toBe(2);
      expect(live.config.routes[0]!.policy.allowGroups).toEqual(['admins']);
      expect(live.current.derived.builtFrom).toBe('admins');
      expect(retired).toEqual([first.derived]);
      expect(first.derived.closed.value).toBe(true);
      // Nothing new: nothing rebuilt.
      await polling.refresh();
      expect(builds).toEqual(['admins']);
    } finally {
      await polling.stop();
    }
  });

  it('keeps the running state when a stored version does not validate against this node’s file, and reports it once', async () => {
    const services = await servicesWith({ config: base });
    const seeded = await services.configVersions.seed();
    const live = new LiveConfig<Derived>({ version: 1, config: base, derived: { builtFrom: 'start', closed: { value: false } } });
    const errors: unknown[] = [];
    // Another node's file has TLS ending at Kanmon, so a route may demand a client certificate;
    // this node's TLS ends at a load balancer, where that is impossible.
    const offloaded = parseConfig({ dataDir: dir, tls: { source: 'offloaded' }, routes: base.routes as never });
    const state = JSON.parse(JSON.stringify(seeded.state));
    state.routes[0].policy.factors = [['passkey', 'mtls']];
    expect((await services.configVersions.save(state, { author: 'other' })).ok).toBe(true);
    const polling = startConfigPolling<Derived>({
      live,
      source: services.configVersions,
      base: offloaded,
      pollMs: 60_000,
      build: async () => ({ builtFrom: 'new', closed: { value: false } }),
      retire: async () => undefined,
      onError: (err) => errors.push(err),
    });
    try {
      await polling.refresh();
      await polling.refresh();
      expect(live.version).toBe(1);
      expect(live.current.derived.builtFrom).toBe('start');
      expect(errors).toHaveLength(1);
      expect(String(errors[0])).toMatch(/config version 2 is not valid with this node's config file:[\s\S]*route "app" needs the 'mtls' factor, which is impossible when tls.source is "offloaded"/);
    } finally {
      await polling.stop();
    }
  });

  it('keeps the running state when building the new one fails', async () => {
    const services = await servicesWith({ config: base });
    const seeded = await services.configVersions.seed();
    const live = new LiveConfig<Derived>({ version: 1, config: base, derived: { builtFrom: 'start', closed: { value: false } } });
    const state = JSON.parse(JSON.stringify(seeded.state));
    state.routes[0].upstream = 'http://127.0.0.1:10';
    await services.configVersions.save(state, { author: 'kanri' });
    const errors: unknown[] = [];
    const polling = startConfigPolling<Derived>({ live, source: services.configVersions, base, pollMs: 60_000, build: async () => Promise.reject(new Error('no forwarder')), retire: async () => undefined, onError: (e) => errors.push(e) });
    await polling.refresh();
    await polling.stop();
    expect(live.current.derived.builtFrom).toBe('start');
    expect(String(errors[0])).toContain('no forwarder');
  });

  it('services on live views read new settings at their next use: session idle timeout and lockout threshold', async () => {
    const live = new LiveConfig<null>({ version: 0, config: base, derived: null });
    const services = await servicesWith(live);
    const user = await services.users.addUser({ username: 'aiko', actor: 'test' });
    const { token } = await services.sessions.start(user, ['passkey'], { ip: '127.0.0.1', userAgent: 't' });
    now += 20 * 60_000;
    services.sessions.clearCache();
    // 20 idle minutes are within the file's 30.
    expect(await services.sessions.resolve(token)).toBeDefined();
    now += 11 * 60_000;

    const tighter = effectiveConfig(base, { ...stateOf(base), session: { idleTimeoutSeconds: 600, absoluteTimeoutSeconds: 43200 }, loginProtection: { ...stateOf(base).loginProtection, maxFailuresPerUser: 2 }, totp: { toleranceSteps: 0 } });
    expect(tighter.ok).toBe(true);
    if (!tighter.ok) return;
    live.swap({ version: 2, config: tighter.config, derived: null });
    services.sessions.clearCache();
    // 11 idle minutes are past the new 10-minute limit.
    expect(await services.sessions.resolve(token)).toBeUndefined();

    const attempt = { username: 'aiko', context: { ip: '192.0.2.1', userAgent: 't', requestId: 'r' } };
    const fail = () => services.loginGuard.protect(attempt, async () => ({ ok: false as const, reason: 'wrong-code' }));
    await fail();
    await fail();
    expect(await services.loginGuard.lockedUntil('aiko')).toBeDefined();
  });

  it('a live view reads through to the current value and cannot be written', () => {
    let current = { a: 1, b: 'x' };
    const view = liveView(() => current);
    expect(view.a).toBe(1);
    current = { a: 2, b: 'y' };
    expect(view).toEqual({ a: 2, b: 'y' });
    expect(() => {
      (view as { a: number }).a = 3;
    }).toThrow();
  });

  it('reads a state: routes plus live sections only', () => {
    expect(readConfigState({ routes: [] }).ok).toBe(true);
    expect(readConfigState({ routes: [], tls: {} })).toMatchObject({ ok: false, errors: [expect.stringContaining("option 'tls' is not live-editable")] });
    expect(readConfigState({ routes: [], totp: { issuer: 'x' } })).toMatchObject({ ok: false, errors: [expect.stringContaining("totp: option 'issuer' is not live-editable")] });
    expect(readConfigState([])).toMatchObject({ ok: false });
    const state: LiveState<null> = { version: 0, config: base, derived: null };
    expect(new LiveConfig(state).current).toBe(state);
  });
});
