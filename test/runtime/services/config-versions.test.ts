/**
 * Config versions on the real SQLite store: seeding once from the config file, saves with author
 * and diff, the config file's own validation (every error, by field), optimistic concurrency,
 * rollback as a new version, import as a dry run then applied, and hostile input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorField, stateOf, type ConfigState } from '../../../runtime/config/live.js';
import { parseConfig, type KanmonConfig } from '../../../runtime/config/schema.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { ConfigVersionService, diffStates } from '../../../runtime/services/config-versions.js';
import { ServiceError } from '../../../runtime/services/errors.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { AuditEvent, Store } from '../../../runtime/store/types.js';

let dir: string;
let store: Store;
let events: AuditEvent[];
let base: KanmonConfig;
let versions: ConfigVersionService;

function service(file: KanmonConfig = base): ConfigVersionService {
  const audit = new AuditLog(store, pino({ level: 'silent' }));
  audit.onEvent((e) => events.push(e));
  return new ConfigVersionService({ documents: store.documents, audit, base: file });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-config-versions-'));
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  events = [];
  base = parseConfig({
    dataDir: dir,
    routes: [
      { id: 'wiki', match: { host: 'wiki.example.jp', pathPrefix: '/' }, upstream: 'http://10.0.1.5:8080', policy: { factors: [['passkey'], ['otp']], allowGroups: ['staff'] } },
      { id: 'finance', match: { host: 'finance.example.jp' }, upstream: 'https://10.0.2.20', policy: { factors: [['passkey']], allowGroups: ['finance'] } },
    ],
  });
  versions = service();
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function withRoute(state: ConfigState, id: string, change: (r: Record<string, any>) => void): ConfigState {
  const copy = JSON.parse(JSON.stringify(state)) as { routes: Record<string, any>[] };
  change(copy.routes.find((r) => r.id === id)!);
  return copy as unknown as ConfigState;
}

describe('config versions', () => {
  it('seeds version 1 from the config file once; a second node with another file reads the store', async () => {
    const first = await versions.seed();
    expect(first).toMatchObject({ version: 1, author: 'config-file' });
    expect((first.state.routes as { id: string }[]).map((r) => r.id)).toEqual(['wiki', 'finance']);
    const otherFile = parseConfig({ dataDir: dir, routes: [{ id: 'other', upstream: 'http://10.9.9.9' }] });
    const second = await service(otherFile).seed();
    expect(second.version).toBe(1);
    expect((second.state.routes as { id: string }[]).map((r) => r.id)).toEqual(['wiki', 'finance']);
    expect(events.filter((e) => e.type === 'config.seed')).toHaveLength(1);
  });

  it('two nodes seeding at the same moment end with one version 1', async () => {
    const [a, b] = await Promise.all([versions.seed(), service().seed()]);
    expect(a.version).toBe(1);
    expect(b.version).toBe(1);
    expect(await versions.currentVersion()).toBe(1);
  });

  it('finishes a seed that another node left half done (version 1 claimed, "current" never moved)', async () => {
    const claimed = { version: 1, state: { routes: [] }, author: 'config file', at: 1, note: 'seeded by a node that then died' };
    await store.documents.put({ kind: 'config-version', id: '0000000001', body: JSON.stringify(claimed) }, { now: Date.now(), expectedVersion: 0 });
    expect(await versions.currentVersion()).toBeUndefined();
    const seeded = await versions.seed();
    expect(seeded.note).toBe('seeded by a node that then died');
    expect(await versions.currentVersion()).toBe(1);
  });

  it('saves a change as a new version with author, note and a readable diff, audited', async () => {
    const v1 = await versions.seed();
    const next = withRoute(v1.state, 'finance', (r) => {
      r.policy.factors = [['passkey', 'mtls']];
      r.policy.allowUsers = ['tanaka'];
    });
    const saved = await versions.save(next, { author: 'kanri', note: 'finance needs a company device', baseVersion: 1 });
    expect(saved.ok).toBe(true);
    if (!saved.ok) return;
    expect(saved.version).toMatchObject({ version: 2, author: 'kanri', note: 'finance needs a company device' });
    expect(saved.changes).toEqual([
      { path: 'routes[finance].policy.factors', kind: 'changed', before: '[["passkey"]]', after: '[["passkey","mtls"]]' },
      { path: 'routes[finance].policy.allowUsers', kind: 'changed', before: '[]', after: '["tanaka"]' },
    ]);
    expect(await versions.currentVersion()).toBe(2);
    const diff = await versions.diffWithPrevious(2);
    expect(diff.changes).toEqual(saved.changes);
    const event = events.find((e) => e.type === 'config.save')!;
    expect(event).toMatchObject({ actor: 'kanri', result: 'success' });
    expect(event.details).toMatchObject({ version: 2, previous: 1, changes: [{ path: 'routes[finance].policy.factors', before: '[["passkey"]]', after: '[["passkey","mtls"]]' }, expect.anything()] });
    expect((await versions.list()).map((v) => v.version)).toEqual([2, 1]);
  });

  it('saving the same state again makes no new version', async () => {
    const v1 = await versions.seed();
    const saved = await versions.save(v1.state, { author: 'kanri' });
    expect(saved.ok && saved.version.version).toBe(1);
    expect(saved.ok && saved.changes).toEqual([]);
  });

  it('validates with the config file schema: every error, each with its field, and nothing is stored', async () => {
    const v1 = await versions.seed();
    const bad = withRoute(v1.state, 'wiki', (r) => {
      r.upstream = 'ftp://10.0.0.1';
      r.match.pathPrefix = '/.kanmon/x';
      r.policy.factors = [['fingerprint']];
      r.policy.idleTimeoutSeconds = 999999;
      r.connection.keepAlive = 'sometimes';
    });
    const result = await versions.save(bad, { author: 'kanri' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const fields = result.errors.map((e) => errorField(e));
    expect(fields).toEqual(
      expect.arrayContaining([
        { route: 0, field: 'upstream' },
        { route: 0, field: 'match.pathPrefix' },
        { route: 0, field: 'policy.factors' },
        { route: 0, field: 'policy.idleTimeoutSeconds' },
        { route: 0, field: 'connection.keepAlive' },
      ]),
    );
    expect(result.errors.find((e) => e.includes('upstream'))).toMatch(/^routes\[0\]: option 'upstream' must be/);
    expect(await versions.currentVersion()).toBe(1);
  });

  it('refuses options that only the config file sets, and unknown sections', async () => {
    const v1 = await versions.seed();
    const result = await versions.save({ ...v1.state, server: { port: 1 }, session: { cacheSeconds: 1 } }, { author: 'kanri' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      expect.stringMatching(/^\(root\): option 'server' is not live-editable; it is set in the config file only/),
      expect.stringMatching(/^session: option 'cacheSeconds' is not live-editable/),
    ]);
  });

  it('refuses a save made on an older version (someone else saved meanwhile)', async () => {
    const v1 = await versions.seed();
    const a = withRoute(v1.state, 'wiki', (r) => (r.policy.allowGroups = ['staff', 'guests']));
    const b = withRoute(v1.state, 'wiki', (r) => (r.policy.allowGroups = []));
    expect((await versions.save(a, { author: 'a', baseVersion: 1 })).ok).toBe(true);
    await expect(versions.save(b, { author: 'b', baseVersion: 1 })).rejects.toMatchObject({ code: 'conflict' });
    expect(await versions.currentVersion()).toBe(2);
    const current = await versions.current();
    expect((current!.state.routes[0] as { policy: { allowGroups: string[] } }).policy.allowGroups).toEqual(['staff', 'guests']);
  });

  it('of two saves racing on the same version, exactly one wins', async () => {
    const v1 = await versions.seed();
    const a = withRoute(v1.state, 'wiki', (r) => (r.policy.allowUsers = ['a']));
    const b = withRoute(v1.state, 'wiki', (r) => (r.policy.allowUsers = ['b']));
    const outcomes = await Promise.allSettled([versions.save(a, { author: 'a' }), service().save(b, { author: 'b' })]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(ServiceError);
    expect(await versions.currentVersion()).toBe(2);
  });

  it('rolls back by saving the old state as a new version', async () => {
    const v1 = await versions.seed();
    await versions.save(withRoute(v1.state, 'finance', (r) => (r.policy.allowGroups = ['finance', 'audit'])), { author: 'kanri' });
    const rolled = await versions.rollback(1, { author: 'kanri' });
    expect(rolled.ok).toBe(true);
    if (!rolled.ok) return;
    expect(rolled.version).toMatchObject({ version: 3, rollbackOf: 1, note: 'rollback to version 1' });
    expect(rolled.changes).toEqual([{ path: 'routes[finance].policy.allowGroups', kind: 'changed', before: '["finance","audit"]', after: '["finance"]' }]);
    expect((await versions.current())!.state).toEqual(v1.state);
    expect(events.find((e) => e.type === 'config.rollback')?.details).toMatchObject({ version: 3, rollbackOf: 1 });
    await expect(versions.rollback(99, { author: 'kanri' })).rejects.toMatchObject({ code: 'not-found' });
  });

  it('imports a config file as a dry run by default, then applies it; importing it again changes nothing', async () => {
    await versions.seed();
    const file = {
      server: { port: 9443 },
      session: { idleTimeoutSeconds: 900, cacheSeconds: 2 },
      routes: [{ id: 'wiki', match: { host: 'wiki.example.jp' }, upstream: 'http://10.0.1.5:8080', policy: { factors: [['passkey']] } }],
    };
    const dry = await versions.importConfig(file, { apply: false, author: 'cli' });
    expect(dry.applied).toBe(false);
    expect(dry.errors).toEqual([]);
    expect(dry.ignored).toEqual(['server', 'session.cacheSeconds']);
    expect(dry.changes).toEqual(
      expect.arrayContaining([
        { path: 'routes[wiki].policy.factors', kind: 'changed', before: '[["passkey"],["otp"]]', after: '[["passkey"]]' },
        { path: 'routes[wiki].policy.allowGroups', kind: 'changed', before: '["staff"]', after: '[]' },
        { path: 'session.idleTimeoutSeconds', kind: 'changed', before: '1800', after: '900' },
        expect.objectContaining({ path: 'routes[finance].upstream', kind: 'removed' }),
      ]),
    );
    expect(await versions.currentVersion()).toBe(1);
    const applied = await versions.importConfig(file, { apply: true, author: 'cli' });
    expect(applied).toMatchObject({ applied: true, version: { version: 2, author: 'cli' } });
    const again = await versions.importConfig(file, { apply: true, author: 'cli' });
    expect(again).toMatchObject({ applied: false, changes: [] });
    expect(await versions.currentVersion()).toBe(2);
    expect((await versions.effective()).config.session.idleTimeoutSeconds).toBe(900);
    // The export is what an import takes back.
    const exported = await versions.exportState();
    expect((await versions.importConfig(JSON.parse(JSON.stringify(exported)), { apply: false, author: 'cli' })).changes).toEqual([]);
  });

  it('answers hostile and malformed imports with errors, never by storing anything', async () => {
    await versions.seed();
    for (const input of [null, [], 'routes', { routes: 'x' }, { routes: [{ id: '<script>alert(1)</script>', upstream: 'javascript:alert(1)' }] }, { routes: [], totp: { toleranceSteps: 1e9 } }]) {
      const result = await versions.importConfig(input, { apply: true, author: 'cli' });
      expect(result.applied, JSON.stringify(input)).toBe(false);
      expect(result.errors.length, JSON.stringify(input)).toBeGreaterThan(0);
    }
    expect(await versions.currentVersion()).toBe(1);
  });

  it('refuses a state too large to store as one version', async () => {
    const v1 = await versions.seed();
    const routes = Array.from({ length: 900 }, (_, i) => ({ id: `r${i}`, match: { host: `h${i}.example.jp` }, upstream: 'http://10.0.0.1', policy: { allowUsers: Array.from({ length: 20 }, (_, j) => `user-${i}-${j}`) } }));
    await expect(versions.save({ ...v1.state, routes }, { author: 'kanri' })).rejects.toMatchObject({ code: 'invalid-input' });
    expect(await versions.currentVersion()).toBe(1);
  });

  it('diffs routes by id and lists whole lists of plain values', () => {
    const a = stateOf(base);
    const b = withRoute(a, 'wiki', (r) => (r.match.pathPrefix = '/wiki'));
    expect(diffStates(a, b)).toEqual([{ path: 'routes[wiki].match.pathPrefix', kind: 'changed', before: '"/"', after: '"/wiki"' }]);
    expect(diffStates(undefined, { routes: [] })).toEqual([]);
  });
});
