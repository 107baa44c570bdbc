/**
 * `kanmon upstream-credentials …`: an administrator sets or clears a user's stored sign-in
 * details for a route with upstreamAuth, or the route's shared service account. The secret
 * is read from a file or standard input, never from the command line (shell history, ps).
 */
import { readFile } from 'node:fs/promises';
import type { Services } from '../services/index.js';
import { CLI_CONTEXT } from '../services/index.js';
import type { CredentialOwner } from '../services/upstream-credentials.js';
import { parseArgs, UsageError } from './args.js';

export const UPSTREAM_CREDENTIALS_USAGE = `  upstream-credentials set <route> (--user NAME | --shared) [--username U] (--password-file FILE | --password-stdin)
  upstream-credentials clear <route> (--user NAME | --shared)
  upstream-credentials status <route> (--user NAME | --shared)`;

export interface CliOutput {
  out(line: string): void;
}

export async function upstreamCredentialsCommand(
  args: readonly string[],
  services: Services,
  io: CliOutput,
  readStdin: () => Promise<string> = readAllStdin,
): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'set' && action !== 'clear' && action !== 'status') throw new UsageError('expected: kanmon upstream-credentials set|clear|status <route> …');
  const a = parseArgs(rest, { options: ['user', 'username', 'password-file'], flags: ['shared', 'password-stdin'] });
  if (a.positionals.length !== 1) throw new UsageError('expected exactly one route id');
  const creds = services.upstreamCredentials;
  const route = creds.route(a.positionals[0]);
  const userName = a.options.get('user')?.at(-1);
  if (!!userName === a.flags.has('shared')) throw new UsageError('name exactly one of --user NAME or --shared');
  const user = userName ? await services.users.require(userName) : undefined;
  const owner: CredentialOwner = user ? { kind: 'user', userId: user.id } : { kind: 'shared' };
  const whose = user ? `${user.username}'s` : 'the shared';
  const set = route.upstreamAuth.credentialSet;

  if (action === 'status') {
    const s = await creds.status(route, owner);
    if (!s.stored) io.out(`${whose} credentials for ${route.id} (set ${set}): not stored`);
    else io.out(`${whose} credentials for ${route.id} (set ${set}): stored${s.username ? ` for user name ${s.username}` : ''}, changed ${new Date(s.updatedAt!).toISOString()} by ${s.updatedBy}${s.rejectedAt !== undefined ? `; REFUSED by the upstream at ${new Date(s.rejectedAt).toISOString()}` : ''}`);
    return 0;
  }
  if (action === 'clear') {
    const removed = await creds.clear(route, owner, { actor: 'cli', ...(user ? { user } : {}), context: CLI_CONTEXT });
    io.out(removed ? `cleared ${whose} credentials for ${route.id} (set ${set})` : `${whose} credentials for ${route.id} were not stored; nothing to clear`);
    return 0;
  }
  const file = a.options.get('password-file')?.at(-1);
  if (!!file === a.flags.has('password-stdin')) throw new UsageError('give the password with exactly one of --password-file FILE or --password-stdin');
  // One trailing newline is the file's or the terminal's, not the password's.
  const secret = (file ? await readFile(file, 'utf8') : await readStdin()).replace(/\r?\n$/, '');
  const username = a.options.get('username')?.at(-1);
  await creds.set(route, owner, { ...(username !== undefined ? { username } : {}), secret }, { actor: 'cli', ...(user ? { user } : {}), context: CLI_CONTEXT });
  io.out(`stored ${whose} credentials for ${route.id} (set ${set}); sessions signed in to the upstream already keep their upstream session`);
  return 0;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
