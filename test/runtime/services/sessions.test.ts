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

  it('hands back the activity before this request, while moving it forward in the store', async () => {
    const s = await sessions.start(user, ['passkey'], ctx);
    const started = clock;
    clock += 120_000;
    const active = await sessions.resolve(s.token);
    // A per-route idle limit needs the gap this request ended, not "now".
    expect(active!.session.lastSeenAt).toBe(started);
    await new Promise((r) => setTimeout(r, 20));
    expect((await store.sessions.get(s.session.id))!.lastSeenAt).toBe(clock);
    clock += 1_000;
    expect((await sessions.resolve(s.token))!.session.lastSeenAt).toBe(clock - 1_000);
  });

  it('records activity often enough for the tightest idle limit of any route', async () => {
    const config = parseConfig({ session: { idleTimeoutSeconds: 600, absoluteTimeoutSeconds: 3600 } });
    const audit = new AuditLog(store, pino({ level: 'silent' }), now);
    const tight = new SessionService(store, config.session, audit, now, 60);
    const s = await tight.start(user, ['passkey'], ctx);
    clock += 6_000;
    await tight.resolve(s.token);
    await new Promise((r) => setTimeout(r, 20));
    // A tenth of 60 s: the store already moved. With only the global 600 s it would not have.
    expect((await store.sessions.get(s.session.id))!.lastSeenAt).toBe(clock);
    const loose = new SessionService(store, config.session, audit, now);
    const t = await loose.start(user, ['passkey'], ctx);
    clock += 6_000;
    await loose.resolve(t.token);
    await new Promise((r) => setTimeout(r, 20));
    expect((await store.sessions.get(t.session.id))!.lastSeenAt).toBe(clock - 6_000);
  });
});

describe('SessionService: device evidence', () => {
  const securityKey = { credentialId: 'cred-key', deviceBound: true, aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8', attested: true };
  const syncedPasskey = { credentialId: 'cred-phone', deviceBound: false, aaguid: '00000000-0000-0000-0000-000000000000', attested: false };

  it("records the passkey that signed in, with RFC 8176 'hwk' for a device-bound one", async () => {
    const s = await sessions.start(user, ['passkey'], ctx, undefined, { passkey: securityKey });
    expect(s.session).toMatchObject({ authMethods: ['passkey', 'hwk'], passkey: securityKey });
    expect(await store.sessions.get(s.session.id)).toEqual(s.session);
    expect((await sessions.resolve(s.token))!.session.passkey).toEqual(securityKey);
  });

  it("marks a synced passkey 'swk'", async () => {
    const s = await sessions.start(user, ['passkey'], ctx, undefined, { passkey: syncedPasskey });
    expect(s.session).toMatchObject({ authMethods: ['passkey', 'swk'], passkey: syncedPasskey });
  });

  it('records no evidence and no key kind for other factors, and drops a key kind a caller passed without evidence', async () => {
    const s = await sessions.start(user, ['otp', 'hwk'], ctx);
    expect(s.session.authMethods).toEqual(['otp']);
    expect('passkey' in s.session).toBe(false);
    const t = await sessions.start(user, ['otp'], ctx, undefined, { passkey: securityKey });
    expect(t.session.authMethods).toEqual(['otp']);
    expect('passkey' in t.session).toBe(false);
  });

  it("carries the passkey evidence over a step-up by another factor that keeps 'passkey'", async () => {
    const first = await sessions.start(user, ['passkey'], ctx, undefined, { passkey: securityKey });
    const stepped = await sessions.start(user, ['passkey', 'hwk', 'otp'], ctx, first.token);
    expect(stepped.session).toMatchObject({ authMethods: ['passkey', 'otp', 'hwk'], passkey: securityKey });
    expect(await store.sessions.get(first.session.id)).toBeUndefined();
  });

  it("never carries another user's evidence, or evidence into a session without 'passkey'", async () => {
    const bob = await users.addUser({ username: `bob-${clock}` });
    const bobs = await sessions.start(bob, ['passkey'], ctx, undefined, { passkey: securityKey });
    const mine = await sessions.start(user, ['passkey', 'otp'], ctx, bobs.token);
    expect('passkey' in mine.session).toBe(false);
    expect(mine.session.authMethods).toEqual(['passkey', 'otp']);
    const keyed = await sessions.start(user, ['passkey'], ctx, undefined, { passkey: securityKey });
    const otpOnly = await sessions.start(user, ['otp'], ctx, keyed.token);
    expect('passkey' in otpOnly.session).toBe(false);
  });
});
