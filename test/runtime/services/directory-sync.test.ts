/**
 * LDAP sync against a real slapd: users and groups (group search and memberOf), a dry run that
 * writes nothing, apply, a second run with no changes, a leaver disabled (never deleted), users
 * not brought in by the directory left alone, wrong bind password and unreachable directory as
 * clear errors, and one node at a time under the lease.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { DirectorySyncService } from '../../../runtime/services/directory-sync.js';
import { ServiceError } from '../../../runtime/services/errors.js';
import { UserImportService } from '../../../runtime/services/user-import.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';
import { LDAP_ADMIN, LDAP_BASE, LDAP_PASSWORD, startSlapd, type Slapd } from '../../support/slapd.js';

let slapd: Slapd;
let dir: string;
let store: Store;

beforeAll(async () => {
  slapd = await startSlapd();
  await slapd.edit(async (c) => {
    const person = (uid: string, cn: string, displayName?: string) =>
      c.add(`uid=${uid},ou=people,${LDAP_BASE}`, {
        objectClass: ['inetOrgPerson'],
        uid,
        cn,
        sn: cn.split(' ').pop() ?? cn,
        ...(displayName ? { displayName } : {}),
      });
    await person('hanako', 'Hanako Yamada', '山田 花子');
    await person('taro', 'Taro Suzuki');
    await person('jiro', 'Jiro Sato');
    await c.add(`cn=Sales Team,ou=groups,${LDAP_BASE}`, {
      objectClass: ['groupOfNames'],
      cn: 'Sales Team',
      member: [`uid=hanako,ou=people,${LDAP_BASE}`, `uid=taro,ou=people,${LDAP_BASE}`],
    });
    await c.add(`cn=admins,ou=groups,${LDAP_BASE}`, { objectClass: ['groupOfNames'], cn: 'admins', member: [`uid=hanako,ou=people,${LDAP_BASE}`] });
  });
}, 60_000);

afterAll(async () => {
  await slapd?.stop();
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-dirsync-'));
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function sync(overrides: Record<string, unknown> = {}, password: string | undefined = LDAP_PASSWORD) {
  const config = parseConfig({
    directory: { ldap: { url: slapd.url, allowPlaintext: true, bindDn: LDAP_ADMIN, baseDn: `ou=people,${LDAP_BASE}`, groupsFrom: 'search', groupBaseDn: `ou=groups,${LDAP_BASE}`, ...overrides } },
  }).directory.ldap!;
  const audit = new AuditLog(store, pino({ level: 'silent' }));
  return new DirectorySyncService({ config, imports: new UserImportService({ store, audit }), store, password });
}

describe('LDAP directory sync against slapd', () => {
  it('plans without writing, applies users and groups, and a second run changes nothing', async () => {
    const dry = await sync().dryRun();
    expect(dry.summary).toMatchObject({ create: 3, error: 0 });
    expect(await store.users.hasAny()).toBe(false);

    const applied = await sync().run('admin');
    expect(applied.summary).toMatchObject({ create: 3, error: 0 });
    expect(await store.users.getByUsername('hanako')).toMatchObject({ displayName: '山田 花子', groups: ['Sales-Team', 'admins'], isAdmin: false, disabled: false });
    expect(await store.users.getByUsername('taro')).toMatchObject({ displayName: 'Taro Suzuki', groups: ['Sales-Team'] });
    expect((await store.users.getByUsername('jiro'))?.groups).toEqual([]);

    const again = await sync().run('admin');
    expect(again.summary).toEqual({ create: 0, update: 0, unchanged: 3, disable: 0, error: 0 });
  });

  it('reads groups from memberOf as well', async () => {
    await sync({ groupsFrom: 'memberOf' }).run('admin');
    expect((await store.users.getByUsername('hanako'))?.groups).toEqual(['Sales-Team', 'admins']);
  });

  it('disables a user who left the directory, never deletes, and leaves users it did not bring in alone', async () => {
    await sync().run('admin');
    const local = { id: 'local-1', username: 'local-admin', displayName: 'Local', groups: [], isAdmin: true, disabled: false, createdAt: 1, updatedAt: 1 };
    await store.users.create(local);
    // Only jiro is left in the filter's reach: the others "left".
    const narrowed = await sync({ userFilter: '(uid=jiro)' }).run('admin');
    expect(narrowed.rows.filter((r) => r.action === 'disable').map((r) => r.username).sort()).toEqual(['hanako', 'taro']);
    expect((await store.users.getByUsername('hanako'))?.disabled).toBe(true);
    expect((await store.users.getByUsername('jiro'))?.disabled).toBe(false);
    expect((await store.users.getByUsername('local-admin'))?.disabled).toBe(false);
    // Running the same sync again does nothing more.
    expect((await sync({ userFilter: '(uid=jiro)' }).run('admin')).summary).toEqual({ create: 0, update: 0, unchanged: 1, disable: 0, error: 0 });
  });

  it('says clearly when the password is wrong, missing, or the directory is down', async () => {
    const failure = async (s: DirectorySyncService) => {
      try {
        await s.dryRun();
      } catch (err) {
        return err;
      }
      return undefined;
    };
    const wrong = await failure(sync({}, 'not-the-password'));
    expect(wrong).toBeInstanceOf(ServiceError);
    expect((wrong as ServiceError).code).toBe('unavailable');
    expect((wrong as Error).message).toMatch(/InvalidCredentials/i);
    const missing = await failure(sync({}, ''));
    expect((missing as Error).message).toMatch(/KANMON_LDAP_PASSWORD/);
    const down = await failure(sync({ url: 'ldap://127.0.0.1:1', timeoutSeconds: 2 }));
    expect((down as ServiceError).code).toBe('unavailable');
    expect(await store.users.hasAny()).toBe(false);
  });

  it('runs a scheduled sync on one node at a time', async () => {
    const results = await Promise.all([sync({ scheduleMinutes: 60 }).runScheduled('node-a'), sync({ scheduleMinutes: 60 }).runScheduled('node-b')]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(results.find(Boolean)!.summary.create).toBe(3);
    // Within the period the other node does not run it again.
    expect(await sync({ scheduleMinutes: 60 }).runScheduled('node-b')).toBeUndefined();
  });

  it('refuses an unencrypted directory unless explicitly allowed, and bad filters, at config time', () => {
    expect(() => parseConfig({ directory: { ldap: { url: 'ldap://dir.corp.local', bindDn: 'cn=x', baseDn: 'dc=corp' } } })).toThrow(/unencrypted/);
    expect(() => parseConfig({ directory: { ldap: { url: 'ldaps://dir.corp.local', bindDn: 'cn=x', baseDn: 'dc=corp', userFilter: 'uid=*' } } })).toThrow(/LDAP filter/);
    expect(() => parseConfig({ directory: { ldap: { url: 'http://dir.corp.local', bindDn: 'cn=x', baseDn: 'dc=corp' } } })).toThrow(/ldaps:\/\/host/);
  });
});
