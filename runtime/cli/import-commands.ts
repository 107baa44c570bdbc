/**
 * `kanmon user import FILE.csv [--apply] [--json]` and `kanmon directory sync [--apply] [--json]`:
 * a dry run by default (what would change, per row), `--apply` to make the changes.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Services } from '../services/index.js';
import type { ImportPlan } from '../services/user-import.js';
import { parseArgs, UsageError } from './args.js';
import type { CliIo } from './commands.js';

export const IMPORT_USAGE = `  user import <file.csv> [--apply] [--json]   (columns: username, displayName, groups "a;b", disabled)
  directory sync [--apply] [--json]`;

/** A CSV larger than this is refused before it is read. */
const CSV_MAX_BYTES = 10 * 1024 * 1024;

export async function userImportCommand(argv: readonly string[], services: Services, io: CliIo): Promise<number> {
  const a = parseArgs(argv, { options: [], flags: ['apply', 'json'] });
  if (a.positionals.length !== 1) throw new UsageError('expected exactly one CSV file');
  const file = a.positionals[0]!;
  const size = (await stat(file)).size;
  if (size > CSV_MAX_BYTES) throw new UsageError(`${file} is ${size} bytes; at most ${CSV_MAX_BYTES} per import`);
  const { entries, errors } = services.userImport.parseCsv(await readFile(file, 'utf8'));
  const plan = a.flags.has('apply')
    ? await services.userImport.apply(entries, { source: 'csv', extraErrors: errors, actor: 'cli' })
    : await services.userImport.plan(entries, { source: 'csv', extraErrors: errors });
  return report(plan, a.flags.has('apply'), a.flags.has('json'), io);
}

export async function directorySyncCommand(argv: readonly string[], services: Services, io: CliIo): Promise<number> {
  const a = parseArgs(argv, { options: [], flags: ['apply', 'json'] });
  if (a.positionals.length !== 0) throw new UsageError('directory sync takes no arguments');
  const sync = services.directorySync;
  if (!sync) throw new UsageError('no directory is configured (config: directory.ldap)');
  const plan = a.flags.has('apply') ? await sync.run('cli') : await sync.dryRun();
  return report(plan, a.flags.has('apply'), a.flags.has('json'), io);
}

function report(plan: ImportPlan, applied: boolean, json: boolean, io: CliIo): number {
  if (json) {
    io.out(JSON.stringify({ applied, ...plan }, null, 2));
  } else {
    for (const row of plan.rows) {
      if (row.action === 'unchanged') continue;
      const what = row.action === 'error' ? `error: ${row.error}` : (row.changes ?? []).map((c) => `${c.field} ${JSON.stringify(c.before)} -> ${JSON.stringify(c.after)}`).join('; ');
      io.out(`${row.origin}\t${row.username}\t${row.action}\t${what}`);
    }
    const s = plan.summary;
    io.out(`${applied ? 'applied' : 'dry run (add --apply to make these changes)'}: ${s.create} to create, ${s.update} to update, ${s.disable} to disable, ${s.unchanged} unchanged, ${s.error} with errors`);
  }
  return plan.summary.error > 0 ? 1 : 0;
}
