/**
 * `kanmon user import` and `kanmon directory sync` through the command table, on a running
 * node's services: a dry run writes nothing, --apply writes, a second apply changes nothing,
 * errors give exit code 1, and the directory command says when no directory is configured.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { runCliInProcess, type CliRun } from '../../support/cli.js';

let h: KanmonHarness;
let dir: string;

beforeAll(async () => {
  h = await KanmonHarness.start();
  dir = mkdtempSync(join(tmpdir(), 'kanmon-import-cli-'));
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

function kanmon(...argv: string[]): Promise<CliRun> {
  return runCliInProcess(h.app.services, h.app.config, argv);
}

describe('kanmon user import', () => {
  it('dry-runs by default, applies with --apply, and a second apply changes nothing', async () => {
    const file = join(dir, 'people.csv');
    writeFileSync(file, 'username,displayName,groups\nkenji,Kenji Ito,staff;sales\nmika,Mika Abe,staff\n');
    const dry = await kanmon('user', 'import', file);
    expect(dry.code).toBe(0);
    expect(dry.lines.at(-1)).toMatch(/^dry run .*2 to create/);
    expect(await h.app.services.users.get('kenji')).toBeUndefined();

    const applied = await kanmon('user', 'import', file, '--apply');
    expect(applied.lines.at(-1)).toMatch(/^applied: 2 to create/);
    expect((await h.app.services.users.get('kenji'))?.groups).toEqual(['sales', 'staff']);

    const again = await kanmon('user', 'import', file, '--apply', '--json');
    expect(JSON.parse(again.lines.join('\n')).summary).toEqual({ create: 0, update: 0, unchanged: 2, disable: 0, error: 0 });
  });

  it('exits 1 when a row has an error, and names the row', async () => {
    const file = join(dir, 'bad.csv');
    writeFileSync(file, 'username\n"no spaces allowed"\n');
    const r = await kanmon('user', 'import', file);
    expect(r.code).toBe(1);
    expect(r.lines[0]).toMatch(/^row 2\t.*\terror\t/);
  });

  it('refuses wrong usage with a usage error', async () => {
    await expect(kanmon('user', 'import')).rejects.toBeInstanceOf(UsageError);
    await expect(kanmon('directory', 'sync')).rejects.toThrow(/no directory is configured/);
  });
});
