import type { KanmonConfig } from '../config/schema.js';
import type { Services } from '../services/index.js';
import { CLI_CONTEXT } from '../services/index.js';
import type { AuditEvent } from '../store/types.js';
import { parseArgs, UsageError } from './args.js';
import { iso, table } from './format.js';
import { caCommand, CERT_USAGE, certCommand } from './cert-commands.js';
import { enrollLetterCommand, enrollLinkCommand } from './enrollment-commands.js';
import { policyCheckCommand } from './policy-check.js';
import { UPSTREAM_CREDENTIALS_USAGE, upstreamCredentialsCommand } from './upstream-credential-commands.js';
import { directorySyncCommand, IMPORT_USAGE, userImportCommand } from './import-commands.js';
import { SERVER_CERT_USAGE, serverCertCommand } from './server-cert-commands.js';
import { CONFIG_USAGE, configCommand } from './config-commands.js';

export interface CliIo {
  out(line: string): void;
}

export const USAGE = `usage: kanmon [--config FILE] <command>

  user add <name> [--display-name NAME] [--group G]... [--admin]
  user list [--json]
  user disable <name>
  user enable <name>
  user unlock <name>
  user totp reset <name>
  user recovery-codes reset <name>
  enroll-link <name> [--expires 24h] [--code]
  enroll-letter <name>... [--out DIR] [--expires 7d] [--code]
  policy check <name> <url> [--methods passkey|otp|recovery[,…]] [--cert] [--json]
  sessions list <name> [--json]
  sessions revoke <name> [--id SESSION_ID]
  audit tail [--limit N] [--user NAME] [--json]
${IMPORT_USAGE}
${CERT_USAGE}
${UPSTREAM_CREDENTIALS_USAGE}
${SERVER_CERT_USAGE}
${CONFIG_USAGE}

The store is the one the config names (sqlite by default, in the data directory).`;

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${what}`);
  return positionals[0]!;
}

/** Runs one command against the services; returns the process exit code. */
export async function runCommand(argv: readonly string[], services: Services, config: KanmonConfig, io: CliIo): Promise<number> {
  const [group, sub, ...rest] = argv;
  const actor = 'cli';
  if (group === 'enroll-link') return enrollLinkCommand(argv.slice(1), services, config, io);
  if (group === 'enroll-letter') return enrollLetterCommand(argv.slice(1), services, config, io);
  // Routes and policies are the store's current version, not the file's (README: Config model).
  if (group === 'policy' && sub === 'check') return policyCheckCommand(rest, services, (await services.configVersions.effective()).config, io);
  if (group === 'config') return configCommand(argv.slice(1), services, io);
  if (group === 'cert' && sub === 'server') return serverCertCommand(rest, services, config, io);
  if (group === 'cert') return certCommand(argv.slice(1), services, io);
  if (group === 'ca') return caCommand(argv.slice(1), services, io);
  if (group === 'upstream-credentials') return upstreamCredentialsCommand(argv.slice(1), services, io);
  if (group === 'user' && sub === 'import') return userImportCommand(rest, services, io);
  if (group === 'directory' && sub === 'sync') return directorySyncCommand(rest, services, io);
  switch (`${group} ${sub ?? ''}`.trim()) {
    case 'user add': {
      const a = parseArgs(rest, { options: ['display-name', 'group'], flags: ['admin'] });
      const name = one(a.positionals, 'user name');
      const displayName = a.options.get('display-name')?.at(-1);
      const user = await services.users.addUser({
        username: name,
        ...(displayName ? { displayName } : {}),
        groups: a.options.get('group') ?? [],
        isAdmin: a.flags.has('admin'),
        actor,
      });
      io.out(`added user ${user.username} (id ${user.id})${user.isAdmin ? ' as administrator' : ''}`);
      io.out(`next: kanmon enroll-link ${user.username}`);
      return 0;
    }
    case 'user list': {
      const a = parseArgs(rest, { options: [], flags: ['json'] });
      const all = [];
      let cursor: string | undefined;
      do {
        const page = await services.users.list({ limit: 100, ...(cursor ? { cursor } : {}) });
        all.push(...page.users);
        cursor = page.cursor;
      } while (cursor);
      // Locks live in the login guard's own records, read in one query rather than per user.
      const locks = new Map((await services.loginGuard.lockedUsers()).map((l) => [l.username, l.lockedUntil]));
      if (a.flags.has('json')) {
        io.out(JSON.stringify(all.map((u) => (locks.has(u.username) ? { ...u, lockedUntil: locks.get(u.username) } : u)), null, 2));
        return 0;
      }
      if (all.length === 0) {
        io.out('no users');
        return 0;
      }
      for (const line of table([
        ['USERNAME', 'DISPLAY NAME', 'GROUPS', 'ADMIN', 'STATUS', 'CREATED'],
        ...all.map((u) => [u.username, u.displayName, u.groups.join(','), u.isAdmin ? 'yes' : '', userStatus(u.disabled, locks.get(u.username)), iso(u.createdAt)]),
      ]))
        io.out(line);
      return 0;
    }
    case 'user disable':
    case 'user enable': {
      const a = parseArgs(rest, { options: [], flags: [] });
      const user = await services.users.setDisabled(one(a.positionals, 'user name'), sub === 'disable', actor, CLI_CONTEXT);
      io.out(`${user.username} is now ${user.disabled ? 'disabled; their sessions were ended' : 'enabled'}`);
      return 0;
    }
    case 'user unlock': {
      const a = parseArgs(rest, { options: [], flags: [] });
      const user = await services.users.require(one(a.positionals, 'user name'));
      const wasLocked = await services.loginGuard.unlock(user.username, { actor, user, context: CLI_CONTEXT });
      io.out(wasLocked ? `unlocked ${user.username}; their failed attempts are forgotten on every node` : `${user.username} was not locked; their failed attempts are forgotten`);
      return 0;
    }
    case 'user totp':
    case 'user recovery-codes': {
      // Reset is delete: the user sets the factor up again from the account page.
      const [action, ...names] = rest;
      if (action !== 'reset') throw new UsageError(`expected: kanmon user ${sub} reset <name>`);
      const a = parseArgs(names, { options: [], flags: [] });
      const user = await services.users.require(one(a.positionals, 'user name'));
      if (sub === 'totp') {
        const removed = await services.totp.reset(user, { actor, context: CLI_CONTEXT });
        io.out(removed ? `removed the authenticator app of ${user.username}; they can set one up again on the account page` : `${user.username} had no authenticator app; nothing to remove`);
      } else {
        const removed = await services.recoveryCodes.reset(user, { actor, context: CLI_CONTEXT });
        io.out(removed ? `deleted the recovery codes of ${user.username}; they can generate new ones on the account page` : `${user.username} had no recovery codes; nothing to delete`);
      }
      return 0;
    }
    case 'sessions list': {
      const a = parseArgs(rest, { options: [], flags: ['json'] });
      const user = await services.users.require(one(a.positionals, 'user name'));
      const sessions = await services.sessions.listForUser(user.id);
      if (a.flags.has('json')) {
        io.out(JSON.stringify(sessions, null, 2));
        return 0;
      }
      if (sessions.length === 0) {
        io.out(`no sessions for ${user.username}`);
        return 0;
      }
      for (const line of table([
        ['SESSION ID', 'SIGNED IN', 'LAST SEEN', 'METHODS', 'ADDRESS', 'BROWSER'],
        ...sessions.map((s) => [s.id, iso(s.createdAt), iso(s.lastSeenAt), s.authMethods.join('+'), s.ip, s.userAgent.slice(0, 40)]),
      ]))
        io.out(line);
      return 0;
    }
    case 'sessions revoke': {
      const a = parseArgs(rest, { options: ['id'], flags: [] });
      const user = await services.users.require(one(a.positionals, 'user name'));
      const id = a.options.get('id')?.at(-1);
      if (id) {
        await services.sessions.revoke(user, id, actor, CLI_CONTEXT);
        io.out(`revoked 1 session of ${user.username}`);
      } else {
        const n = await services.sessions.revokeAll(user, actor, CLI_CONTEXT);
        io.out(`revoked ${n} session(s) of ${user.username}`);
      }
      io.out(`(every node stops accepting them within ${config.session.cacheSeconds} s)`);
      return 0;
    }
    case 'audit tail': {
      const a = parseArgs(rest, { options: ['limit', 'user'], flags: ['json'] });
      const limitText = a.options.get('limit')?.at(-1) ?? '20';
      const limit = Number(limitText);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit must be 1 to 1000, got ${limitText}`);
      const userName = a.options.get('user')?.at(-1);
      const user = userName ? await services.users.require(userName) : undefined;
      const events = await services.audit.tail({ limit, ...(user ? { userId: user.id } : {}) });
      if (a.flags.has('json')) {
        io.out(JSON.stringify(events, null, 2));
        return 0;
      }
      if (events.length === 0) {
        io.out('no audit events');
        return 0;
      }
      for (const line of table([['TIME', 'EVENT', 'RESULT', 'USER', 'ACTOR', 'ADDRESS', 'METHOD', 'REASON'], ...[...events].reverse().map(auditRow)])) io.out(line);
      return 0;
    }
  }
  throw new UsageError(argv.length === 0 ? 'no command given' : `unknown command: ${argv.slice(0, 2).join(' ')}`);
}

function userStatus(disabled: boolean, lockedUntil: number | undefined): string {
  const locked = lockedUntil === undefined ? undefined : `LOCKED until ${iso(lockedUntil)}`;
  if (disabled) return locked ? `disabled, ${locked}` : 'disabled';
  return locked ?? 'active';
}

function auditRow(e: AuditEvent): string[] {
  return [iso(e.time), e.type, e.result, e.username ?? e.userId ?? '-', e.actor ?? '-', e.ip ?? '-', e.method ?? '-', e.reason ?? '-'];
}
