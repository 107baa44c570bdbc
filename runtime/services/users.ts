import type { Store, User } from '../store/types.js';
import { UsernameTakenError } from '../store/errors.js';
import { randomId } from '../store/ids.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

const USERNAME = /^[a-z0-9][a-z0-9._@-]{0,63}$/;
const GROUP = /^[^\s,]{1,128}$/;

/** Usernames are compared case-insensitively and width-insensitively (NFKC, lower case). */
export function normalizeUsername(input: string): string {
  const name = input.normalize('NFKC').trim().toLowerCase();
  if (!USERNAME.test(name)) {
    throw new ServiceError('invalid-input', `username must be 1-64 of a-z 0-9 . _ @ - starting with a letter or digit, got ${JSON.stringify(input.slice(0, 80))}`);
  }
  return name;
}

export function cleanDisplayName(input: string | undefined, fallback: string): string {
  const name = (input ?? '').normalize('NFC').replace(/[\u0000-\u001f\u007f]/g, '').trim();
  if (name.length > 128) throw new ServiceError('invalid-input', 'display name must be at most 128 characters');
  return name || fallback;
}

export function cleanGroups(groups: readonly string[] | undefined): string[] {
  const out = [...new Set((groups ?? []).map((g) => g.normalize('NFKC').trim()))];
  for (const g of out) {
    if (!GROUP.test(g)) throw new ServiceError('invalid-input', `group names must be 1-128 characters without spaces or commas, got ${JSON.stringify(g.slice(0, 80))}`);
  }
  return out;
}

export interface AddUserInput {
  readonly username: string;
  readonly displayName?: string;
  readonly groups?: readonly string[];
  readonly isAdmin?: boolean;
  /** Pre-allocated id (bootstrap enrollment binds the passkey to it before the user exists). */
  readonly id?: string;
  readonly actor?: string;
  readonly context?: RequestContext;
}

export class UserService {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
    /** Ends every session of a user and what hangs on them (SessionService.endAllOf); default: deletes the sessions only. */
    private readonly endSessions: (userId: string, context: RequestContext) => Promise<number> = (userId) => store.sessions.deleteByUser(userId),
  ) {}

  async addUser(input: AddUserInput): Promise<User> {
    const username = normalizeUsername(input.username);
    const time = this.now();
    const user: User = {
      id: input.id ?? randomId(16),
      username,
      displayName: cleanDisplayName(input.displayName, username),
      groups: cleanGroups(input.groups),
      isAdmin: input.isAdmin ?? false,
      disabled: false,
      createdAt: time,
      updatedAt: time,
    };
    try {
      await this.store.users.create(user);
    } catch (err) {
      if (err instanceof UsernameTakenError) throw new ServiceError('conflict', `user ${username} already exists`, { cause: err });
      throw err;
    }
    await this.audit.record({
      type: 'user.add',
      result: 'success',
      userId: user.id,
      username,
      actor: input.actor ?? 'cli',
      context: input.context ?? CLI_CONTEXT,
      details: { groups: user.groups, isAdmin: user.isAdmin },
    });
    return user;
  }

  async get(username: string): Promise<User | undefined> {
    let name: string;
    try {
      name = normalizeUsername(username);
    } catch {
      return undefined;
    }
    return this.store.users.getByUsername(name);
  }

  async require(username: string): Promise<User> {
    const user = await this.get(username);
    if (!user) throw new ServiceError('not-found', `no user named ${JSON.stringify(username)}`);
    return user;
  }

  getById(id: string): Promise<User | undefined> {
    return this.store.users.getById(id);
  }

  async list(opts: { limit?: number; cursor?: string } = {}): Promise<{ users: User[]; cursor?: string }> {
    return this.store.users.list(opts);
  }

  /** Disabling also ends every session of the user, so access stops within the cache bound. */
  async setDisabled(username: string, disabled: boolean, actor = 'cli', context: RequestContext = CLI_CONTEXT): Promise<User> {
    const user = await this.require(username);
    const updated: User = { ...user, disabled, updatedAt: this.now() };
    await this.store.users.update(updated);
    let sessionsEnded = 0;
    if (disabled) sessionsEnded = await this.endSessions(user.id, context);
    await this.audit.record({
      type: disabled ? 'user.disable' : 'user.enable',
      result: 'success',
      userId: user.id,
      username: user.username,
      actor,
      context,
      ...(disabled ? { details: { sessionsEnded } } : {}),
    });
    return updated;
  }
}
