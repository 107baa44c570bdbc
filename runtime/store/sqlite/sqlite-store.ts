import { closeSync, mkdirSync, openSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  ConcurrentUpdateError,
  CredentialExistsError,
  KeyExistsError,
  NotFoundError,
  StoreError,
  StoreUnavailableError,
  TokenUnusableError,
  UserExistsError,
  UsernameTakenError,
} from '../errors.js';
import type {
  AuditEvent,
  AuditStore,
  Challenge,
  ChallengeStore,
  CredentialStore,
  EnrollmentPurpose,
  EnrollmentToken,
  EnrollmentTokenStore,
  PasskeyCredential,
  Session,
  SessionStore,
  SigningKey,
  SigningKeyStore,
  Store,
  User,
  UserStore,
} from '../types.js';
import { migrate } from './migrations.js';

export interface SqliteStoreOptions {
  /** Path of the database file, or ':memory:' for a throwaway store. */
  readonly file: string;
  /** How long a writer waits for another connection's lock before failing. @default 5000 */
  readonly busyTimeoutMs?: number;
}

/** Page sizes: callers may ask for less, never for more, so one request cannot read the whole table. */
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/**
 * Opens (creating if needed) the SQLite store. The file holds sessions and sealed keys, so a
 * new directory is created 0700 and the file 0600 before SQLite ever touches it.
 */
export function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  try {
    return Promise.resolve(new SqliteStore(openDatabase(options)));
  } catch (err) {
    return Promise.reject(toStoreError(err));
  }
}

function openDatabase(options: SqliteStoreOptions): Database.Database {
  const inMemory = options.file === ':memory:';
  if (!inMemory) {
    mkdirSync(dirname(options.file), { recursive: true, mode: 0o700 });
    // Create the file ourselves so it is never briefly world-readable under a loose umask.
    closeSync(openSync(options.file, 'a', 0o600));
    chmodSync(options.file, 0o600);
  }
  const db = new Database(options.file);
  try {
    if (!inMemory) db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
    // NORMAL is durable across application crashes in WAL mode; only power loss can drop the last commits.
    db.pragma('synchronous = NORMAL');
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly users: UserStore;
  readonly credentials: CredentialStore;
  readonly challenges: ChallengeStore;
  readonly sessions: SessionStore;
  readonly enrollmentTokens: EnrollmentTokenStore;
  readonly signingKeys: SigningKeyStore;
  readonly audit: AuditStore;
  private readonly sweep: (now: number) => void;
  private readonly pingStatement: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.users = new SqliteUserStore(db);
    this.credentials = new SqliteCredentialStore(db);
    this.challenges = new SqliteChallengeStore(db);
    this.sessions = new SqliteSessionStore(db);
    this.enrollmentTokens = new SqliteEnrollmentTokenStore(db);
    this.signingKeys = new SqliteSigningKeyStore(db);
    this.audit = new SqliteAuditStore(db);
    this.pingStatement = db.prepare('SELECT 1');
    const sweepChallenges = db.prepare('DELETE FROM challenges WHERE expires_at <= ?');
    const sweepSessions = db.prepare('DELETE FROM sessions WHERE absolute_expires_at <= ?');
    const sweepTokens = db.prepare('DELETE FROM enrollment_tokens WHERE expires_at <= ?');
    this.sweep = db.transaction((now: number) => {
      sweepChallenges.run(now);
      sweepSessions.run(now);
      sweepTokens.run(now);
    });
  }

  ping(): Promise<void> {
    return run(() => {
      this.pingStatement.get();
    });
  }

  sweepExpired(now: number): Promise<void> {
    return run(() => this.sweep(now));
  }

  close(): Promise<void> {
    return run(() => {
      if (this.db.open) {
        // Folds the WAL back into the main file so a closed store is a single file again.
        this.db.pragma('wal_checkpoint(TRUNCATE)');
        this.db.close();
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Users

interface UserRow {
  id: string;
  username: string;
  display_name: string;
  groups_json: string;
  is_admin: number;
  disabled: number;
  created_at: number;
  updated_at: number;
}

function userFromRow(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    groups: JSON.parse(row.groups_json) as string[],
    isAdmin: row.is_admin === 1,
    disabled: row.disabled === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

class SqliteUserStore implements UserStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly byUsername: Database.Statement;
  private readonly updateStatement: Database.Statement;
  private readonly firstPage: Database.Statement;
  private readonly nextPage: Database.Statement;
  private readonly any: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO users (id, username, display_name, groups_json, is_admin, disabled, created_at, updated_at)
       VALUES (@id, @username, @displayName, @groups, @isAdmin, @disabled, @createdAt, @updatedAt)`,
    );
    this.byId = db.prepare('SELECT * FROM users WHERE id = ?');
    this.byUsername = db.prepare('SELECT * FROM users WHERE username = ?');
    this.updateStatement = db.prepare(
      `UPDATE users SET display_name = @displayName, groups_json = @groups, is_admin = @isAdmin,
         disabled = @disabled, updated_at = @updatedAt
       WHERE id = @id`,
    );
    this.firstPage = db.prepare('SELECT * FROM users ORDER BY username LIMIT ?');
    this.nextPage = db.prepare('SELECT * FROM users WHERE username > ? ORDER BY username LIMIT ?');
    this.any = db.prepare('SELECT 1 FROM users LIMIT 1');
  }

  create(user: User): Promise<void> {
    return run(() => {
      try {
        this.insert.run(userParams(user));
      } catch (err) {
        if (isConstraint(err, 'users.username')) throw new UsernameTakenError(user.username);
        if (isConstraint(err, 'users.id')) throw new UserExistsError(user.id);
        throw err;
      }
    });
  }

  getById(id: string): Promise<User | undefined> {
    return run(() => mapRow(this.byId.get(id) as UserRow | undefined, userFromRow));
  }

  getByUsername(username: string): Promise<User | undefined> {
    return run(() => mapRow(this.byUsername.get(username) as UserRow | undefined, userFromRow));
  }

  update(user: User): Promise<void> {
    return run(() => {
      if (this.updateStatement.run(userParams(user)).changes === 0) throw new NotFoundError('user', user.id);
    });
  }

  list(opts: { limit?: number; cursor?: string } = {}): Promise<{ users: User[]; cursor?: string }> {
    return run(() => {
      const limit = pageSize(opts.limit);
      // One extra row tells whether another page exists without a second query.
      const rows = (
        opts.cursor === undefined
          ? this.firstPage.all(limit + 1)
          : this.nextPage.all(decodeUserCursor(opts.cursor), limit + 1)
      ) as UserRow[];
      const users = rows.slice(0, limit).map(userFromRow);
      const last = users[users.length - 1];
      return rows.length > limit && last ? { users, cursor: encodeUserCursor(last.username) } : { users };
    });
  }

  hasAny(): Promise<boolean> {
    return run(() => this.any.get() !== undefined);
  }
}

function userParams(user: User): Record<string, unknown> {
  return {
    id: user.id,
    username: user.username,
    displayName: user.displayName,
    groups: JSON.stringify(user.groups),
    isAdmin: user.isAdmin ? 1 : 0,
    disabled: user.disabled ? 1 : 0,
    createdAt: user.createdAt,
    updatedAt: user.updatedAt,
  };
}

/** The cursor is the last username of the page; encoded so callers treat it as opaque. */
function encodeUserCursor(username: string): string {
  return Buffer.from(username, 'utf8').toString('base64url');
}

function decodeUserCursor(cursor: string): string {
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// Passkey credentials

interface CredentialRow {
  id: string;
  user_id: string;
  public_key: Buffer;
  counter: number;
  transports_json: string;
  device_type: string;
  backed_up: number;
  aaguid: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

function credentialFromRow(row: CredentialRow): PasskeyCredential {
  return {
    id: row.id,
    userId: row.user_id,
    // A plain Uint8Array copy: callers compare bytes, and a Buffer view would pin the driver's memory.
    publicKey: new Uint8Array(row.public_key),
    counter: row.counter,
    transports: JSON.parse(row.transports_json) as string[],
    deviceType: row.device_type === 'multiDevice' ? 'multiDevice' : 'singleDevice',
    backedUp: row.backed_up === 1,
    aaguid: row.aaguid,
    name: row.name,
    createdAt: row.created_at,
    ...(row.last_used_at === null ? {} : { lastUsedAt: row.last_used_at }),
  };
}

class SqliteCredentialStore implements CredentialStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly byUser: Database.Statement;
  private readonly compareAndSetCounter: Database.Statement;
  private readonly exists: Database.Statement;
  private readonly renameStatement: Database.Statement;
  private readonly deleteStatement: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO credentials (id, user_id, public_key, counter, transports_json, device_type, backed_up,
         aaguid, name, created_at, last_used_at)
       VALUES (@id, @userId, @publicKey, @counter, @transports, @deviceType, @backedUp,
         @aaguid, @name, @createdAt, @lastUsedAt)`,
    );
    this.byId = db.prepare('SELECT * FROM credentials WHERE id = ?');
    this.byUser = db.prepare('SELECT * FROM credentials WHERE user_id = ? ORDER BY created_at, id');
    this.compareAndSetCounter = db.prepare(
      'UPDATE credentials SET counter = @counter, last_used_at = @lastUsedAt WHERE id = @id AND counter = @expectedCounter',
    );
    this.exists = db.prepare('SELECT 1 FROM credentials WHERE id = ?');
    this.renameStatement = db.prepare('UPDATE credentials SET name = ? WHERE id = ?');
    this.deleteStatement = db.prepare('DELETE FROM credentials WHERE id = ?');
  }

  create(credential: PasskeyCredential): Promise<void> {
    return run(() => {
      try {
        this.insert.run({
          id: credential.id,
          userId: credential.userId,
          publicKey: Buffer.from(credential.publicKey.buffer, credential.publicKey.byteOffset, credential.publicKey.byteLength),
          counter: credential.counter,
          transports: JSON.stringify(credential.transports),
          deviceType: credential.deviceType,
          backedUp: credential.backedUp ? 1 : 0,
          aaguid: credential.aaguid,
          name: credential.name,
          createdAt: credential.createdAt,
          lastUsedAt: credential.lastUsedAt ?? null,
        });
      } catch (err) {
        if (isConstraint(err, 'credentials.id')) throw new CredentialExistsError(credential.id);
        throw err;
      }
    });
  }

  get(id: string): Promise<PasskeyCredential | undefined> {
    return run(() => mapRow(this.byId.get(id) as CredentialRow | undefined, credentialFromRow));
  }

  listByUser(userId: string): Promise<PasskeyCredential[]> {
    return run(() => (this.byUser.all(userId) as CredentialRow[]).map(credentialFromRow));
  }

  recordUse(id: string, update: { expectedCounter: number; counter: number; lastUsedAt: number }): Promise<void> {
    return run(() => {
      const { changes } = this.compareAndSetCounter.run({ id, ...update });
      if (changes === 1) return;
      if (this.exists.get(id) === undefined) throw new NotFoundError('credential', id);
      throw new ConcurrentUpdateError('credential', id);
    });
  }

  rename(id: string, name: string): Promise<void> {
    return run(() => {
      if (this.renameStatement.run(name, id).changes === 0) throw new NotFoundError('credential', id);
    });
  }

  delete(id: string): Promise<void> {
    return run(() => {
      this.deleteStatement.run(id);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Challenges

interface ChallengeRow {
  challenge: string;
  ceremony: string;
  subject: string;
  created_at: number;
  expires_at: number;
  data: string | null;
}

function challengeFromRow(row: ChallengeRow): Challenge {
  return {
    challenge: row.challenge,
    ceremony: row.ceremony === 'registration' ? 'registration' : 'authentication',
    subject: row.subject,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    ...(row.data === null ? {} : { data: row.data }),
  };
}

class SqliteChallengeStore implements ChallengeStore {
  private readonly insert: Database.Statement;
  private readonly take: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO challenges (challenge, ceremony, subject, created_at, expires_at, data)
       VALUES (@challenge, @ceremony, @subject, @createdAt, @expiresAt, @data)`,
    );
    // One statement both reads and removes, so no second reader can see the row in between.
    this.take = db.prepare('DELETE FROM challenges WHERE challenge = ? RETURNING *');
  }

  put(challenge: Challenge): Promise<void> {
    return run(() => {
      try {
        this.insert.run({ ...challenge, data: challenge.data ?? null });
      } catch (err) {
        if (isConstraint(err, 'challenges.challenge')) throw new StoreError('challenge already exists');
        throw err;
      }
    });
  }

  consume(challenge: string): Promise<Challenge | undefined> {
    return run(() => mapRow(this.take.get(challenge) as ChallengeRow | undefined, challengeFromRow));
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions

interface SessionRow {
  id: string;
  user_id: string;
  auth_methods_json: string;
  created_at: number;
  last_seen_at: number;
  absolute_expires_at: number;
  ip: string;
  user_agent: string;
}

function sessionFromRow(row: SessionRow): Session {
  return {
    id: row.id,
    userId: row.user_id,
    authMethods: JSON.parse(row.auth_methods_json) as string[],
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    absoluteExpiresAt: row.absolute_expires_at,
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

class SqliteSessionStore implements SessionStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly touchStatement: Database.Statement;
  private readonly deleteStatement: Database.Statement;
  private readonly byUser: Database.Statement;
  private readonly deleteForUser: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO sessions (id, user_id, auth_methods_json, created_at, last_seen_at, absolute_expires_at, ip, user_agent)
       VALUES (@id, @userId, @authMethods, @createdAt, @lastSeenAt, @absoluteExpiresAt, @ip, @userAgent)`,
    );
    this.byId = db.prepare('SELECT * FROM sessions WHERE id = ?');
    // The WHERE clause keeps a late, out-of-order touch from moving lastSeenAt backwards.
    this.touchStatement = db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?');
    this.deleteStatement = db.prepare('DELETE FROM sessions WHERE id = ?');
    this.byUser = db.prepare('SELECT * FROM sessions WHERE user_id = ? ORDER BY created_at, id');
    // `IS NOT` so that a NULL exceptId keeps nothing back.
    this.deleteForUser = db.prepare('DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?');
  }

  create(session: Session): Promise<void> {
    return run(() => {
      try {
        this.insert.run({ ...session, authMethods: JSON.stringify(session.authMethods) });
      } catch (err) {
        if (isConstraint(err, 'sessions.id')) throw new StoreError('session already exists');
        throw err;
      }
    });
  }

  get(id: string): Promise<Session | undefined> {
    return run(() => mapRow(this.byId.get(id) as SessionRow | undefined, sessionFromRow));
  }

  touch(id: string, lastSeenAt: number): Promise<void> {
    return run(() => {
      this.touchStatement.run(lastSeenAt, id, lastSeenAt);
    });
  }

  delete(id: string): Promise<void> {
    return run(() => {
      this.deleteStatement.run(id);
    });
  }

  listByUser(userId: string): Promise<Session[]> {
    return run(() => (this.byUser.all(userId) as SessionRow[]).map(sessionFromRow));
  }

  deleteByUser(userId: string, exceptId?: string): Promise<number> {
    return run(() => this.deleteForUser.run(userId, exceptId ?? null).changes);
  }
}

// ---------------------------------------------------------------------------------------------
// Enrollment tokens

interface TokenRow {
  id: string;
  purpose: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  created_by: string;
  used_at: number | null;
}

function tokenFromRow(row: TokenRow): EnrollmentToken {
  return {
    id: row.id,
    purpose: row.purpose === 'bootstrap-admin' ? 'bootstrap-admin' : 'enroll',
    userId: row.user_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    createdBy: row.created_by,
    ...(row.used_at === null ? {} : { usedAt: row.used_at }),
  };
}

class SqliteEnrollmentTokenStore implements EnrollmentTokenStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly markUsed: Database.Statement;
  private readonly deleteUnusedOfPurpose: Database.Statement;
  private readonly deleteUnusedOfUser: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO enrollment_tokens (id, purpose, user_id, created_at, expires_at, created_by, used_at)
       VALUES (@id, @purpose, @userId, @createdAt, @expiresAt, @createdBy, @usedAt)`,
    );
    this.byId = db.prepare('SELECT * FROM enrollment_tokens WHERE id = ?');
    // The conditions and the write are one statement, so of two concurrent consumers exactly one wins.
    this.markUsed = db.prepare(
      `UPDATE enrollment_tokens SET used_at = @now
       WHERE id = @id AND used_at IS NULL AND expires_at > @now
       RETURNING *`,
    );
    this.deleteUnusedOfPurpose = db.prepare('DELETE FROM enrollment_tokens WHERE purpose = ? AND used_at IS NULL');
    this.deleteUnusedOfUser = db.prepare(
      'DELETE FROM enrollment_tokens WHERE purpose = ? AND user_id = ? AND used_at IS NULL',
    );
  }

  create(token: EnrollmentToken): Promise<void> {
    return run(() => {
      try {
        this.insert.run({ ...token, usedAt: token.usedAt ?? null });
      } catch (err) {
        if (isConstraint(err, 'enrollment_tokens.id')) throw new StoreError('enrollment token already exists');
        throw err;
      }
    });
  }

  get(id: string): Promise<EnrollmentToken | undefined> {
    return run(() => mapRow(this.byId.get(id) as TokenRow | undefined, tokenFromRow));
  }

  consume(id: string, now: number): Promise<EnrollmentToken> {
    return run(() => {
      const row = this.markUsed.get({ id, now }) as TokenRow | undefined;
      if (row) return tokenFromRow(row);
      // The update matched nothing; a read afterwards only explains why (tokens never become usable again).
      const existing = this.byId.get(id) as TokenRow | undefined;
      if (!existing) throw new TokenUnusableError('unknown');
      if (existing.used_at !== null) throw new TokenUnusableError('used');
      throw new TokenUnusableError('expired');
    });
  }

  deleteUnused(purpose: EnrollmentPurpose, userId?: string): Promise<number> {
    return run(() =>
      userId === undefined
        ? this.deleteUnusedOfPurpose.run(purpose).changes
        : this.deleteUnusedOfUser.run(purpose, userId).changes,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Signing keys

interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: string;
  sealed_private_key: string;
  created_at: number;
  retires_at: number;
}

class SqliteSigningKeyStore implements SigningKeyStore {
  private readonly insert: Database.Statement;
  private readonly all: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private_key, created_at, retires_at)
       VALUES (@kid, @alg, @publicJwk, @sealedPrivateKey, @createdAt, @retiresAt)`,
    );
    this.all = db.prepare('SELECT * FROM signing_keys ORDER BY created_at DESC, kid DESC');
  }

  create(key: SigningKey): Promise<void> {
    return run(() => {
      try {
        this.insert.run({ ...key });
      } catch (err) {
        if (isConstraint(err, 'signing_keys.kid')) throw new KeyExistsError(key.kid);
        throw err;
      }
    });
  }

  list(): Promise<SigningKey[]> {
    return run(() =>
      (this.all.all() as SigningKeyRow[]).map((row) => ({
        kid: row.kid,
        alg: 'ES256' as const,
        publicJwk: row.public_jwk,
        sealedPrivateKey: row.sealed_private_key,
        createdAt: row.created_at,
        retiresAt: row.retires_at,
      })),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Audit log

interface AuditRow {
  id: string;
  time: number;
  type: string;
  result: string;
  user_id: string | null;
  username: string | null;
  actor: string | null;
  ip: string | null;
  user_agent: string | null;
  method: string | null;
  reason: string | null;
  details_json: string | null;
}

function auditFromRow(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    time: row.time,
    type: row.type,
    result: row.result === 'success' ? 'success' : 'failure',
    ...(row.user_id === null ? {} : { userId: row.user_id }),
    ...(row.username === null ? {} : { username: row.username }),
    ...(row.actor === null ? {} : { actor: row.actor }),
    ...(row.ip === null ? {} : { ip: row.ip }),
    ...(row.user_agent === null ? {} : { userAgent: row.user_agent }),
    ...(row.method === null ? {} : { method: row.method }),
    ...(row.reason === null ? {} : { reason: row.reason }),
    ...(row.details_json === null ? {} : { details: JSON.parse(row.details_json) as Record<string, unknown> }),
  };
}

class SqliteAuditStore implements AuditStore {
  private readonly insert: Database.Statement;
  // Four fixed statements rather than one with optional predicates, so each uses its index.
  private readonly newest: Database.Statement;
  private readonly newestBefore: Database.Statement;
  private readonly newestOfUser: Database.Statement;
  private readonly newestOfUserBefore: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO audit_events (id, time, type, result, user_id, username, actor, ip, user_agent, method, reason, details_json)
       VALUES (@id, @time, @type, @result, @userId, @username, @actor, @ip, @userAgent, @method, @reason, @details)`,
    );
    this.newest = db.prepare('SELECT * FROM audit_events ORDER BY id DESC LIMIT ?');
    this.newestBefore = db.prepare('SELECT * FROM audit_events WHERE id < ? ORDER BY id DESC LIMIT ?');
    this.newestOfUser = db.prepare('SELECT * FROM audit_events WHERE user_id = ? ORDER BY id DESC LIMIT ?');
    this.newestOfUserBefore = db.prepare(
      'SELECT * FROM audit_events WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?',
    );
  }

  append(event: AuditEvent): Promise<void> {
    return run(() => {
      try {
        this.insert.run({
          id: event.id,
          time: event.time,
          type: event.type,
          result: event.result,
          userId: event.userId ?? null,
          username: event.username ?? null,
          actor: event.actor ?? null,
          ip: event.ip ?? null,
          userAgent: event.userAgent ?? null,
          method: event.method ?? null,
          reason: event.reason ?? null,
          details: event.details === undefined ? null : JSON.stringify(event.details),
        });
      } catch (err) {
        if (isConstraint(err, 'audit_events.id')) throw new StoreError(`audit event ${event.id} already exists`);
        throw err;
      }
    });
  }

  list(opts: { limit?: number; before?: string; userId?: string } = {}): Promise<AuditEvent[]> {
    return run(() => {
      const limit = pageSize(opts.limit);
      const { before, userId } = opts;
      const rows = (
        userId === undefined
          ? before === undefined
            ? this.newest.all(limit)
            : this.newestBefore.all(before, limit)
          : before === undefined
            ? this.newestOfUser.all(userId, limit)
            : this.newestOfUserBefore.all(userId, before, limit)
      ) as AuditRow[];
      return rows.map(auditFromRow);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function pageSize(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_PAGE;
  return Math.min(MAX_PAGE, Math.max(1, Math.trunc(limit)));
}

function mapRow<R, T>(row: R | undefined, map: (row: R) => T): T | undefined {
  return row === undefined ? undefined : map(row);
}

/** True for a UNIQUE / PRIMARY KEY violation on `table.column` (the driver names the column in the message). */
function isConstraint(err: unknown, column: string): boolean {
  if (!(err instanceof Database.SqliteError)) return false;
  if (err.code !== 'SQLITE_CONSTRAINT_UNIQUE' && err.code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') return false;
  return err.message.includes(column);
}

/**
 * Runs a synchronous driver call behind the async contract. Named store errors pass through;
 * anything else (busy, I/O, closed database) becomes StoreUnavailableError so callers fail closed.
 */
function run<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (err) {
    return Promise.reject(toStoreError(err));
  }
}

function toStoreError(err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`SQLite store failed: ${detail}`, { cause: err });
}
