import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { SessionService } from '../../../runtime/services/sessions.js';
import { UserService } from '../../../runtime/services/users.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store, User } from '../../../runtime/store/types.js';

let store: Store;
let clock = 1_800_000_000_000;
const now = () => clock;
let users: UserService;
let sessions: SessionService;
let user: User;
const ctx = { ip: '192.0.2.1', userAgent: 'test' };

beforeAll(async () => {
  store = await openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'kanmon-sess-')), 'k.db') });
  const audit = new AuditLog(store, pino({ level: 'silent' }), now);
  users = new UserService(store, audit, now);
  const config = parseConfig({ session: { idleTimeoutSeconds: 600, absoluteTimeoutSeconds: 3600, cacheSeconds: 5 } });
  sessions = new SessionService(store, config.session, audit, now);
  user = await users.addUser({ username: 'alice' });
});
afterAll(async () => store?.close());

describe('SessionService', () => {
  it('stores only the digest of the cookie value', async () => {
    const s = await sessions.start(user, ['passkey'], ctx);
    expect(await store.sessions.get(s.token)).toBeUndefined();
    expect(await store.sessions.get(s.session.id)).toBeDefined();
  });

  it('expires after the idle timeout without activity', async () => {
    const s = await sessions.start(user, ['passkey'], ctx);
    clock += 599_000;
    expect(await sessions.resolve(s.token)).toBeDefined();
    clock += 599_000; // activity above kept it alive
    expect(await sessions.resolve(s.token)).toBeDefined();
    clock += 601_000;
    expect(await sessions.resolve(s.token)).toBeUndefined();
  });

  it('expires at the absolute timeout even with activity', async () => {
    const s = await sessions.start(user, ['passkey'], ctx);
    for (let i = 0; i < 8; i++) {
      clock += 500_000;
      await sessions.resolve(s.token);
    }
    expect(clock - s.session.createdAt).toBeGreaterThan(3_600_000);
    expect(await sessions.resolve(s.token)).toBeUndefined();
  });

  it('persists activity so another node sees it (touch)', async () => {
    const s = await sessions.start(user, ['passkey'], ctx);
    clock += 120_000;
    await sessions.resolve(s.token);
    await new Promise((r) => setTimeout(r, 20));
    expect((await store.sessions.get(s.session.id))!.lastSeenAt).toBe(clock);
  });

  it('serves from the cache within the bound and re-reads the store after it', async () => {
    const s = await sessions.start(user, ['passkey'], ctx);
    await store.sessions.delete(s.session.id); // revoked by another node
    expect(await sessions.resolve(s.token)).toBeDefined(); // still cached
    clock += 5_000;
    expect(await sessions.resolve(s.token)).toBeUndefined();
  });

  it('keeps the cache bounded', async () => {
    const small = new SessionService(store, parseConfig({ session: { cacheMaxEntries: 100 } }).session, new AuditLog(store, pino({ level: 'silent' }), now), now);
    for (let i = 0; i < 150; i++) await small.start(user, ['passkey'], ctx);
    expect((small as unknown as { cache: Map<string, unknown> }).cache.size).toBe(100);
  });

  it('ignores tokens of the wrong shape without touching the store', async () => {
    for (const t of ['', 'short', 'x'.repeat(44), '../../', 'A'.repeat(42) + '=']) expect(await sessions.resolve(t)).toBeUndefined();
  });
});
