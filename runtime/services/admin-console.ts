import type { AuditEvent, AuditResult, Session, Store, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import type { RequestContext } from './request-context.js';
import type { SessionService } from './sessions.js';
import { cleanDisplayName, cleanGroups, normalizeUsername } from './users.js';

/** How far back the console reads the audit trail at most for one view (a bound, not a promise). */
export const AUDIT_SCAN_LIMIT = 20_000;
const PAGE = 500;

export interface UserSearch {
  /** Case-insensitive part of the username, display name or a group. */
  readonly query?: string;
  readonly cursor?: string;
  readonly limit?: number;
}

export interface AuditQuery {
  readonly userId?: string;
  /** Exact event type, or a prefix ending in '.' (e.g. 'admin.'). */
  readonly type?: string;
  readonly result?: AuditResult;
  /** Epoch ms, inclusive. */
  readonly from?: number;
  /** Epoch ms, exclusive. */
  readonly to?: number;
  /** At most this many events. @default 200 */
  readonly limit?: number;
  /** An event id: only older events (paging). */
  readonly before?: string;
}

export interface ActiveSessionRow {
  readonly session: Session;
  readonly user: User;
}

export interface LoginHistogram {
  /** 24 hourly buckets, oldest first; each is [start ms, successes, failures]. */
  readonly hours: ReadonlyArray<readonly [number, number, number]>;
  readonly successes: number;
  readonly failures: number;
}

/** What a change looked like before and after, for the audit trail. */
export interface UserEdit {
  readonly displayName?: string;
  readonly groups?: readonly string[];
  readonly isAdmin?: boolean;
}

/**
 * What the administrator's console needs beyond the per-factor services: a user search, edits
 * with their before and after, every active session, and views over the audit trail. Reads
 * page through the store; none of them is a table scan beyond the users and the audit window.
 */
export class AdminConsoleService {
  constructor(
    private readonly deps: {
      store: Store;
      audit: AuditLog;
      sessions: SessionService;
      /** The idle limit, or a getter of the live one (session.idleTimeoutSeconds is a live setting). */
      idleTimeoutSeconds: number | (() => number);
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /**
   * Users whose name, display name or group contains the query, ordered by username. Without a
   * query the store pages (its own opaque cursor); with one, the matches are counted through
   * and paged by position (cursor `o<n>`).
   */
  async searchUsers(search: UserSearch = {}): Promise<{ users: User[]; cursor?: string }> {
    const limit = Math.min(Math.max(search.limit ?? 25, 1), 200);
    const q = (search.query ?? '').normalize('NFKC').trim().toLowerCase().slice(0, 128);
    if (!q) {
      try {
        return await this.deps.store.users.list({ limit, ...(search.cursor ? { cursor: search.cursor } : {}) });
      } catch (err) {
        if (search.cursor) throw new ServiceError('invalid-input', 'the page cursor is not valid', { cause: err });
        throw err;
      }
    }
    const offset = search.cursor === undefined ? 0 : /^o\d{1,7}$/.test(search.cursor) ? Number(search.cursor.slice(1)) : NaN;
    if (!Number.isInteger(offset)) throw new ServiceError('invalid-input', 'the page cursor is not valid');
    const found: User[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.deps.store.users.list({ limit: PAGE, ...(cursor ? { cursor } : {}) });
      found.push(...page.users.filter((u) => matches(u, q)));
      cursor = page.cursor;
    } while (cursor && found.length <= offset + limit);
    const users = found.slice(offset, offset + limit);
    return found.length > offset + limit ? { users, cursor: `o${offset + limit}` } : { users };
  }

  /** Edits a user's display name, groups and admin role; returns the user before and after. */
  async editUser(username: string, edit: UserEdit, actor: string, context: RequestContext): Promise<{ before: User; after: User }> {
    const before = await this.requireUser(username);
    const after: User = {
      ...before,
      displayName: edit.displayName === undefined ? before.displayName : cleanDisplayName(edit.displayName, before.username),
      groups: edit.groups === undefined ? before.groups : cleanGroups(edit.groups),
      isAdmin: edit.isAdmin ?? before.isAdmin,
      updatedAt: this.now(),
    };
    if (before.isAdmin && !after.isAdmin && (await this.adminCount()) <= 1) {
      throw new ServiceError('forbidden', 'the last administrator cannot lose the admin role');
    }
    await this.deps.store.users.update(after);
    // A privilege change ends the user's sessions, so nobody keeps a role they lost (or gains one mid-session).
    if (before.isAdmin !== after.isAdmin) await this.deps.sessions.revokeAll(after, actor, context);
    await this.deps.audit.record({
      type: 'user.edit',
      result: 'success',
      userId: after.id,
      username: after.username,
      actor,
      context,
      details: { before: userFacts(before), after: userFacts(after) },
    });
    return { before, after };
  }

  async requireUser(username: string): Promise<User> {
    let name: string | undefined;
    try {
      name = normalizeUsername(String(username));
    } catch {
      // Not a name anyone can have (too long, odd characters): never worth a store round trip.
      name = undefined;
    }
    const user = name === undefined ? undefined : await this.deps.store.users.getByUsername(name);
    if (!user) throw new ServiceError('not-found', `no user named ${JSON.stringify(String(username).slice(0, 80))}`);
    return user;
  }

  private async adminCount(): Promise<number> {
    let n = 0;
    let cursor: string | undefined;
    do {
      const page = await this.deps.store.users.list({ limit: PAGE, ...(cursor ? { cursor } : {}) });
      n += page.users.filter((u) => u.isAdmin && !u.disabled).length;
      cursor = page.cursor;
    } while (cursor);
    return n;
  }

  /** Every live session of every user, most recently active first (reads each user's sessions). */
  async activeSessions(limit = 1000): Promise<ActiveSessionRow[]> {
    const time = this.now();
    const idle = typeof this.deps.idleTimeoutSeconds === 'function' ? this.deps.idleTimeoutSeconds() : this.deps.idleTimeoutSeconds;
    const rows: ActiveSessionRow[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.deps.store.users.list({ limit: PAGE, ...(cursor ? { cursor } : {}) });
      for (const user of page.users) {
        if (user.disabled) continue;
        for (const session of await this.deps.store.sessions.listByUser(user.id)) {
          if (session.absoluteExpiresAt > time && time - session.lastSeenAt < idle * 1000) rows.push({ session, user });
        }
      }
      cursor = page.cursor;
    } while (cursor && rows.length < limit);
    return rows.sort((a, b) => b.session.lastSeenAt - a.session.lastSeenAt).slice(0, limit);
  }

  /** Revokes one session by id, whoever holds it. */
  async revokeSession(sessionId: string, actor: string, context: RequestContext): Promise<User> {
    if (typeof sessionId !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(sessionId)) throw new ServiceError('invalid-input', 'session id must be 43 base64url characters');
    const session = await this.deps.store.sessions.get(sessionId);
    if (!session) throw new ServiceError('not-found', 'no such session');
    const user = await this.deps.store.users.getById(session.userId);
    if (!user) throw new ServiceError('not-found', 'no such session');
    await this.deps.sessions.revoke(user, sessionId, actor, context);
    return user;
  }

  /** Audit events matching the filter, newest first, reading at most AUDIT_SCAN_LIMIT events. */
  async queryAudit(query: AuditQuery): Promise<{ events: AuditEvent[]; more: boolean }> {
    const limit = Math.min(Math.max(query.limit ?? 200, 1), 10_000);
    const out: AuditEvent[] = [];
    let before = query.before;
    let scanned = 0;
    for (;;) {
      const page = await this.deps.store.audit.list({ limit: PAGE, ...(before ? { before } : {}), ...(query.userId ? { userId: query.userId } : {}) });
      for (const e of page) {
        if (query.from !== undefined && e.time < query.from) return { events: out, more: false };
        if (auditMatches(e, query)) {
          out.push(e);
          if (out.length === limit) return { events: out, more: true };
        }
      }
      scanned += page.length;
      if (page.length < PAGE || scanned >= AUDIT_SCAN_LIMIT) return { events: out, more: page.length === PAGE };
      before = page[page.length - 1]!.id;
    }
  }

  /** Sign-ins and failures per hour over the last 24 hours. */
  async loginHistogram(): Promise<LoginHistogram> {
    const end = this.now();
    const hourMs = 3_600_000;
    const start = Math.floor(end / hourMs) * hourMs - 23 * hourMs;
    const hours = Array.from({ length: 24 }, (_, i) => [start + i * hourMs, 0, 0] as [number, number, number]);
    const { events } = await this.queryAudit({ type: 'login', from: start, limit: AUDIT_SCAN_LIMIT });
    let successes = 0;
    let failures = 0;
    for (const e of events) {
      const bucket = hours[Math.floor((e.time - start) / hourMs)];
      if (!bucket) continue;
      if (e.result === 'success') {
        bucket[1]++;
        successes++;
      } else {
        bucket[2]++;
        failures++;
      }
    }
    return { hours, successes, failures };
  }
}

function matches(user: User, q: string): boolean {
  return user.username.includes(q) || user.displayName.normalize('NFKC').toLowerCase().includes(q) || user.groups.some((g) => g.toLowerCase().includes(q));
}

function auditMatches(e: AuditEvent, q: AuditQuery): boolean {
  if (q.type && !(q.type.endsWith('.') ? e.type.startsWith(q.type) : e.type === q.type)) return false;
  if (q.result && e.result !== q.result) return false;
  if (q.to !== undefined && e.time >= q.to) return false;
  if (q.from !== undefined && e.time < q.from) return false;
  return true;
}

/** The facts of a user an audit entry keeps (no secrets: a user record holds none). */
export function userFacts(user: User): Record<string, unknown> {
  return { displayName: user.displayName, groups: [...user.groups], isAdmin: user.isAdmin, disabled: user.disabled };
}
