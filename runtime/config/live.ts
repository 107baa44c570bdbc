/**
 * Config that changes while Kanmon runs.
 *
 * Routes (with their policies) and the live-editable settings are kept in the store as
 * versions (runtime/services/config-versions.ts). Every node polls the current version, and
 * on a change validates it against its own config file with the same schema
 * (`validateConfig`), rebuilds what is derived from it (route table and forwarders) and swaps
 * it in one assignment: a request sees either the old state or the new one, never a mix.
 *
 * Everything else (listeners, TLS source, store, secrets, WebAuthn, …) stays in the config file
 * and is read once at start.
 *
 * This file stays free of fastify, the AWS SDK and node I/O, like the rest of runtime/config.
 */
import type { RouteConfig } from './routes.js';
import { validateConfig, type KanmonConfig, type ValidationResult } from './schema.js';

/** The settings an administrator may change while Kanmon runs, by config section. */
export const LIVE_SETTINGS = {
  session: ['idleTimeoutSeconds', 'absoluteTimeoutSeconds'],
  loginProtection: ['maxFailuresPerUser', 'maxFailuresPerAddress', 'windowSeconds', 'lockoutSeconds', 'delayStepMs'],
  totp: ['toleranceSteps'],
  clientCertificates: ['lifetimeDays', 'keyType', 'maxActivePerUser', 'maxDownloadsPerIssuance', 'downloadLinkTtlSeconds', 'renewBeforeDays'],
  notifications: ['certificateExpiryDays', 'adminRecipients'],
} as const satisfies Record<string, readonly string[]>;

export type LiveSection = keyof typeof LIVE_SETTINGS;
export const LIVE_SECTIONS = Object.keys(LIVE_SETTINGS) as LiveSection[];

/**
 * Routes and live settings, shaped like the config file's own sections, so an export can be
 * pasted into a config file and a config file's sections can be imported.
 */
export interface ConfigState {
  readonly routes: readonly unknown[];
  readonly session?: Readonly<Record<string, unknown>>;
  readonly loginProtection?: Readonly<Record<string, unknown>>;
  readonly totp?: Readonly<Record<string, unknown>>;
  readonly clientCertificates?: Readonly<Record<string, unknown>>;
  readonly notifications?: Readonly<Record<string, unknown>>;
}

/** The live part of a parsed config, as plain JSON. */
export function stateOf(config: KanmonConfig): ConfigState {
  const state: Record<string, unknown> = { routes: plain(config.routes) };
  for (const section of LIVE_SECTIONS) {
    const from = config[section] as unknown as Record<string, unknown>;
    state[section] = Object.fromEntries(LIVE_SETTINGS[section].map((k) => [k, plain(from[k])]));
  }
  return state as unknown as ConfigState;
}

/**
 * Reads untrusted JSON as a ConfigState: an object with `routes` and, optionally, live
 * sections holding only live options. Anything else is an error naming where it may be set.
 */
export function readConfigState(input: unknown): { ok: true; state: ConfigState } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, errors: ['(root): must be an object with "routes" and live settings sections'] };
  const root = input as Record<string, unknown>;
  for (const key of Object.keys(root)) {
    if (key !== 'routes' && !(LIVE_SECTIONS as string[]).includes(key)) {
      errors.push(`(root): option '${key}' is not live-editable; it is set in the config file only (live: routes, ${LIVE_SECTIONS.join(', ')})`);
    }
  }
  if (!Array.isArray(root.routes)) errors.push(`(root): option 'routes' must be a list of routes, got ${typeof root.routes === 'undefined' ? 'nothing' : JSON.stringify(root.routes).slice(0, 80)}`);
  for (const section of LIVE_SECTIONS) {
    const value = root[section];
    if (value === undefined) continue;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      errors.push(`${section}: must be an object, got ${JSON.stringify(value).slice(0, 80)}`);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (!(LIVE_SETTINGS[section] as readonly string[]).includes(key)) {
        errors.push(`${section}: option '${key}' is not live-editable; it is set in the config file only (live: ${LIVE_SETTINGS[section].join(', ')})`);
      }
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, state: root as unknown as ConfigState };
}

/**
 * The whole config a node runs with: its config file (`base`) with the stored routes and live
 * settings put in place, validated by the same schema as the file, with every error at once.
 */
export function effectiveConfig(base: KanmonConfig, state: ConfigState): ValidationResult {
  const shape = readConfigState(state);
  if (!shape.ok) return { ok: false, errors: shape.errors };
  const merged = plain(base) as unknown as Record<string, unknown>;
  merged.routes = plain(state.routes);
  for (const section of LIVE_SECTIONS) {
    const values = state[section];
    if (!values) continue;
    merged[section] = { ...(merged[section] as Record<string, unknown>), ...plain(values) };
  }
  return validateConfig(merged);
}

/**
 * Which field of a form an error belongs to: `routes[2].policy: option 'factors' …` is
 * `{ route: 2, field: 'policy.factors' }`; `session: option 'x' …` is `{ field: 'session.x' }`.
 * Errors about whole sections of a route (rewrite, upstreamTls, upstreamAuth) name the section.
 */
export function errorField(error: string): { route?: number; field?: string } {
  const m = /^([^:\s]+): (?:option '([^'[]+)|)/.exec(error);
  if (!m) return {};
  const where = m[1]!;
  const option = m[2];
  const route = /^routes\[(\d+)\](?:\.([A-Za-z]+))?/.exec(where);
  if (route) {
    const index = Number(route[1]);
    const section = route[2];
    if (section === 'policy' || section === 'match' || section === 'connection') return { route: index, ...(option ? { field: `${section}.${option}` } : { field: section }) };
    if (section) return { route: index, field: section };
    if (option === 'upstreamTls' || option === 'upstreamAuth' || option === 'rewrite') return { route: index, field: option };
    return { route: index, ...(option ? { field: option } : {}) };
  }
  if ((LIVE_SECTIONS as string[]).includes(where) && option) return { field: `${where}.${option}` };
  return {};
}

/** What a node derives from its config and swaps as one piece. */
export interface LiveState<D> {
  /** The stored version this state was built from (0: the config file, before any was stored). */
  readonly version: number;
  readonly config: KanmonConfig;
  readonly derived: D;
}

/**
 * The holder every reader goes through: the gateway for its route table, services for their
 * settings (through `liveView`). A swap is one assignment.
 */
export class LiveConfig<D> {
  #state: LiveState<D>;

  constructor(initial: LiveState<D>) {
    this.#state = initial;
  }

  get current(): LiveState<D> {
    return this.#state;
  }

  get config(): KanmonConfig {
    return this.#state.config;
  }

  get version(): number {
    return this.#state.version;
  }

  /** Puts `next` in place and returns what it replaced. */
  swap(next: LiveState<D>): LiveState<D> {
    const previous = this.#state;
    this.#state = next;
    return previous;
  }
}

/**
 * An object that reads every property of `read()` at the moment it is read, so a service
 * holding it sees the live value without being rebuilt. Its keys are those of the first value.
 */
export function liveView<T extends object>(read: () => T): T {
  const view = {} as T;
  for (const key of Object.keys(read())) {
    Object.defineProperty(view, key, { enumerable: true, get: () => (read() as Record<string, unknown>)[key] });
  }
  return Object.freeze(view);
}

/** Where a node reads the stored versions from (ConfigVersionService). */
export interface LiveConfigSource {
  /** The current version number; undefined before anything is stored. */
  currentVersion(): Promise<number | undefined>;
  /** The stored state of one version. */
  stateOf(version: number): Promise<ConfigState | undefined>;
}

export interface ConfigPollingOptions<D> {
  readonly live: LiveConfig<D>;
  readonly source: LiveConfigSource;
  /** This node's config file: the base the stored state is put on. */
  readonly base: KanmonConfig;
  /** Builds the derived state for a new config; `previous` may be reused (unchanged routes keep their forwarders). */
  readonly build: (config: KanmonConfig, previous: LiveState<D>) => Promise<D>;
  /** Releases what the old state held and the new one does not, once it is out of use. */
  readonly retire: (old: LiveState<D>, next: LiveState<D>) => Promise<void>;
  /** How often the current version is read. @default CONFIG_POLL_MS */
  readonly pollMs?: number;
  readonly onSwap?: (next: LiveState<D>, previous: LiveState<D>) => void;
  /** A stored version this node cannot use (invalid against its file, or its derived state failed to build): it keeps the old one. */
  readonly onError?: (err: unknown, version: number) => void;
}

/** How often each node reads the current config version: the propagation bound (plus one rebuild). */
export const CONFIG_POLL_MS = 3000;

export interface ConfigPolling {
  /** Reads the current version now and swaps when it changed; resolves when done. */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts polling; one refresh at a time (a refresh asked for meanwhile runs right after), a failed one retried at the next tick. */
export function startConfigPolling<D>(o: ConfigPollingOptions<D>): ConfigPolling {
  let stopped = false;
  /** A version that failed, so it is reported once, not at every tick. */
  let refused: number | undefined;
  let last: Promise<void> = Promise.resolve();
  let pending: Promise<void> | undefined;

  const once = async (): Promise<void> => {
    const version = await o.source.currentVersion();
    if (stopped || version === undefined || version === o.live.version || version === refused) return;
    try {
      const state = await o.source.stateOf(version);
      if (!state) throw new Error(`config version ${version} is missing from the store`);
      const result = effectiveConfig(o.base, state);
      if (!result.ok) throw new Error(`config version ${version} is not valid with this node's config file:\n  - ${result.errors.join('\n  - ')}`);
      const previous = o.live.current;
      const derived = await o.build(result.config, previous);
      if (stopped) return;
      const next: LiveState<D> = { version, config: result.config, derived };
      o.live.swap(next);
      refused = undefined;
      o.onSwap?.(next, previous);
      // In-flight requests keep the old forwarders until they finish; nobody waits for that here.
      o.retire(previous, next).catch((err: unknown) => o.onError?.(err, version));
    } catch (err) {
      refused = version;
      o.onError?.(err, version);
    }
  };

  const refresh = (): Promise<void> => {
    if (pending) return pending;
    const run = last.then(() => {
      pending = undefined;
      return once();
    });
    const settled = run.catch((err: unknown) => o.onError?.(err, -1));
    pending = settled;
    last = settled;
    return settled;
  };

  const timer = setInterval(() => void refresh(), o.pollMs ?? CONFIG_POLL_MS);
  timer.unref();
  return {
    refresh,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await last;
    },
  };
}

/** What a node derives from its routes: one entry (route and forwarder) per route, and the table to find them. */
export interface RouteSet<E extends { readonly route: RouteConfig }> {
  readonly entries: readonly E[];
  readonly table: { match(host: string | undefined, path: string): E | undefined };
}

/**
 * Entries for `routes`, keeping the entry (and so the forwarder and its pooled connections) of
 * every route that did not change, and building the others.
 */
export function rebuildEntries<E extends { readonly route: RouteConfig }>(routes: readonly RouteConfig[], previous: readonly E[], build: (route: RouteConfig) => E): E[] {
  const old = new Map(previous.map((e) => [e.route.id, e]));
  return routes.map((route) => {
    const kept = old.get(route.id);
    return kept && JSON.stringify(kept.route) === JSON.stringify(route) ? kept : build(route);
  });
}

/** Closes the forwarders of entries the new set no longer uses; each close lets its in-flight requests finish first. */
export async function closeRetired<E extends { readonly forwarder: { close(): Promise<void> } }>(previous: readonly E[], next: readonly E[]): Promise<void> {
  const kept = new Set(next);
  await Promise.all(previous.filter((e) => !kept.has(e)).map((e) => e.forwarder.close()));
}

function plain<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}
