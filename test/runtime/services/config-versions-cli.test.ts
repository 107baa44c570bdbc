/**
 * `kanmon config export|import` through the command table on a running node: export, a dry run
 * that changes nothing, --apply that the node uses for its very next request, a second apply
 * with no changes, malformed and hostile files refused with exit codes, and `policy check`
 * deciding from the store's routes rather than the file's.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { runCliInProcess, type CliRun } from '../../support/cli.js';

let h: KanmonHarness;
let dir: string;

beforeAll(async () => {
  h = await KanmonHarness.start({ routes: [{ id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo', policy: { allowGroups: ['staff'] } }] });
  dir = mkdtempSync(join(tmpdir(), 'kanmon-config-cli-'));
  await h.app.services.users.addUser({ username: 'aiko', groups: ['staff'], actor: 'test' });
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

function kanmon(...argv: string[]): Promise<CliRun> {
  return runCliInProcess(h.app.services, h.app.config, argv);
}

describe('kanmon config', () => {
  it('exports the current routes and live settings in the config file shape', async () => {
    const out = join(dir, 'export.json');
    const r = await kanmon('config', 'export', '--out', out);
    expect(r.code).toBe(0);
    expect(r.lines[0]).toBe(`wrote config version 1 to ${out}`);
    const exported = JSON.parse(readFileSync(out, 'utf8'));
    expect(exported.routes[0]).toMatchObject({ id: 'demo', upstream: 'demo', policy: { allowGroups: ['staff'] } });
    expect(exported.session).toEqual({ idleTimeoutSeconds: 1800, absoluteTimeoutSeconds: 43200 });
    expect(Object.keys(exported).sort()).toEqual(['clientCertificates', 'loginProtection', 'notifications', 'routes', 'session', 'totp']);
    expect((await h.app.services.audit.tail({ limit: 5 })).find((e) => e.type === 'config.export')).toMatchObject({ actor: 'cli' });
  });

  it('imports as a dry run, then applies; the node decides with the new policy at once; again changes nothing', async () => {
    const file = join(dir, 'tighter.json');
    writeFileSync(file, JSON.stringify({ server: { port: 1 }, routes: [{ id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo', policy: { allowGroups: ['admins'] } }] }));
    const before = await kanmon('policy', 'check', 'aiko', 'https://localhost/x');
    expect(before.lines.join('\n')).toContain('ALLOW');

    const dry = await kanmon('config', 'import', file);
    expect(dry.code).toBe(0);
    expect(dry.lines).toContain('left alone (set in the config file only): server');
    expect(dry.lines).toContain('~ routes[demo].policy.allowGroups: ["staff"] -> ["admins"]');
    expect(dry.lines.at(-1)).toBe('dry run: 1 change(s); add --apply to make them');
    expect(await h.app.services.configVersions.currentVersion()).toBe(1);

    const applied = await kanmon('config', 'import', file, '--apply');
    expect(applied.lines.at(-1)).toMatch(/^applied as config version 2;/);
    const after = await kanmon('policy', 'check', 'aiko', 'https://localhost/x');
    expect(after.lines.join('\n')).toContain('DENY');

    const again = await kanmon('config', 'import', file, '--apply');
    expect(again.lines.at(-1)).toBe('no changes: the store already holds this configuration');
    expect(await h.app.services.configVersions.currentVersion()).toBe(2);
  });

  it('refuses malformed, oversized and invalid files without changing anything', async () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"routes": [');
    await expect(kanmon('config', 'import', broken)).rejects.toBeInstanceOf(UsageError);
    const huge = join(dir, 'huge.json');
    writeFileSync(huge, `{"routes":[],"x":"${'a'.repeat(1024 * 1024)}"}`);
    await expect(kanmon('config', 'import', huge, '--apply')).rejects.toThrow(/at most 1048576/);
    const invalid = join(dir, 'invalid.json');
    writeFileSync(invalid, JSON.stringify({ routes: [{ id: '<script>', upstream: 'file:///etc/passwd', policy: { factors: [] } }] }));
    const r = await kanmon('config', 'import', invalid, '--apply');
    expect(r.code).toBe(1);
    expect(r.lines.some((l) => l.startsWith("error: routes[0]: option 'id' must be"))).toBe(true);
    expect(r.lines.at(-1)).toMatch(/^nothing changed: \d+ error\(s\)$/);
    await expect(kanmon('config', 'frobnicate')).rejects.toBeInstanceOf(UsageError);
    expect(await h.app.services.configVersions.currentVersion()).toBe(2);
  });
});
