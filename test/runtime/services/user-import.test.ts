/**
 * CSV user import on the real SQLite store: a 1,000-row dry run, apply, and apply again with no
 * changes; updates with before and after; row errors in place; file-level refusals for hostile
 * or oversized input; the admin role never granted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { ServiceError } from '../../../runtime/services/errors.js';
import { CSV_IMPORT_MAX_ROWS, UserImportService } from '../../../runtime/services/user-import.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { AuditEvent, Store } from '../../../runtime/store/types.js';

let dir: string;
let store: Store;
let events: AuditEvent[];
let imports: UserImportService;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-import-'));
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  events = [];
  const audit = new AuditLog(store, pino({ level: 'silent' }));
  audit.onEvent((e) => events.push(e));
  imports = new UserImportService({ store, audit });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function thousandRows(): string {
  const lines = ['username,displayName,groups,disabled'];
  for (let i = 0; i < 1000; i++) lines.push(`user${String(i).padStart(4, '0')},"社員 ${i}, 営業",staff;sales${i % 3},${i % 100 === 0 ? 'true' : 'false'}`);
  return lines.join('\r\n') + '\r\n';
}

async function csvPlan(text: string) {
  const { entries, errors } = imports.parseCsv(text);
  return imports.plan(entries, { source: 'csv', extraErrors: errors });
}

async function csvApply(text: string) {
  const { entries, errors } = imports.parseCsv(text);
  return imports.apply(entries, { source: 'csv', extraErrors: errors, actor: 'admin' });
}

describe('CSV user import', () => {
  it('dry-runs 1,000 rows without writing, applies them, and a second run changes nothing', async () => {
    const text = thousandRows();
    const dry = await csvPlan(text);
    expect(dry.summary).toEqual({ create: 1000, update: 0, unchanged: 0, disable: 0, error: 0 });
    expect(await store.users.hasAny()).toBe(false);

    const applied = await csvApply(text);
    expect(applied.summary.create).toBe(1000);
    const u = await store.users.getByUsername('user0007');
    expect(u).toMatchObject({ displayName: '社員 7, 営業', groups: ['sales1', 'staff'], disabled: false, isAdmin: false });
    expect((await store.users.getByUsername('user0100'))?.disabled).toBe(true);
    expect(events.filter((e) => e.type === 'user.add')).toHaveLength(1000);

    const again = await csvApply(text);
    expect(again.summary).toEqual({ create: 0, update: 0, unchanged: 1000, disable: 0, error: 0 });
    expect(events.filter((e) => e.type === 'user.update')).toHaveLength(0);
  });

  it('updates only what changed, with before and after in the audit event, and ends a disabled user\'s sessions', async () => {
    await csvApply('username,displayName,groups\nhanako,Hanako,staff\ntaro,Taro,staff\n');
    const taro = (await store.users.getByUsername('taro'))!;
    await store.sessions.create({ id: 's1', userId: taro.id, createdAt: Date.now(), lastSeenAt: Date.now(), absoluteExpiresAt: Date.now() + 60_000, authMethods: ['passkey'], ip: '192.0.2.1', userAgent: 'test' });
    const plan = await csvPlan('username,displayName,groups,disabled\nhanako,Hanako Yamada,staff;ops,\ntaro,Taro,staff,yes\n');
    expect(plan.rows).toEqual([
      { origin: 'row 2', username: 'hanako', action: 'update', changes: [{ field: 'displayName', before: 'Hanako', after: 'Hanako Yamada' }, { field: 'groups', before: ['staff'], after: ['ops', 'staff'] }] },
      { origin: 'row 3', username: 'taro', action: 'update', changes: [{ field: 'disabled', before: false, after: true }] },
    ]);
    await csvApply('username,displayName,groups,disabled\nhanako,Hanako Yamada,staff;ops,\ntaro,Taro,staff,yes\n');
    const update = events.find((e) => e.type === 'user.update' && e.username === 'hanako')!;
    expect(update.details).toMatchObject({ before: { displayName: 'Hanako', groups: ['staff'] }, after: { displayName: 'Hanako Yamada', groups: ['ops', 'staff'] } });
    expect(await store.sessions.get('s1')).toBeUndefined();
  });

  it('reports bad rows in place and applies the good ones', async () => {
    const plan = await csvApply('username,groups,disabled\nok-user,staff,\n"bad name",staff,\nok-user,ops,\nthird,"a b",\nfourth,staff,maybe\n');
    expect(plan.rows.map((r) => [r.origin, r.action])).toEqual([
      ['row 6', 'error'],
      ['row 2', 'create'],
      ['row 3', 'error'],
      ['row 4', 'error'],
      ['row 5', 'error'],
    ]);
    expect(plan.rows.find((r) => r.origin === 'row 4')?.error).toMatch(/more than once/);
    expect(await store.users.getByUsername('ok-user')).toBeDefined();
    expect(await store.users.getByUsername('third')).toBeUndefined();
  });

  it('keeps hostile display names as text (escaping is the page\'s job) and never grants admin', async () => {
    await csvApply('username,displayName\nmallory,"<script>alert(1)</script>"\n');
    expect(await store.users.getByUsername('mallory')).toMatchObject({ displayName: '<script>alert(1)</script>', isAdmin: false });
    expect(() => imports.parseCsv('username,isAdmin\nmallory,true\n')).toThrow(/admin role is never granted/);
  });

  it('refuses files it cannot read as a whole, with a clear message', () => {
    const bad = (text: string, pattern: RegExp) => {
      let caught: unknown;
      try {
        imports.parseCsv(text);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ServiceError);
      expect((caught as ServiceError).code).toBe('invalid-input');
      expect((caught as Error).message).toMatch(pattern);
    };
    bad('', /empty/);
    bad('name,groups\nx,y\n', /header naming a 'username'/);
    bad('username\n"unterminated\n', /could not be read/);
    bad('username\n' + 'u\n'.repeat(CSV_IMPORT_MAX_ROWS + 1), /at most/);
    // A byte-order mark from a spreadsheet is fine.
    expect(imports.parseCsv('\uFEFFusername\nhanako\n').entries.map((e) => e.username)).toEqual(['hanako']);
  });
});
