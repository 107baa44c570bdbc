import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../../runtime/store/errors.js';
import { MIGRATIONS, migrate, openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import { describeStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'kanmon-sqlite-'));
let counter = 0;
/** A new database file (in a not-yet-existing directory) for every store opened. */
const freshFile = (): string => join(root, `db-${++counter}`, 'kanmon.db');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describeStoreConformance('sqlite', () => openSqliteStore({ file: freshFile() }));

describe('sqlite store specifics', () => {
  it('creates its directory 0700 and its file 0600', async () => {
    const file = freshFile();
    const store = await openSqliteStore({ file });
    try {
      expect(statSync(join(file, '..')).mode & 0o777).toBe(0o700);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      await store.close();
    }
  });

  it('uses WAL and records the newest schema version', async () => {
    const file = freshFile();
    const store = await openSqliteStore({ file });
    await store.close();
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS[MIGRATIONS.length - 1]!.version);
    } finally {
      db.close();
    }
  });

  it('keeps its data across a reopen', async () => {
    const file = freshFile();
    const first = await openSqliteStore({ file });
    await first.signingKeys.create({
      kid: 'k1',
      alg: 'ES256',
      publicJwk: '{}',
      sealedPrivateKey: 'sealed',
      createdAt: 1,
      retiresAt: 2,
    });
    await first.close();
    const second = await openSqliteStore({ file });
    try {
      expect((await second.signingKeys.list()).map((k) => k.kid)).toEqual(['k1']);
    } finally {
      await second.close();
    }
  });

  it('refuses a file written by a newer schema', async () => {
    const file = freshFile();
    await (await openSqliteStore({ file })).close();
    const db = new Database(file);
    db.pragma('user_version = 999');
    db.close();
    await expect(openSqliteStore({ file })).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('upgrades a version-1 file in place; old rows read back without the new optional fields', async () => {
    const file = freshFile();
    mkdirSync(dirname(file), { recursive: true });
    const v1 = new Database(file);
    migrate(v1, MIGRATIONS.filter((m) => m.version === 1));
    v1.prepare(
      `INSERT INTO credentials (id, user_id, public_key, counter, transports_json, device_type, backed_up, aaguid, name, created_at)
       VALUES ('cred-1', 'u1', x'0102', 3, '["usb"]', 'singleDevice', 0, '00000000-0000-0000-0000-000000000000', 'key', 10)`,
    ).run();
    v1.prepare(
      `INSERT INTO enrollment_tokens (id, purpose, user_id, created_at, expires_at, created_by)
       VALUES ('tok-1', 'enroll', 'u1', 10, 20, 'admin')`,
    ).run();
    v1.close();

    const store = await openSqliteStore({ file });
    try {
      expect(await store.credentials.get('cred-1')).toEqual({
        id: 'cred-1',
        userId: 'u1',
        publicKey: new Uint8Array([1, 2]),
        counter: 3,
        transports: ['usb'],
        deviceType: 'singleDevice',
        backedUp: false,
        aaguid: '00000000-0000-0000-0000-000000000000',
        name: 'key',
        createdAt: 10,
      });
      expect(await store.enrollmentTokens.get('tok-1')).toEqual({
        id: 'tok-1',
        purpose: 'enroll',
        userId: 'u1',
        createdAt: 10,
        expiresAt: 20,
        createdBy: 'admin',
      });
      await store.credentials.recordUse('cred-1', { expectedCounter: 3, counter: 4, lastUsedAt: 11, backedUp: true });
      expect((await store.credentials.get('cred-1'))?.backedUp).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('upgrades a version-2 file in place; an old session reads back without passkey evidence', async () => {
    const file = freshFile();
    mkdirSync(dirname(file), { recursive: true });
    const v2 = new Database(file);
    migrate(v2, MIGRATIONS.filter((m) => m.version <= 2));
    v2.prepare(
      `INSERT INTO sessions (id, user_id, auth_methods_json, created_at, last_seen_at, absolute_expires_at, ip, user_agent)
       VALUES ('s-1', 'u1', '["passkey"]', 10, 11, 20, '192.0.2.1', 'ua')`,
    ).run();
    v2.close();

    const store = await openSqliteStore({ file });
    try {
      expect(await store.sessions.get('s-1')).toEqual({
        id: 's-1',
        userId: 'u1',
        authMethods: ['passkey'],
        createdAt: 10,
        lastSeenAt: 11,
        absoluteExpiresAt: 20,
        ip: '192.0.2.1',
        userAgent: 'ua',
      });
    } finally {
      await store.close();
    }
  });

  it('shares step marks, throttles and recovery codes between two connections to one file', async () => {
    // The server and the CLI open the same file; each is a separate connection.
    const file = freshFile();
    const a = await openSqliteStore({ file });
    const b = await openSqliteStore({ file });
    try {
      expect(await a.totp.claimStep('u1', 100, Date.now() + 60_000)).toBe(true);
      expect(await b.totp.claimStep('u1', 100, Date.now() + 60_000)).toBe(false);

      const now = Date.now();
      for (let i = 0; i < 6; i++) await (i % 2 === 0 ? a : b).loginThrottle.recordFailure('user:u1', now, 60_000);
      await b.loginThrottle.lock('user:u1', now + 60_000);
      expect(await a.loginThrottle.get('user:u1')).toMatchObject({ failures: 6, lockedUntil: now + 60_000 });
      await a.loginThrottle.clear('user:u1');
      expect(await b.loginThrottle.listLocked('user:', now)).toEqual([]);

      await a.recoveryCodes.replace({ userId: 'u1', setId: 's1', codes: [{ hash: 'h' }], createdAt: now });
      expect(await b.recoveryCodes.markUsed('u1', 's1', 0, now)).toBe(true);
      expect(await a.recoveryCodes.markUsed('u1', 's1', 0, now)).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('fails closed with StoreUnavailableError once closed', async () => {
    const store = await openSqliteStore({ file: freshFile() });
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.users.getById('x')).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
