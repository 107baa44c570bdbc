/**
 * `kanmon config export [--out FILE]` and `kanmon config import FILE [--apply] [--json]`: the
 * routes, policies and live settings kept in the store, as JSON in the config file's shape. An
 * import is a dry run unless `--apply`; a whole config file can be imported (options only the
 * file sets are listed and left alone).
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import type { Services } from '../services/index.js';
import type { DiffLine } from '../services/config-versions.js';
import { parseArgs, UsageError } from './args.js';
import type { CliIo } from './commands.js';

export const CONFIG_USAGE = `  config export [--out FILE]
  config import <file.json> [--apply] [--json]   (routes and live settings; a dry run without --apply)`;

/** An import file larger than this is refused before it is read. */
const IMPORT_MAX_BYTES = 1024 * 1024;

export async function configCommand(argv: readonly string[], services: Services, io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'export') {
    const a = parseArgs(rest, { options: ['out'], flags: [] });
    if (a.positionals.length !== 0) throw new UsageError('config export takes no arguments (use --out FILE)');
    const { version } = await services.configVersions.effective();
    const text = `${JSON.stringify(await services.configVersions.exportState(), null, 2)}\n`;
    const out = a.options.get('out')?.at(-1);
    if (out) {
      await writeFile(out, text, { mode: 0o600 });
      io.out(`wrote config version ${version} to ${out}`);
    } else io.out(text.trimEnd());
    await services.audit.record({ type: 'config.export', result: 'success', actor: 'cli', details: { version, ...(out ? { file: out.slice(0, 200) } : {}) } });
    return 0;
  }
  if (sub === 'import') {
    const a = parseArgs(rest, { options: [], flags: ['apply', 'json'] });
    if (a.positionals.length !== 1) throw new UsageError('expected exactly one JSON file');
    const file = a.positionals[0]!;
    const size = (await stat(file)).size;
    if (size > IMPORT_MAX_BYTES) throw new UsageError(`${file} is ${size} bytes; at most ${IMPORT_MAX_BYTES}`);
    let input: unknown;
    try {
      input = JSON.parse((await readFile(file, 'utf8')).replace(/^\uFEFF/, ''));
    } catch (err) {
      throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`);
    }
    const result = await services.configVersions.importConfig(input, { apply: a.flags.has('apply'), author: 'cli', note: `kanmon config import ${file.slice(-100)}` });
    if (a.flags.has('json')) {
      io.out(JSON.stringify(result, null, 2));
      return result.errors.length > 0 ? 1 : 0;
    }
    if (result.ignored.length > 0) io.out(`left alone (set in the config file only): ${result.ignored.join(', ')}`);
    if (result.errors.length > 0) {
      for (const e of result.errors) io.out(`error: ${e}`);
      io.out(`nothing changed: ${result.errors.length} error(s)`);
      return 1;
    }
    for (const line of result.changes) io.out(diffLine(line));
    if (result.changes.length === 0) io.out('no changes: the store already holds this configuration');
    else if (result.applied) io.out(`applied as config version ${result.version!.version}; every node uses it within a few seconds`);
    else io.out(`dry run: ${result.changes.length} change(s); add --apply to make them`);
    return 0;
  }
  throw new UsageError(`expected: kanmon config export | import, got ${JSON.stringify(sub ?? '')}`);
}

export function diffLine(d: DiffLine): string {
  if (d.kind === 'added') return `+ ${d.path} = ${d.after}`;
  if (d.kind === 'removed') return `- ${d.path} (was ${d.before})`;
  return `~ ${d.path}: ${d.before} -> ${d.after}`;
}
