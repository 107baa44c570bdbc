/**
 * `kanmon enroll-link` and `kanmon enroll-letter`: one-time enrollment links, printed or as
 * printable letters. When a link demands a one-time code, the code is printed apart from the
 * link (and never written into a letter): the two reach the user on different channels.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { KanmonConfig } from '../config/schema.js';
import { renderEnrollmentLetter } from '../letters/enrollment-letter.js';
import { formatEnrollmentCode } from '../services/enrollment-codes.js';
import type { Services } from '../services/index.js';
import type { User } from '../store/types.js';
import { parseArgs, parseDuration, UsageError } from './args.js';
import { iso } from './format.js';

export interface CliOutput {
  out(line: string): void;
}

/** Letters go by post or internal mail, so they live longer than a link sent by e-mail. */
export const DEFAULT_LETTER_TTL_SECONDS = 7 * 86400;
export const DEFAULT_LETTER_DIR = 'enrollment-letters';

/** `kanmon enroll-link <name> [--expires 24h] [--code]` */
export async function enrollLinkCommand(args: readonly string[], services: Services, config: KanmonConfig, io: CliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['expires'], flags: ['code'] });
  if (a.positionals.length !== 1) throw new UsageError('expected exactly one user name');
  const expires = a.options.get('expires')?.at(-1);
  const link = await services.enrollment.createLink(a.positionals[0]!, {
    ...(expires ? { ttlSeconds: parseDuration(expires) } : {}),
    requireCode: a.flags.has('code') || config.enrollment.requireCode,
    actor: 'cli',
  });
  io.out(link.url);
  io.out(`(one use; expires ${iso(link.expiresAt)})`);
  if (link.code) {
    io.out('');
    io.out(`one-time code: ${formatEnrollmentCode(link.code)}`);
    io.out('(give the code to the user on another channel than the link, e.g. by phone; it is not shown again)');
  }
  return 0;
}

/**
 * A file name for a user's letter: usernames are case-folded and free of spaces and commas,
 * but may hold any other character, so everything outside a safe set becomes '_'.
 */
export function letterFileName(username: string): string {
  const safe = username.normalize('NFKC').replace(/[^\p{L}\p{N}._-]/gu, '_').replace(/^\.+/, '_').slice(0, 100);
  return `${safe || '_'}.html`;
}

/** `kanmon enroll-letter <name>… [--out DIR] [--expires 7d] [--code]` */
export async function enrollLetterCommand(args: readonly string[], services: Services, config: KanmonConfig, io: CliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['out', 'expires'], flags: ['code'] });
  if (a.positionals.length === 0) throw new UsageError('expected one or more user names');
  const expires = a.options.get('expires')?.at(-1);
  const ttlSeconds = expires ? parseDuration(expires) : DEFAULT_LETTER_TTL_SECONDS;
  const dir = resolve(a.options.get('out')?.at(-1) ?? DEFAULT_LETTER_DIR);
  const withCode = a.flags.has('code') || config.enrollment.requireCode;

  // Every name is checked before any link is issued, so a typo does not leave half a batch.
  const users: User[] = [];
  for (const name of new Set(a.positionals)) users.push(await services.users.require(name));
  for (const user of users) if (user.disabled) throw new UsageError(`user ${user.username} is disabled; enable them first`);

  // The letters hold live links: readable by their owner only.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const used = new Set<string>();
  const codes: Array<[string, string]> = [];
  for (const user of users) {
    const link = await services.enrollment.createLink(user.username, { ttlSeconds, requireCode: withCode, actor: 'cli' });
    let file = letterFileName(user.username);
    for (let i = 2; used.has(file); i++) file = letterFileName(`${user.username}-${i}`);
    used.add(file);
    const path = join(dir, file);
    const letter = await renderEnrollmentLetter({
      username: user.username,
      displayName: user.displayName,
      url: link.url,
      expiresAt: link.expiresAt,
      codeSeparately: link.code !== undefined,
      organisation: config.webauthn.rpName,
    });
    await writeFile(path, letter, { mode: 0o600 });
    io.out(`wrote ${path} (${user.username}; expires ${iso(link.expiresAt)})`);
    if (link.code) codes.push([user.username, formatEnrollmentCode(link.code)]);
  }
  if (codes.length > 0) {
    io.out('');
    io.out('one-time codes: deliver each to its user on another channel than the letter (e.g. by phone); they are not shown again');
    const width = Math.max(...codes.map(([u]) => u.length));
    for (const [username, code] of codes) io.out(`  ${username.padEnd(width)}  ${code}`);
  }
  return 0;
}
