/**
 * Users and groups from LDAP / Active Directory: one search for users under the base DN, groups
 * from memberOf or from a group search, then the same plan/apply as a CSV import. Users who
 * left the directory are disabled, never deleted. A scheduled sync runs on one node at a time,
 * under a store lease.
 */
import { readFileSync } from 'node:fs';
import { Client, type Entry } from 'ldapts';
import type { LdapDirectoryConfig } from '../config/directory.js';
import { acquireLease, releaseLease } from '../store/lease.js';
import type { Store } from '../store/types.js';
import { ServiceError } from './errors.js';
import type { RequestContext } from './request-context.js';
import type { DirectoryEntry, ImportPlan, ImportRow, UserImportService } from './user-import.js';

/** More entries than this in one sync is refused rather than half-applied. */
export const DIRECTORY_MAX_ENTRIES = 50_000;

export interface DirectorySyncDeps {
  readonly config: LdapDirectoryConfig;
  readonly imports: UserImportService;
  readonly store: Store;
  /** The bind password; read from the environment variable the config names. */
  readonly password: string | undefined;
  readonly now?: () => number;
}

export class DirectorySyncService {
  private readonly now: () => number;

  constructor(private readonly deps: DirectorySyncDeps) {
    this.now = deps.now ?? Date.now;
  }

  get source(): string {
    return this.deps.config.name;
  }

  /** Reads the directory and plans the changes without making them. */
  async dryRun(): Promise<ImportPlan> {
    const { entries, errors } = await this.read();
    return this.deps.imports.plan(entries, { source: this.source, disableMissing: true, extraErrors: errors });
  }

  /** Reads the directory and applies it. */
  async run(actor: string, context?: RequestContext): Promise<ImportPlan> {
    const { entries, errors } = await this.read();
    return this.deps.imports.apply(entries, { source: this.source, disableMissing: true, extraErrors: errors, actor, ...(context ? { context } : {}) });
  }

  /**
   * Runs every scheduleMinutes on whichever node takes the lease first; returns a stop
   * function. Failures are reported to `onError` and retried at the next tick.
   */
  startSchedule(holder: string, onDone: (plan: ImportPlan) => void, onError: (err: unknown) => void): () => void {
    const minutes = this.deps.config.scheduleMinutes;
    if (minutes <= 0) return () => undefined;
    const timer = setInterval(() => {
      this.runScheduled(holder).then((plan) => plan && onDone(plan), onError);
    }, minutes * 60_000);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * One scheduled run, when this node takes the lease; undefined when another node has it. The
   * lease outlives the run (almost a whole period), so a second node waking within the same
   * period skips it; a failed run gives the lease back so the next tick on any node retries.
   */
  async runScheduled(holder: string): Promise<ImportPlan | undefined> {
    const periodMs = Math.max(this.deps.config.scheduleMinutes, 1) * 60_000;
    const lease = await acquireLease(this.deps.store.documents, { name: `directory-sync-${this.source}`, holder, ttlMs: Math.max(periodMs - 30_000, 60_000), now: this.now() });
    if (!lease) return undefined;
    try {
      return await this.run(`directory:${this.source}`);
    } catch (err) {
      await releaseLease(this.deps.store.documents, lease).catch(() => undefined);
      throw err;
    }
  }

  private async read(): Promise<{ entries: DirectoryEntry[]; errors: ImportRow[] }> {
    const c = this.deps.config;
    if (!this.deps.password) {
      throw new ServiceError('invalid-input', `the directory bind password is not set: put it in the environment variable ${c.bindPasswordEnv}`);
    }
    const tlsOptions = { ...(c.caFile ? { ca: readFileSync(c.caFile) } : {}), minVersion: 'TLSv1.2' as const };
    // Passing TLS options makes the client speak TLS from the first byte: only for ldaps://.
    const client = new Client({ url: c.url, timeout: c.timeoutSeconds * 1000, connectTimeout: c.timeoutSeconds * 1000, ...(c.url.startsWith('ldaps:') ? { tlsOptions } : {}) });
    try {
      if (c.startTls) await client.startTLS(tlsOptions);
      await client.bind(c.bindDn, this.deps.password);
      const users = await this.search(client, c.baseDn, c.userFilter, [c.usernameAttribute, c.displayNameAttribute, 'cn', ...(c.groupsFrom === 'memberOf' ? ['memberOf'] : [])]);
      let groupsByMember: Map<string, string[]> | undefined;
      if (c.groupsFrom === 'search') {
        groupsByMember = new Map();
        for (const g of await this.search(client, c.groupBaseDn ?? c.baseDn, c.groupFilter, [c.groupNameAttribute, c.groupMemberAttribute])) {
          const name = first(g[c.groupNameAttribute]);
          if (!name) continue;
          for (const member of values(g[c.groupMemberAttribute])) {
            const key = normalizeDn(member);
            groupsByMember.set(key, [...(groupsByMember.get(key) ?? []), name]);
          }
        }
      }
      const entries: DirectoryEntry[] = [];
      const errors: ImportRow[] = [];
      for (const u of users) {
        const username = first(u[c.usernameAttribute]);
        if (!username) {
          errors.push({ origin: u.dn, username: '', action: 'error', error: `the entry has no ${c.usernameAttribute}` });
          continue;
        }
        const displayName = first(u[c.displayNameAttribute]) ?? first(u.cn);
        const groups = c.groupsFrom === 'memberOf' ? values(u.memberOf).map(groupNameFromDn).filter((g): g is string => !!g) : (groupsByMember!.get(normalizeDn(u.dn)) ?? []);
        entries.push({ username, ...(displayName ? { displayName } : {}), groups: groups.map((g) => g.replace(/[\s,]+/g, '-')), origin: u.dn });
      }
      return { entries, errors };
    } catch (err) {
      if (err instanceof ServiceError) throw err;
      // The directory's own message can name internal hosts; the caller's log gets the cause.
      throw new ServiceError('unavailable', `the directory could not be read: ${(err as Error).name}: ${(err as Error).message}`.slice(0, 300), { cause: err });
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  private async search(client: Client, base: string, filter: string, attributes: string[]): Promise<Entry[]> {
    const out: Entry[] = [];
    for await (const page of client.searchPaginated(base, { scope: 'sub', filter, attributes, paged: { pageSize: 500 } })) {
      out.push(...page.searchEntries);
      if (out.length > DIRECTORY_MAX_ENTRIES) throw new ServiceError('invalid-input', `the directory returned more than ${DIRECTORY_MAX_ENTRIES} entries for ${filter}; narrow the filter`);
    }
    return out;
  }
}

function values(v: Entry[string] | undefined): string[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

function first(v: Entry[string] | undefined): string | undefined {
  const s = values(v)[0]?.trim();
  return s ? s : undefined;
}

/** The first RDN's value: `cn=Sales Team,ou=groups,dc=corp` → `Sales Team`. */
function groupNameFromDn(dn: string): string | undefined {
  const m = /^[^=,]+=((?:\\.|[^,\\])+)/.exec(dn.trim());
  return m?.[1]?.replace(/\\(.)/g, '$1').trim() || undefined;
}

/** DNs compare case-insensitively, without spaces around separators. */
function normalizeDn(dn: string): string {
  return dn
    .split(',')
    .map((part) => part.trim().toLowerCase())
    .join(',');
}
