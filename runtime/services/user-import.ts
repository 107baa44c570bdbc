/**
 * Bringing users in from outside: a CSV file or a directory (LDAP / Active Directory). Both
 * give a list of entries; one planner compares them with the store and says, per entry, what
 * would change; applying carries that out and audits every change with before and after.
 * Running the same input twice changes nothing the second time.
 *
 * Imports never grant the admin role and never delete: a directory sync disables users who
 * left it (only users it brought in itself), and deleting stays an administrator's decision.
 */
import type { Store, User } from '../store/types.js';
import { parseCsvRows } from '../ca/csv.js';
import { randomId } from '../store/ids.js';
import { UsernameTakenError } from '../store/errors.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';
import { cleanDisplayName, cleanGroups, normalizeUsername } from './users.js';

export interface DirectoryEntry {
  readonly username: string;
  readonly displayName?: string;
  readonly groups?: readonly string[];
  /** Only from CSV; a directory says "gone" by leaving the entry out. */
  readonly disabled?: boolean;
  /** Where it came from, for messages: a CSV line number or a DN. */
  readonly origin: string;
}

export type ImportAction = 'create' | 'update' | 'unchanged' | 'disable' | 'error';

export interface FieldChange {
  readonly field: 'displayName' | 'groups' | 'disabled';
  readonly before: unknown;
  readonly after: unknown;
}

export interface ImportRow {
  readonly origin: string;
  readonly username: string;
  readonly action: ImportAction;
  readonly changes?: readonly FieldChange[];
  readonly error?: string;
}

export interface ImportPlan {
  /** 'csv' or the directory's name. */
  readonly source: string;
  readonly rows: readonly ImportRow[];
  readonly summary: Readonly<Record<ImportAction, number>>;
}

/** The most rows one CSV file may hold: a bound on work per upload, far above a company's headcount per file. */
export const CSV_IMPORT_MAX_ROWS = 20_000;

const CSV_COLUMNS = ['username', 'displayname', 'groups', 'disabled'] as const;
const DISPLAY_NAME_ALIASES = ['displayname', 'display_name', 'display name', 'name', '表示名'];
/** Documents recording which users a directory brought in: `<source>:<userId>`. */
const MEMBER_KIND = 'directory-member';

export interface UserImportDeps {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly now?: () => number;
  /** Ends every session of a disabled user and what hangs on them (SessionService.endAllOf); default: deletes the sessions only. */
  readonly endSessions?: (userId: string, context: RequestContext) => Promise<number>;
}

export class UserImportService {
  private readonly now: () => number;

  constructor(private readonly deps: UserImportDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * Reads CSV text: a header row naming `username` and any of `displayName`, `groups`
   * (separated by `;` or `|`) and `disabled` (true/false, yes/no, 1/0). Problems in a row
   * become that row's error; problems with the whole file throw ServiceError('invalid-input').
   */
  parseCsv(text: string): { entries: DirectoryEntry[]; errors: ImportRow[] } {
    let rows: string[][];
    try {
      rows = parseCsvRows(text.replace(/^\uFEFF/, ''));
    } catch (err) {
      throw new ServiceError('invalid-input', `the CSV could not be read: ${(err as Error).message}`);
    }
    if (rows.length === 0) throw new ServiceError('invalid-input', 'the CSV is empty');
    const header = rows[0]!.map((h) => h.trim().toLowerCase());
    const index = {
      username: header.indexOf('username'),
      displayName: header.findIndex((h) => DISPLAY_NAME_ALIASES.includes(h)),
      groups: header.indexOf('groups'),
      disabled: header.indexOf('disabled'),
    };
    if (index.username < 0) throw new ServiceError('invalid-input', `the first row must be a header naming a 'username' column (known columns: ${CSV_COLUMNS.join(', ')})`);
    const unknown = header.filter((h) => h !== '' && h !== 'username' && h !== 'groups' && h !== 'disabled' && !DISPLAY_NAME_ALIASES.includes(h));
    if (unknown.length > 0) {
      throw new ServiceError('invalid-input', `unknown column(s) ${unknown.map((u) => JSON.stringify(u.slice(0, 40))).join(', ')} (known: ${CSV_COLUMNS.join(', ')}; the admin role is never granted by import)`);
    }
    if (rows.length - 1 > CSV_IMPORT_MAX_ROWS) throw new ServiceError('invalid-input', `the CSV has ${rows.length - 1} rows; at most ${CSV_IMPORT_MAX_ROWS} per file`);
    const entries: DirectoryEntry[] = [];
    const errors: ImportRow[] = [];
    rows.slice(1).forEach((row, i) => {
      // Row numbers as a spreadsheet shows them: the header is row 1.
      const origin = `row ${i + 2}`;
      const cell = (k: number) => (k >= 0 ? (row[k] ?? '').trim() : '');
      const rawName = cell(index.username);
      const disabledText = cell(index.disabled).toLowerCase();
      let disabled: boolean | undefined;
      if (disabledText === '') disabled = undefined;
      else if (['true', 'yes', '1', 'y'].includes(disabledText)) disabled = true;
      else if (['false', 'no', '0', 'n'].includes(disabledText)) disabled = false;
      else {
        errors.push({ origin, username: rawName, action: 'error', error: `disabled must be true or false, got ${JSON.stringify(disabledText.slice(0, 40))}` });
        return;
      }
      const groupsText = cell(index.groups);
      entries.push({
        username: rawName,
        ...(index.displayName >= 0 && cell(index.displayName) !== '' ? { displayName: cell(index.displayName) } : {}),
        ...(index.groups >= 0 ? { groups: groupsText === '' ? [] : groupsText.split(/[;|]/).map((g) => g.trim()).filter(Boolean) } : {}),
        ...(disabled === undefined ? {} : { disabled }),
        origin,
      });
    });
    return { entries, errors };
  }

  /**
   * What applying `entries` would do now. With `disableMissing`, users this source brought in
   * earlier and absent from `entries` are to be disabled (a directory sync); a CSV never does that.
   */
  async plan(entries: readonly DirectoryEntry[], opts: { readonly source: string; readonly disableMissing?: boolean; readonly extraErrors?: readonly ImportRow[] }): Promise<ImportPlan> {
    const rows: ImportRow[] = [...(opts.extraErrors ?? [])];
    const seen = new Set<string>();
    for (const entry of entries) rows.push(await this.planEntry(entry, seen));
    if (opts.disableMissing) {
      for (const member of await this.members(opts.source)) {
        const user = await this.deps.store.users.getById(member.userId);
        if (!user || seen.has(user.username) || user.disabled) continue;
        rows.push({ origin: 'directory', username: user.username, action: 'disable', changes: [{ field: 'disabled', before: false, after: true }] });
      }
    }
    return { source: opts.source, rows, summary: summarize(rows) };
  }

  /** Plans again against the store as it is now and carries the plan out; returns what was done per row. */
  async apply(
    entries: readonly DirectoryEntry[],
    opts: { readonly source: string; readonly disableMissing?: boolean; readonly extraErrors?: readonly ImportRow[]; readonly actor: string; readonly context?: RequestContext },
  ): Promise<ImportPlan> {
    const plan = await this.plan(entries, opts);
    const byName = new Map(entries.map((e) => [safeName(e.username), e]));
    const done: ImportRow[] = [];
    for (const row of plan.rows) {
      if (row.action === 'error' || row.action === 'unchanged') {
        if (row.action === 'unchanged' && opts.disableMissing) await this.remember(opts.source, row.username);
        done.push(row);
        continue;
      }
      try {
        done.push(await this.applyRow(row, byName.get(row.username), opts));
      } catch (err) {
        // One bad row never stops the rest; it is reported in its place.
        done.push({ origin: row.origin, username: row.username, action: 'error', error: err instanceof ServiceError ? err.message : 'the store refused this change; try again' });
      }
    }
    await this.deps.audit.record({
      type: 'users.import',
      result: 'success',
      actor: opts.actor,
      context: opts.context ?? CLI_CONTEXT,
      details: { source: opts.source, ...summarize(done) },
    });
    return { source: opts.source, rows: done, summary: summarize(done) };
  }

  private async planEntry(entry: DirectoryEntry, seen: Set<string>): Promise<ImportRow> {
    let username: string;
    let displayName: string | undefined;
    let groups: string[] | undefined;
    try {
      username = normalizeUsername(entry.username);
      displayName = entry.displayName === undefined ? undefined : cleanDisplayName(entry.displayName, username);
      groups = entry.groups === undefined ? undefined : cleanGroups(entry.groups).sort();
    } catch (err) {
      return { origin: entry.origin, username: entry.username.slice(0, 80), action: 'error', error: (err as Error).message };
    }
    if (seen.has(username)) return { origin: entry.origin, username, action: 'error', error: `${username} appears more than once; only the first counts` };
    seen.add(username);
    const user = await this.deps.store.users.getByUsername(username);
    if (!user) {
      return {
        origin: entry.origin,
        username,
        action: 'create',
        changes: [
          { field: 'displayName', before: null, after: displayName ?? username },
          { field: 'groups', before: null, after: groups ?? [] },
          ...(entry.disabled ? [{ field: 'disabled' as const, before: null, after: true }] : []),
        ],
      };
    }
    const changes: FieldChange[] = [];
    if (displayName !== undefined && displayName !== user.displayName) changes.push({ field: 'displayName', before: user.displayName, after: displayName });
    if (groups !== undefined && !sameSet(groups, user.groups)) changes.push({ field: 'groups', before: [...user.groups].sort(), after: groups });
    if (entry.disabled !== undefined && entry.disabled !== user.disabled) changes.push({ field: 'disabled', before: user.disabled, after: entry.disabled });
    return changes.length === 0 ? { origin: entry.origin, username, action: 'unchanged' } : { origin: entry.origin, username, action: 'update', changes };
  }

  private async applyRow(row: ImportRow, entry: DirectoryEntry | undefined, opts: { source: string; disableMissing?: boolean; actor: string; context?: RequestContext }): Promise<ImportRow> {
    const time = this.now();
    const context = opts.context ?? CLI_CONTEXT;
    const after = (field: FieldChange['field']) => row.changes?.find((c) => c.field === field)?.after;
    if (row.action === 'create') {
      const user: User = {
        id: randomId(16),
        username: row.username,
        displayName: String(after('displayName') ?? row.username),
        groups: (after('groups') as string[] | undefined) ?? [],
        isAdmin: false,
        disabled: after('disabled') === true,
        createdAt: time,
        updatedAt: time,
      };
      try {
        await this.deps.store.users.create(user);
      } catch (err) {
        if (err instanceof UsernameTakenError) return { origin: row.origin, username: row.username, action: 'error', error: `${row.username} was created by someone else meanwhile; run the import again` };
        throw err;
      }
      if (opts.disableMissing) await this.remember(opts.source, row.username, user.id);
      await this.deps.audit.record({
        type: 'user.add',
        result: 'success',
        userId: user.id,
        username: user.username,
        actor: opts.actor,
        context,
        details: { source: opts.source, origin: entry?.origin ?? row.origin, before: null, after: { displayName: user.displayName, groups: user.groups, disabled: user.disabled } },
      });
      return row;
    }
    const user = await this.deps.store.users.getByUsername(row.username);
    if (!user) return { origin: row.origin, username: row.username, action: 'error', error: `${row.username} no longer exists` };
    const updated: User = {
      ...user,
      ...(after('displayName') !== undefined ? { displayName: String(after('displayName')) } : {}),
      ...(after('groups') !== undefined ? { groups: after('groups') as string[] } : {}),
      ...(after('disabled') !== undefined ? { disabled: after('disabled') === true } : {}),
      updatedAt: time,
    };
    await this.deps.store.users.update(updated);
    // Disabling ends the user's sessions at once, as the console and CLI do.
    const sessionsEnded = updated.disabled && !user.disabled ? await (this.deps.endSessions ? this.deps.endSessions(user.id, context) : this.deps.store.sessions.deleteByUser(user.id)) : 0;
    if (opts.disableMissing && row.action !== 'disable') await this.remember(opts.source, row.username, user.id);
    await this.deps.audit.record({
      type: row.action === 'disable' ? 'user.disable' : 'user.update',
      result: 'success',
      userId: user.id,
      username: user.username,
      actor: opts.actor,
      context,
      details: {
        source: opts.source,
        origin: row.origin,
        before: { displayName: user.displayName, groups: user.groups, disabled: user.disabled },
        after: { displayName: updated.displayName, groups: updated.groups, disabled: updated.disabled },
        ...(sessionsEnded ? { sessionsEnded } : {}),
      },
    });
    return row;
  }

  /** Users a directory source brought in (created or matched), so a later sync can tell who left. */
  private async members(source: string): Promise<{ userId: string }[]> {
    const out: { userId: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.deps.store.documents.list(MEMBER_KIND, { now: this.now(), prefix: `${source}:`, limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const d of page.documents) out.push({ userId: d.id.slice(source.length + 1) });
      cursor = page.cursor;
    } while (cursor);
    return out;
  }

  private async remember(source: string, username: string, userId?: string): Promise<void> {
    const id = userId ?? (await this.deps.store.users.getByUsername(username))?.id;
    if (!id) return;
    const existing = await this.deps.store.documents.get(MEMBER_KIND, `${source}:${id}`, this.now());
    if (!existing) await this.deps.store.documents.put({ kind: MEMBER_KIND, id: `${source}:${id}`, body: JSON.stringify({ username }) }, { now: this.now() });
  }
}

function safeName(name: string): string {
  try {
    return normalizeUsername(name);
  } catch {
    return name;
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(b);
  return a.every((x) => s.has(x));
}

function summarize(rows: readonly ImportRow[]): Record<ImportAction, number> {
  const out: Record<ImportAction, number> = { create: 0, update: 0, unchanged: 0, disable: 0, error: 0 };
  for (const r of rows) out[r.action]++;
  return out;
}
