import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../../runtime/store/errors.js';
import { MIGRATIONS, openSqliteStore } from '../../../runtime/store/sqlite/index.js';
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

  it('fails closed with StoreUnavailableError once closed', async () => {
    const store = await openSqliteStore({ file: freshFile() });
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.users.getById('x')).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
