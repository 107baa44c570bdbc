/**
 * Routes, policies and live settings as versions in the store.
 *
 * Every save is a new version with its author, time and an optional note; any version can be
 * compared with the one before it, and rolling back saves an old version's state again as a new
 * version (history only grows). The first start seeds version 1 from the config file (or the CDK
 * props, which arrive as the same JSON); after that the store wins, and the file is loaded again
 * only when an administrator imports it (`kanmon config import FILE --apply`).
 *
 * Validation is the config file's own (`validateConfig`): a state is put on this node's config
 * file and the whole is validated, so a route saved here is exactly a route the file accepts.
 *
 * Documents: `config-version/<10-digit number>` holds each version; `config-current/current`
 * names the current one. A save creates the next number with a conditional write, so of two
 * administrators saving at once one wins and the other is told to reload.
 */
import { LIVE_SETTINGS, effectiveConfig, readConfigState, stateOf, type ConfigState, type LiveConfigSource } from '../config/live.js';
import type { KanmonConfig } from '../config/schema.js';
import { ConcurrentUpdateError } from '../store/errors.js';
import { DOCUMENT_BODY_LIMIT, type DocumentStore } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

export const CONFIG_VERSION_KIND = 'config-version';
export const CONFIG_CURRENT_KIND = 'config-current';
const CURRENT_ID = 'current';
/** Who seeds version 1. */
export const CONFIG_FILE_AUTHOR = 'config-file';

export interface ConfigVersion {
  readonly version: number;
  readonly state: ConfigState;
  readonly author: string;
  /** Epoch ms of the save. */
  readonly at: number;
  readonly note?: string;
  /** Set when this version restored an older one. */
  readonly rollbackOf?: number;
}

/** One line of a readable diff: a JSON path and its value before and after (JSON text). */
export interface DiffLine {
  readonly path: string;
  readonly kind: 'added' | 'removed' | 'changed';
  readonly before?: string;
  readonly after?: string;
}

export type SaveResult = { readonly ok: true; readonly version: ConfigVersion; readonly changes: readonly DiffLine[] } | { readonly ok: false; readonly errors: readonly string[] };

export interface SaveOptions {
  readonly author: string;
  readonly note?: string;
  /** The version the change was made on; a save on top of another one is refused (conflict). */
  readonly baseVersion?: number;
  readonly context?: RequestContext;
  readonly rollbackOf?: number;
}

export interface ImportResult {
  readonly errors: readonly string[];
  readonly changes: readonly DiffLine[];
  /** Options in the input that only the config file sets, which an import leaves alone. */
  readonly ignored: readonly string[];
  readonly applied: boolean;
  readonly version?: ConfigVersion;
}

export class ConfigVersionService implements LiveConfigSource {
  readonly #savedListeners: Array<(v: ConfigVersion) => void> = [];

  constructor(
    private readonly deps: {
      readonly documents: DocumentStore;
      readonly audit: AuditLog;
      /** This node's config file, which stored states are put on. */
      readonly base: KanmonConfig;
      readonly now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Told after every save on this node (the node applies it at once instead of at its next poll). */
  onSaved(listener: (v: ConfigVersion) => void): void {
    this.#savedListeners.push(listener);
  }

  async currentVersion(): Promise<number | undefined> {
    const doc = await this.deps.documents.get(CONFIG_CURRENT_KIND, CURRENT_ID, this.now());
    if (!doc) return undefined;
    const version = (JSON.parse(doc.body) as { version?: unknown }).version;
    return typeof version === 'number' && Number.isInteger(version) && version > 0 ? version : undefined;
  }

  async get(version: number): Promise<ConfigVersion | undefined> {
    if (!Number.isInteger(version) || version < 1 || version > 9_999_999_999) return undefined;
    const doc = await this.deps.documents.get(CONFIG_VERSION_KIND, versionId(version), this.now());
    return doc ? (JSON.parse(doc.body) as ConfigVersion) : undefined;
  }

  async stateOf(version: number): Promise<ConfigState | undefined> {
    return (await this.get(version))?.state;
  }

  /** The current version; undefined before the first start seeded one. */
  async current(): Promise<ConfigVersion | undefined> {
    const n = await this.currentVersion();
    return n === undefined ? undefined : this.get(n);
  }

  /**
   * At start: the current version, seeding version 1 from the config file when the store has
   * none. Of nodes starting together, one seeds and the others read it.
   */
  async seed(): Promise<ConfigVersion> {
    const existing = await this.current();
    if (existing) return existing;
    const version: ConfigVersion = { version: 1, state: stateOf(this.deps.base), author: CONFIG_FILE_AUTHOR, at: this.now(), note: 'seeded from the config file at first start' };
    try {
      await this.write(version, 0);
      await this.deps.audit.record({ type: 'config.seed', result: 'success', actor: CONFIG_FILE_AUTHOR, context: CLI_CONTEXT, details: { version: 1, routes: version.state.routes.length } });
      return version;
    } catch (err) {
      if (!(err instanceof ConcurrentUpdateError)) throw err;
      // Another node claimed version 1 first. It may not have moved "current" yet (or died
      // between its two writes): point "current" at version 1 unless someone already did.
      const first = await this.get(1);
      if (!first) throw err;
      if ((await this.currentVersion()) === undefined) {
        try {
          await this.deps.documents.put({ kind: CONFIG_CURRENT_KIND, id: CURRENT_ID, body: JSON.stringify({ version: 1 }) }, { now: this.now(), expectedVersion: 0 });
        } catch (raced) {
          if (!(raced instanceof ConcurrentUpdateError)) throw raced;
        }
      }
      return (await this.current()) ?? first;
    }
  }

  /** The whole config for a state on this node's file: every schema error at once. */
  validate(state: unknown): { ok: true; config: KanmonConfig } | { ok: false; errors: readonly string[] } {
    const shape = readConfigState(state);
    if (!shape.ok) return shape;
    return effectiveConfig(this.deps.base, shape.state);
  }

  /** The config this node runs with now: the file with the current version's state, or the file alone before any is stored. */
  async effective(): Promise<{ version: number; config: KanmonConfig }> {
    const current = await this.current();
    if (!current) return { version: 0, config: this.deps.base };
    const result = this.validate(current.state);
    if (!result.ok) throw new ServiceError('invalid-input', `config version ${current.version} is not valid with this config file:\n  - ${result.errors.join('\n  - ')}`);
    return { version: current.version, config: result.config };
  }

  /** The current state in the config file's shape (normalized: every default spelled out). */
  async exportState(): Promise<ConfigState> {
    return stateOf((await this.effective()).config);
  }

  /** Versions newest first: `limit` of them, starting below `before` (or at the current one). */
  async list(opts: { limit?: number; before?: number } = {}): Promise<ConfigVersion[]> {
    const current = await this.currentVersion();
    if (current === undefined) return [];
    const limit = Math.min(Math.max(opts.limit ?? 20, 1), 100);
    const top = Math.min(current, opts.before !== undefined && Number.isInteger(opts.before) ? opts.before - 1 : current);
    const numbers: number[] = [];
    for (let n = top; n >= 1 && numbers.length < limit; n--) numbers.push(n);
    const found = await Promise.all(numbers.map((n) => this.get(n)));
    return found.filter((v): v is ConfigVersion => v !== undefined);
  }

  /**
   * Validates `state` and stores it as the next version. Invalid input is not an exception:
   * the errors come back (phrased like the config file's), for the form to show by its fields.
   */
  async save(state: unknown, opts: SaveOptions): Promise<SaveResult> {
    const result = this.validate(state);
    if (!result.ok) return { ok: false, errors: result.errors };
    const normalized = stateOf(result.config);
    const currentDoc = await this.deps.documents.get(CONFIG_CURRENT_KIND, CURRENT_ID, this.now());
    const currentNumber = currentDoc ? ((JSON.parse(currentDoc.body) as { version: number }).version ?? 0) : 0;
    if (opts.baseVersion !== undefined && opts.baseVersion !== currentNumber) {
      throw new ServiceError('conflict', `the configuration was changed meanwhile (now version ${currentNumber}, your change was made on version ${opts.baseVersion}); reload and make your change again`);
    }
    const previous = currentNumber > 0 ? await this.get(currentNumber) : undefined;
    const changes = diffStates(previous ? this.normalized(previous.state) : undefined, normalized);
    if (previous && changes.length === 0 && opts.rollbackOf === undefined) return { ok: true, version: previous, changes };
    const version: ConfigVersion = {
      version: currentNumber + 1,
      state: normalized,
      author: opts.author.slice(0, 128),
      at: this.now(),
      ...(opts.note ? { note: opts.note.slice(0, 500) } : {}),
      ...(opts.rollbackOf !== undefined ? { rollbackOf: opts.rollbackOf } : {}),
    };
    try {
      await this.write(version, currentDoc?.version ?? 0);
    } catch (err) {
      if (err instanceof ConcurrentUpdateError) {
        throw new ServiceError('conflict', 'the configuration was changed by someone else at the same moment; reload and make your change again', { cause: err });
      }
      throw err;
    }
    await this.deps.audit.record({
      type: opts.rollbackOf !== undefined ? 'config.rollback' : 'config.save',
      result: 'success',
      actor: opts.author,
      context: opts.context ?? CLI_CONTEXT,
      details: {
        version: version.version,
        previous: currentNumber,
        ...(opts.rollbackOf !== undefined ? { rollbackOf: opts.rollbackOf } : {}),
        ...(opts.note ? { note: opts.note.slice(0, 200) } : {}),
        changes: changes.slice(0, 40).map((c) => ({ path: c.path, before: c.before ?? null, after: c.after ?? null })),
        ...(changes.length > 40 ? { moreChanges: changes.length - 40 } : {}),
      },
    });
    for (const listener of this.#savedListeners) listener(version);
    return { ok: true, version, changes };
  }

  /** Saves an old version's state again, as a new version. */
  async rollback(version: number, opts: Omit<SaveOptions, 'rollbackOf'>): Promise<SaveResult> {
    const old = await this.get(version);
    if (!old) throw new ServiceError('not-found', `there is no config version ${version}`);
    return this.save(old.state, { ...opts, note: opts.note ?? `rollback to version ${version}`, rollbackOf: version });
  }

  /** What changed from the version before `version` to it. */
  async diffWithPrevious(version: number): Promise<{ version: ConfigVersion; previous?: ConfigVersion; changes: DiffLine[] }> {
    const v = await this.get(version);
    if (!v) throw new ServiceError('not-found', `there is no config version ${version}`);
    const previous = version > 1 ? await this.get(version - 1) : undefined;
    return { version: v, ...(previous ? { previous } : {}), changes: diffStates(previous ? this.normalized(previous.state) : undefined, this.normalized(v.state)) };
  }

  /**
   * Loads a config file's routes and live settings (or an export): a dry run by default, which
   * says what would change; with `apply`, a new version. Options only the file sets are
   * listed as ignored, never an error, so a whole config file can be imported as it is.
   */
  async importConfig(input: unknown, opts: { apply: boolean; author: string; context?: RequestContext; note?: string }): Promise<ImportResult> {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) return { errors: ['(root): must be a JSON object, such as a config file or an export'], changes: [], ignored: [], applied: false };
    const { state, ignored } = pickLive(input as Record<string, unknown>);
    const result = this.validate(state);
    if (!result.ok) return { errors: result.errors, changes: [], ignored, applied: false };
    const current = await this.current();
    const changes = diffStates(current ? this.normalized(current.state) : undefined, stateOf(result.config));
    if (!opts.apply || changes.length === 0) return { errors: [], changes, ignored, applied: false };
    const saved = await this.save(state, { author: opts.author, note: opts.note ?? 'imported', ...(opts.context ? { context: opts.context } : {}) });
    if (!saved.ok) return { errors: saved.errors, changes: [], ignored, applied: false };
    return { errors: [], changes: saved.changes, ignored, applied: true, version: saved.version };
  }

  /** A stored state with the file's current defaults spelled out, for comparing like with like. */
  private normalized(state: ConfigState): ConfigState {
    const result = this.validate(state);
    return result.ok ? stateOf(result.config) : state;
  }

  private async write(version: ConfigVersion, currentDocVersion: number): Promise<void> {
    const body = JSON.stringify(version);
    if (Buffer.byteLength(body, 'utf8') > DOCUMENT_BODY_LIMIT - 1024) {
      throw new ServiceError('invalid-input', `the configuration is ${Buffer.byteLength(body, 'utf8')} bytes as stored, more than the ${DOCUMENT_BODY_LIMIT - 1024} a version may hold`);
    }
    const now = this.now();
    // The number is claimed first: only one writer can create it, so only that one moves "current".
    await this.deps.documents.put({ kind: CONFIG_VERSION_KIND, id: versionId(version.version), body }, { now, expectedVersion: 0 });
    await this.deps.documents.put({ kind: CONFIG_CURRENT_KIND, id: CURRENT_ID, body: JSON.stringify({ version: version.version }) }, { now, expectedVersion: currentDocVersion });
  }
}

function versionId(version: number): string {
  return String(version).padStart(10, '0');
}

const LIVE_KEYS: Readonly<Record<string, readonly string[]>> = LIVE_SETTINGS;

/** The routes and live options of a config file; everything else is named as ignored. */
function pickLive(input: Record<string, unknown>): { state: Record<string, unknown>; ignored: string[] } {
  const state: Record<string, unknown> = {};
  const ignored: string[] = [];
  for (const [key, value] of Object.entries(input)) {
    if (key === 'routes') state.routes = value;
    else if (LIVE_KEYS[key] && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const picked: Record<string, unknown> = {};
      for (const [option, v] of Object.entries(value as Record<string, unknown>)) {
        if (LIVE_KEYS[key]!.includes(option)) picked[option] = v;
        else ignored.push(`${key}.${option}`);
      }
      state[key] = picked;
    } else ignored.push(key);
  }
  if (!('routes' in state)) state.routes = undefined;
  return { state, ignored };
}

/**
 * A readable diff of two states: routes are matched by id (`routes[wiki].policy.allowGroups`),
 * lists of plain values compared whole, everything else down to its leaves.
 */
export function diffStates(before: ConfigState | undefined, after: ConfigState): DiffLine[] {
  const a = flatten(before);
  const b = flatten(after);
  const lines: DiffLine[] = [];
  for (const [path, value] of a) {
    if (!b.has(path)) lines.push({ path, kind: 'removed', before: value });
    else if (b.get(path) !== value) lines.push({ path, kind: 'changed', before: value, after: b.get(path)! });
  }
  for (const [path, value] of b) if (!a.has(path)) lines.push({ path, kind: 'added', after: value });
  const order = new Map<string, number>();
  for (const path of [...b.keys(), ...a.keys()]) if (!order.has(path)) order.set(path, order.size);
  return lines.sort((x, y) => order.get(x.path)! - order.get(y.path)!);
}

function flatten(state: ConfigState | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!state) return out;
  const routes = Array.isArray(state.routes) ? state.routes : [];
  routes.forEach((route, i) => {
    const id = typeof route === 'object' && route !== null && typeof (route as { id?: unknown }).id === 'string' ? (route as { id: string }).id : `#${i}`;
    walk(route, `routes[${id}]`, out);
  });
  for (const [key, value] of Object.entries(state)) if (key !== 'routes') walk(value, key, out);
  return out;
}

function walk(value: unknown, path: string, out: Map<string, string>): void {
  if (value === undefined) return;
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object' || v === null || (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)))) {
      out.set(path, JSON.stringify(value));
      return;
    }
    value.forEach((v, i) => walk(v, `${path}[${i}]`, out));
    return;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) out.set(path, '{}');
    for (const [k, v] of entries) walk(v, `${path}.${k}`, out);
    return;
  }
  out.set(path, JSON.stringify(value));
}
