import { closeSync, mkdirSync, openSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  CertificateAuthorityExistsError,
  CertificateExistsError,
  CertificateLimitError,
  ConcurrentUpdateError,
  CredentialExistsError,
  DownloadLinkUnusableError,
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
  CertificateAuthorityRecord,
  CertificateAuthorityStore,
  CertificateDelivery,
  CertificateDeliveryStore,
  CertificateDownloadLink,
  CertificateOwner,
  Challenge,
  ChallengeStore,
  ClientCertificate,
  ClientCertificateStore,
  CredentialStore,
  EnrollmentPurpose,
  EnrollmentToken,
  EnrollmentTokenStore,
  LoginThrottle,
  LoginThrottleStore,
  PasskeyCredential,
  RecoveryCode,
  RecoveryCodeSet,
  RecoveryCodeStore,
  RevocationReason,
  RevokedCertificateEntry,
  Session,
  SessionPasskey,
  SessionStore,
  SigningKey,
  SigningKeyStore,
  Store,
  TotpSecret,
  TotpStore,
  User,
  UserStore,
  DocumentStore,
  DocumentWrite,
  StoredDocument,
} from '../types.js';
import { checkDocumentKey, checkDocumentWrite, decodeDocumentCursor, encodeDocumentCursor } from '../documents.js';
import { certificateOwnerKey, purposeOf, requireStep, requireWindow, revocationReasonOf } from '../records.js';
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
  readonly totp: TotpStore;
  readonly recoveryCodes: RecoveryCodeStore;
  readonly loginThrottle: LoginThrottleStore;
  readonly certificateAuthorities: CertificateAuthorityStore;
  readonly clientCertificates: ClientCertificateStore;
  readonly certificateDeliveries: CertificateDeliveryStore;
  readonly documents: DocumentStore;
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
    this.totp = new SqliteTotpStore(db);
    this.recoveryCodes = new SqliteRecoveryCodeStore(db);
    this.loginThrottle = new SqliteLoginThrottleStore(db);
    this.certificateAuthorities = new SqliteCertificateAuthorityStore(db);
    this.clientCertificates = new SqliteClientCertificateStore(db);
    this.certificateDeliveries = new SqliteCertificateDeliveryStore(db);
    this.documents = new SqliteDocumentStore(db);
    this.pingStatement = db.prepare('SELECT 1');
    const sweepChallenges = db.prepare('DELETE FROM challenges WHERE expires_at <= ?');
    const sweepSessions = db.prepare('DELETE FROM sessions WHERE absolute_expires_at <= ?');
    const sweepTokens = db.prepare('DELETE FROM enrollment_tokens WHERE expires_at <= ?');
    const sweepTotpSteps = db.prepare('DELETE FROM totp_used_steps WHERE expires_at <= ?');
    // A locked record's expires_at is at least its lock end, so a live lock is never swept.
    const sweepThrottles = db.prepare('DELETE FROM login_throttles WHERE expires_at <= ?');
    const sweepDeliveries = db.prepare('DELETE FROM certificate_deliveries WHERE expires_at <= ?');
    const sweepDownloadLinks = db.prepare('DELETE FROM certificate_download_links WHERE expires_at <= ?');
    const sweepDocuments = db.prepare('DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?');
    this.sweep = db.transaction((now: number) => {
      sweepDeliveries.run(now);
      sweepDownloadLinks.run(now);
      sweepChallenges.run(now);
      sweepSessions.run(now);
      sweepTokens.run(now);
      sweepTotpSteps.run(now);
      sweepThrottles.run(now);
      sweepDocuments.run(now);
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
  attestation_format: string | null;
  attestation_trusted: number | null;
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
    ...(row.attestation_format === null ? {} : { attestationFormat: row.attestation_format }),
    ...(row.attestation_trusted === null ? {} : { attestationTrusted: row.attestation_trusted === 1 }),
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
         aaguid, name, created_at, last_used_at, attestation_format, attestation_trusted)
       VALUES (@id, @userId, @publicKey, @counter, @transports, @deviceType, @backedUp,
         @aaguid, @name, @createdAt, @lastUsedAt, @attestationFormat, @attestationTrusted)`,
    );
    this.byId = db.prepare('SELECT * FROM credentials WHERE id = ?');
    this.byUser = db.prepare('SELECT * FROM credentials WHERE user_id = ? ORDER BY created_at, id');
    this.compareAndSetCounter = db.prepare(
      // A NULL backedUp leaves the stored BS flag as it is.
      `UPDATE credentials SET counter = @counter, last_used_at = @lastUsedAt, backed_up = COALESCE(@backedUp, backed_up)
       WHERE id = @id AND counter = @expectedCounter`,
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
          attestationFormat: credential.attestationFormat ?? null,
          attestationTrusted: credential.attestationTrusted === undefined ? null : credential.attestationTrusted ? 1 : 0,
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

  recordUse(
    id: string,
    update: { expectedCounter: number; counter: number; lastUsedAt: number; backedUp?: boolean },
  ): Promise<void> {
    return run(() => {
      const { changes } = this.compareAndSetCounter.run({
        id,
        expectedCounter: update.expectedCounter,
        counter: update.counter,
        lastUsedAt: update.lastUsedAt,
        backedUp: update.backedUp === undefined ? null : update.backedUp ? 1 : 0,
      });
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
  passkey_json: string | null;
}

function sessionFromRow(row: SessionRow): Session {
  const passkey = row.passkey_json === null ? undefined : parseSessionPasskey(row.passkey_json);
  return {
    id: row.id,
    userId: row.user_id,
    authMethods: JSON.parse(row.auth_methods_json) as string[],
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    absoluteExpiresAt: row.absolute_expires_at,
    ip: row.ip,
    userAgent: row.user_agent,
    ...(passkey ? { passkey } : {}),
  };
}

/** Only the four known fields, with their types checked, so a damaged row cannot widen a session's evidence. */
function parseSessionPasskey(json: string): SessionPasskey | undefined {
  const v = JSON.parse(json) as Record<string, unknown>;
  if (typeof v.credentialId !== 'string' || typeof v.deviceBound !== 'boolean' || typeof v.aaguid !== 'string' || typeof v.attested !== 'boolean') {
    throw new StoreError('session row has a malformed passkey_json');
  }
  return { credentialId: v.credentialId, deviceBound: v.deviceBound, aaguid: v.aaguid, attested: v.attested };
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
      `INSERT INTO sessions (id, user_id, auth_methods_json, created_at, last_seen_at, absolute_expires_at, ip, user_agent, passkey_json)
       VALUES (@id, @userId, @authMethods, @createdAt, @lastSeenAt, @absoluteExpiresAt, @ip, @userAgent, @passkeyJson)`,
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
        const { passkey, ...fields } = session;
        this.insert.run({
          ...fields,
          authMethods: JSON.stringify(session.authMethods),
          passkeyJson: passkey
            ? JSON.stringify({ credentialId: passkey.credentialId, deviceBound: passkey.deviceBound, aaguid: passkey.aaguid, attested: passkey.attested })
            : null,
        });
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
  code_hash: string | null;
}

function tokenFromRow(row: TokenRow): EnrollmentToken {
  return {
    id: row.id,
    purpose: purposeOf(row.purpose),
    userId: row.user_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    createdBy: row.created_by,
    ...(row.used_at === null ? {} : { usedAt: row.used_at }),
    ...(row.code_hash === null ? {} : { codeHash: row.code_hash }),
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
      `INSERT INTO enrollment_tokens (id, purpose, user_id, created_at, expires_at, created_by, used_at, code_hash)
       VALUES (@id, @purpose, @userId, @createdAt, @expiresAt, @createdBy, @usedAt, @codeHash)`,
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
        this.insert.run({
          id: token.id,
          purpose: token.purpose,
          userId: token.userId,
          createdAt: token.createdAt,
          expiresAt: token.expiresAt,
          createdBy: token.createdBy,
          usedAt: token.usedAt ?? null,
          codeHash: token.codeHash ?? null,
        });
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
// TOTP secrets and used time steps

interface TotpRow {
  user_id: string;
  sealed_secret: string;
  confirmed: number;
  created_at: number;
  confirmed_at: number | null;
}

function totpFromRow(row: TotpRow): TotpSecret {
  return {
    userId: row.user_id,
    sealedSecret: row.sealed_secret,
    confirmed: row.confirmed === 1,
    createdAt: row.created_at,
    ...(row.confirmed_at === null ? {} : { confirmedAt: row.confirmed_at }),
  };
}

class SqliteTotpStore implements TotpStore {
  private readonly upsert: Database.Statement;
  private readonly byUser: Database.Statement;
  private readonly confirmStatement: Database.Statement;
  private readonly deleteStatement: Database.Statement;
  private readonly claim: Database.Statement;

  constructor(db: Database.Database) {
    // A full replacement, so re-enrollment never inherits the old secret's confirmation.
    this.upsert = db.prepare(
      `INSERT INTO totp_secrets (user_id, sealed_secret, confirmed, created_at, confirmed_at)
       VALUES (@userId, @sealedSecret, @confirmed, @createdAt, @confirmedAt)
       ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, confirmed = excluded.confirmed,
         created_at = excluded.created_at, confirmed_at = excluded.confirmed_at`,
    );
    this.byUser = db.prepare('SELECT * FROM totp_secrets WHERE user_id = ?');
    this.confirmStatement = db.prepare(
      'UPDATE totp_secrets SET confirmed = 1, confirmed_at = COALESCE(confirmed_at, @at) WHERE user_id = @userId',
    );
    this.deleteStatement = db.prepare('DELETE FROM totp_secrets WHERE user_id = ?');
    // RFC 6238 §5.2: the insert either creates the mark or does nothing; `changes` tells which,
    // in one statement, so two processes on the same file cannot both see a fresh step.
    this.claim = db.prepare(
      'INSERT INTO totp_used_steps (user_id, step, expires_at) VALUES (?, ?, ?) ON CONFLICT (user_id, step) DO NOTHING',
    );
  }

  put(secret: TotpSecret): Promise<void> {
    return run(() => {
      this.upsert.run({
        userId: secret.userId,
        sealedSecret: secret.sealedSecret,
        confirmed: secret.confirmed ? 1 : 0,
        createdAt: secret.createdAt,
        confirmedAt: secret.confirmedAt ?? null,
      });
    });
  }

  get(userId: string): Promise<TotpSecret | undefined> {
    return run(() => mapRow(this.byUser.get(userId) as TotpRow | undefined, totpFromRow));
  }

  confirm(userId: string, at: number): Promise<void> {
    return run(() => {
      if (this.confirmStatement.run({ userId, at }).changes === 0) throw new NotFoundError('totp secret', userId);
    });
  }

  delete(userId: string): Promise<void> {
    return run(() => {
      this.deleteStatement.run(userId);
    });
  }

  claimStep(userId: string, step: number, expiresAt: number): Promise<boolean> {
    return run(() => {
      requireStep(step);
      return this.claim.run(userId, step, expiresAt).changes === 1;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery codes

interface RecoverySetRow {
  user_id: string;
  set_id: string;
  created_at: number;
}

interface RecoveryCodeRow {
  idx: number;
  hash: string;
  used_at: number | null;
}

class SqliteRecoveryCodeStore implements RecoveryCodeStore {
  private readonly replaceSet: Database.Transaction<(set: RecoveryCodeSet) => void>;
  private readonly readSet: Database.Transaction<(userId: string) => RecoveryCodeSet | undefined>;
  private readonly deleteSet: Database.Transaction<(userId: string) => void>;
  private readonly mark: Database.Statement;

  constructor(db: Database.Database) {
    const deleteCodes = db.prepare('DELETE FROM recovery_codes WHERE user_id = ?');
    const deleteSetRow = db.prepare('DELETE FROM recovery_code_sets WHERE user_id = ?');
    const insertSet = db.prepare(
      'INSERT INTO recovery_code_sets (user_id, set_id, created_at) VALUES (@userId, @setId, @createdAt)',
    );
    const insertCode = db.prepare(
      'INSERT INTO recovery_codes (user_id, idx, hash, used_at) VALUES (@userId, @idx, @hash, @usedAt)',
    );
    const setOf = db.prepare('SELECT * FROM recovery_code_sets WHERE user_id = ?');
    const codesOf = db.prepare('SELECT idx, hash, used_at FROM recovery_codes WHERE user_id = ? ORDER BY idx');

    // Old codes and the new set change together: no reader ever sees a mix of two sets.
    this.replaceSet = db.transaction((set: RecoveryCodeSet) => {
      deleteCodes.run(set.userId);
      deleteSetRow.run(set.userId);
      insertSet.run({ userId: set.userId, setId: set.setId, createdAt: set.createdAt });
      set.codes.forEach((code, idx) => {
        insertCode.run({ userId: set.userId, idx, hash: code.hash, usedAt: code.usedAt ?? null });
      });
    });
    // One read transaction, so the set id and the codes come from the same set.
    this.readSet = db.transaction((userId: string) => {
      const row = setOf.get(userId) as RecoverySetRow | undefined;
      if (!row) return undefined;
      const codes = (codesOf.all(userId) as RecoveryCodeRow[]).map(
        (code): RecoveryCode => (code.used_at === null ? { hash: code.hash } : { hash: code.hash, usedAt: code.used_at }),
      );
      return { userId: row.user_id, setId: row.set_id, codes, createdAt: row.created_at };
    });
    this.deleteSet = db.transaction((userId: string) => {
      deleteCodes.run(userId);
      deleteSetRow.run(userId);
    });
    // The set id check and the write are one statement: a code of a replaced set matches nothing,
    // and of two concurrent uses of one code exactly one finds used_at still NULL.
    this.mark = db.prepare(
      `UPDATE recovery_codes SET used_at = @at
       WHERE user_id = @userId AND idx = @index AND used_at IS NULL
         AND EXISTS (SELECT 1 FROM recovery_code_sets WHERE user_id = @userId AND set_id = @setId)`,
    );
  }

  replace(set: RecoveryCodeSet): Promise<void> {
    // IMMEDIATE takes the write lock up front, so a concurrent writer waits instead of failing mid-way.
    return run(() => this.replaceSet.immediate(set));
  }

  get(userId: string): Promise<RecoveryCodeSet | undefined> {
    return run(() => this.readSet.deferred(userId));
  }

  markUsed(userId: string, setId: string, index: number, at: number): Promise<boolean> {
    return run(() => {
      if (!Number.isSafeInteger(index) || index < 0) return false;
      return this.mark.run({ userId, setId, index, at }).changes === 1;
    });
  }

  delete(userId: string): Promise<void> {
    return run(() => this.deleteSet.immediate(userId));
  }
}

// ---------------------------------------------------------------------------------------------
// Login throttles

interface ThrottleRow {
  key: string;
  failures: number;
  window_started_at: number;
  window_ends_at: number;
  locked_until: number | null;
  expires_at: number;
}

function throttleFromRow(row: ThrottleRow): LoginThrottle {
  return {
    key: row.key,
    failures: row.failures,
    windowStartedAt: row.window_started_at,
    ...(row.locked_until === null ? {} : { lockedUntil: row.locked_until }),
    expiresAt: row.expires_at,
  };
}

class SqliteLoginThrottleStore implements LoginThrottleStore {
  private readonly countFailure: Database.Statement;
  private readonly byKey: Database.Statement;
  private readonly lockStatement: Database.Statement;
  private readonly deleteStatement: Database.Statement;
  private readonly locked: Database.Statement;

  constructor(db: Database.Database) {
    // One statement decides "same window or new one" and writes, so concurrent failures from
    // several processes serialise on the row and none is lost. In an UPDATE every right-hand
    // side sees the old row, so each CASE tests the stored window, not a half-updated one.
    this.countFailure = db.prepare(
      `INSERT INTO login_throttles (key, failures, window_started_at, window_ends_at, locked_until, expires_at)
       VALUES (@key, 1, @now, @windowEnd, NULL, @windowEnd)
       ON CONFLICT (key) DO UPDATE SET
         failures = CASE WHEN window_started_at < @cutoff THEN 1 ELSE failures + 1 END,
         window_started_at = CASE WHEN window_started_at < @cutoff THEN @now ELSE window_started_at END,
         window_ends_at = CASE WHEN window_started_at < @cutoff THEN @windowEnd ELSE window_ends_at END,
         expires_at = CASE WHEN window_started_at < @cutoff THEN MAX(@windowEnd, COALESCE(locked_until, 0)) ELSE expires_at END
       RETURNING *`,
    );
    this.byKey = db.prepare('SELECT * FROM login_throttles WHERE key = ?');
    this.lockStatement = db.prepare(
      `INSERT INTO login_throttles (key, failures, window_started_at, window_ends_at, locked_until, expires_at)
       VALUES (@key, 0, 0, 0, @until, @until)
       ON CONFLICT (key) DO UPDATE SET locked_until = @until, expires_at = MAX(window_ends_at, @until)`,
    );
    this.deleteStatement = db.prepare('DELETE FROM login_throttles WHERE key = ?');
    // substr rather than LIKE, so '%' and '_' in a prefix (an IPv6 zone, say) match literally.
    this.locked = db.prepare(
      `SELECT * FROM login_throttles
       WHERE locked_until > @now AND substr(key, 1, length(@prefix)) = @prefix
       ORDER BY key`,
    );
  }

  recordFailure(key: string, now: number, windowMs: number): Promise<LoginThrottle> {
    return run(() => {
      const window = requireWindow(windowMs);
      const row = this.countFailure.get({ key, now, windowEnd: now + window, cutoff: now - window }) as ThrottleRow;
      return throttleFromRow(row);
    });
  }

  get(key: string): Promise<LoginThrottle | undefined> {
    return run(() => mapRow(this.byKey.get(key) as ThrottleRow | undefined, throttleFromRow));
  }

  lock(key: string, until: number): Promise<void> {
    return run(() => {
      this.lockStatement.run({ key, until });
    });
  }

  clear(key: string): Promise<void> {
    return run(() => {
      this.deleteStatement.run(key);
    });
  }

  listLocked(prefix: string, now: number): Promise<LoginThrottle[]> {
    return run(() => (this.locked.all({ prefix, now }) as ThrottleRow[]).map(throttleFromRow));
  }
}

// ---------------------------------------------------------------------------------------------
// Client certificates: the CA, issued certificates, pending PKCS#12 deliveries, download links

interface CaRow {
  id: string;
  certificate: Buffer;
  sealed_private_key: string;
  created_at: number;
}

class SqliteCertificateAuthorityStore implements CertificateAuthorityStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      'INSERT INTO certificate_authorities (id, certificate, sealed_private_key, created_at) VALUES (@id, @certificate, @sealedPrivateKey, @createdAt)',
    );
    this.byId = db.prepare('SELECT * FROM certificate_authorities WHERE id = ?');
  }

  create(ca: CertificateAuthorityRecord): Promise<void> {
    return run(() => {
      try {
        this.insert.run({ id: ca.id, certificate: toBuffer(ca.certificateDer), sealedPrivateKey: ca.sealedPrivateKey, createdAt: ca.createdAt });
      } catch (err) {
        // The primary key decides the race between two processes on one file: one insert wins.
        if (isConstraint(err, 'certificate_authorities.id')) throw new CertificateAuthorityExistsError(ca.id);
        throw err;
      }
    });
  }

  get(id: string): Promise<CertificateAuthorityRecord | undefined> {
    return run(() =>
      mapRow(this.byId.get(id) as CaRow | undefined, (row) => ({
        id: row.id,
        certificateDer: new Uint8Array(row.certificate),
        sealedPrivateKey: row.sealed_private_key,
        createdAt: row.created_at,
      })),
    );
  }
}

interface ClientCertificateRow {
  serial: string;
  fingerprint: string;
  owner_key: string;
  device_label: string;
  key_type: string;
  certificate: Buffer;
  issued_at: number;
  expires_at: number;
  issued_by: string;
  status: string;
  revoked_at: number | null;
  revocation_reason: string | null;
  deleted_at: number | null;
  renewal_of: string | null;
}

function certificateOwnerOf(key: string): CertificateOwner {
  if (key.startsWith('user:')) return { kind: 'user', userId: key.slice(5) };
  if (key.startsWith('shared:')) return { kind: 'shared', label: key.slice(7) };
  throw new StoreError(`client certificate row has a malformed owner ${JSON.stringify(key)}`);
}

function clientCertificateFromRow(row: ClientCertificateRow): ClientCertificate {
  // Unknown states read as 'revoked', never as 'active': a damaged row must not admit anyone.
  const status = row.status === 'active' || row.status === 'deleted' ? row.status : 'revoked';
  return {
    serial: row.serial,
    fingerprint: row.fingerprint,
    owner: certificateOwnerOf(row.owner_key),
    deviceLabel: row.device_label,
    keyType: row.key_type === 'rsa-2048' ? 'rsa-2048' : 'ec-p256',
    certificateDer: new Uint8Array(row.certificate),
    issuedAt: row.issued_at,
    expiresAt: row.expires_at,
    issuedBy: row.issued_by,
    status,
    ...(row.revoked_at === null ? {} : { revokedAt: row.revoked_at }),
    ...(row.revocation_reason === null ? {} : { revocationReason: revocationReasonOf(row.revocation_reason) }),
    ...(row.deleted_at === null ? {} : { deletedAt: row.deleted_at }),
    ...(row.renewal_of === null ? {} : { renewalOf: row.renewal_of }),
  };
}

class SqliteClientCertificateStore implements ClientCertificateStore {
  private readonly insert: Database.Transaction<(certificate: ClientCertificate, limit?: { maxActive: number; now: number }) => void>;
  private readonly bySerial: Database.Statement;
  private readonly byOwner: Database.Statement;
  private readonly shared: Database.Statement;
  private readonly revokeTx: Database.Transaction<(serial: string, at: number, reason: RevocationReason) => { certificate: ClientCertificate; changed: boolean }>;
  private readonly deleteTx: Database.Transaction<(serial: string, at: number) => { certificate: ClientCertificate; changed: boolean }>;
  private readonly revoked: Database.Statement;
  private readonly expiring: Database.Statement;

  constructor(db: Database.Database) {
    const insertRow = db.prepare(
      `INSERT INTO client_certificates (serial, fingerprint, owner_key, device_label, key_type, certificate, issued_at,
         expires_at, issued_by, status, revoked_at, revocation_reason, deleted_at, renewal_of)
       VALUES (@serial, @fingerprint, @ownerKey, @deviceLabel, @keyType, @certificate, @issuedAt,
         @expiresAt, @issuedBy, 'active', NULL, NULL, NULL, @renewalOf)`,
    );
    const countActive = db.prepare(
      "SELECT COUNT(*) AS n FROM client_certificates WHERE owner_key = ? AND status = 'active' AND expires_at > ?",
    );
    this.bySerial = db.prepare('SELECT * FROM client_certificates WHERE serial = ?');
    this.byOwner = db.prepare('SELECT * FROM client_certificates WHERE owner_key = ? ORDER BY issued_at, serial');
    // A range on the owner column rather than LIKE, so the index is used (';' follows ':').
    this.shared = db.prepare(
      "SELECT * FROM client_certificates WHERE owner_key >= 'shared:' AND owner_key < 'shared;' ORDER BY owner_key, issued_at, serial",
    );
    const setRevoked = db.prepare(
      "UPDATE client_certificates SET status = 'revoked', revoked_at = @at, revocation_reason = @reason WHERE serial = @serial AND status = 'active'",
    );
    // An active certificate is revoked as it is deleted: a deleted certificate must stay refused.
    const setDeleted = db.prepare(
      `UPDATE client_certificates SET status = 'deleted', deleted_at = @at,
         revoked_at = COALESCE(revoked_at, @at), revocation_reason = COALESCE(revocation_reason, 'cessationOfOperation')
       WHERE serial = @serial AND status != 'deleted'`,
    );
    this.revoked = db.prepare(
      'SELECT serial, revoked_at, revocation_reason, expires_at FROM client_certificates WHERE revoked_at IS NOT NULL ORDER BY serial',
    );
    this.expiring = db.prepare(
      "SELECT * FROM client_certificates WHERE status = 'active' AND expires_at > ? AND expires_at <= ? ORDER BY expires_at, serial",
    );

    // Count and insert in one IMMEDIATE transaction: two processes issuing for one owner
    // serialise on the write lock, so the limit holds.
    this.insert = db.transaction((certificate: ClientCertificate, limit?: { maxActive: number; now: number }) => {
      const ownerKey = certificateOwnerKey(certificate.owner);
      if (limit) {
        const { n } = countActive.get(ownerKey, limit.now) as { n: number };
        if (n >= limit.maxActive) throw new CertificateLimitError(ownerKey, limit.maxActive);
      }
      try {
        insertRow.run({
          serial: certificate.serial,
          fingerprint: certificate.fingerprint,
          ownerKey,
          deviceLabel: certificate.deviceLabel,
          keyType: certificate.keyType,
          certificate: toBuffer(certificate.certificateDer),
          issuedAt: certificate.issuedAt,
          expiresAt: certificate.expiresAt,
          issuedBy: certificate.issuedBy,
          renewalOf: certificate.renewalOf ?? null,
        });
      } catch (err) {
        if (isConstraint(err, 'client_certificates.serial')) throw new CertificateExistsError(certificate.serial);
        throw err;
      }
    });
    const current = (serial: string): ClientCertificate => {
      const row = this.bySerial.get(serial) as ClientCertificateRow | undefined;
      if (!row) throw new NotFoundError('client certificate', serial);
      return clientCertificateFromRow(row);
    };
    this.revokeTx = db.transaction((serial: string, at: number, reason: RevocationReason) => {
      const changed = setRevoked.run({ serial, at, reason }).changes === 1;
      return { certificate: current(serial), changed };
    });
    this.deleteTx = db.transaction((serial: string, at: number) => {
      const changed = setDeleted.run({ serial, at }).changes === 1;
      return { certificate: current(serial), changed };
    });
  }

  create(certificate: ClientCertificate, limit?: { maxActive: number; now: number }): Promise<void> {
    return run(() => this.insert.immediate(certificate, limit));
  }

  get(serial: string): Promise<ClientCertificate | undefined> {
    return run(() => mapRow(this.bySerial.get(serial) as ClientCertificateRow | undefined, clientCertificateFromRow));
  }

  listByOwner(owner: CertificateOwner): Promise<ClientCertificate[]> {
    return run(() => (this.byOwner.all(certificateOwnerKey(owner)) as ClientCertificateRow[]).map(clientCertificateFromRow));
  }

  listShared(): Promise<ClientCertificate[]> {
    return run(() => (this.shared.all() as ClientCertificateRow[]).map(clientCertificateFromRow));
  }

  revoke(serial: string, at: number, reason: RevocationReason): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    return run(() => this.revokeTx.immediate(serial, at, reason));
  }

  markDeleted(serial: string, at: number): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    return run(() => this.deleteTx.immediate(serial, at));
  }

  listRevoked(): Promise<RevokedCertificateEntry[]> {
    return run(() =>
      (this.revoked.all() as Pick<ClientCertificateRow, 'serial' | 'revoked_at' | 'revocation_reason' | 'expires_at'>[]).map((row) => ({
        serial: row.serial,
        revokedAt: row.revoked_at ?? 0,
        reason: revocationReasonOf(row.revocation_reason ?? 'unspecified'),
        expiresAt: row.expires_at,
      })),
    );
  }

  listExpiring(after: number, until: number): Promise<ClientCertificate[]> {
    return run(() => (this.expiring.all(after, until) as ClientCertificateRow[]).map(clientCertificateFromRow));
  }
}

interface DeliveryRow {
  serial: string;
  sealed_pkcs12: string;
  file_name: string;
  max_downloads: number;
  downloads: number;
  created_at: number;
  expires_at: number;
}

function deliveryFromRow(row: DeliveryRow): CertificateDelivery {
  return {
    serial: row.serial,
    sealedPkcs12: row.sealed_pkcs12,
    fileName: row.file_name,
    maxDownloads: row.max_downloads,
    downloads: row.downloads,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

interface DownloadLinkRow {
  id: string;
  serial: string;
  created_at: number;
  expires_at: number;
  created_by: string;
  used_at: number | null;
}

function downloadLinkFromRow(row: DownloadLinkRow): CertificateDownloadLink {
  return {
    id: row.id,
    serial: row.serial,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    createdBy: row.created_by,
    ...(row.used_at === null ? {} : { usedAt: row.used_at }),
  };
}

class SqliteCertificateDeliveryStore implements CertificateDeliveryStore {
  private readonly insert: Database.Statement;
  private readonly bySerial: Database.Statement;
  private readonly claim: Database.Transaction<(serial: string, now: number) => CertificateDelivery | undefined>;
  private readonly deleteStatement: Database.Statement;
  private readonly insertLink: Database.Statement;
  private readonly useLink: Database.Statement;
  private readonly linkById: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO certificate_deliveries (serial, sealed_pkcs12, file_name, max_downloads, downloads, created_at, expires_at)
       VALUES (@serial, @sealedPkcs12, @fileName, @maxDownloads, @downloads, @createdAt, @expiresAt)`,
    );
    this.bySerial = db.prepare('SELECT * FROM certificate_deliveries WHERE serial = ?');
    // The limit, the expiry and the count are one statement, so concurrent downloads never
    // exceed maxDownloads; the last one also removes the file in the same transaction.
    const count = db.prepare(
      `UPDATE certificate_deliveries SET downloads = downloads + 1
       WHERE serial = @serial AND downloads < max_downloads AND expires_at > @now
       RETURNING *`,
    );
    this.deleteStatement = db.prepare('DELETE FROM certificate_deliveries WHERE serial = ?');
    const deleteSpent = this.deleteStatement;
    this.claim = db.transaction((serial: string, now: number) => {
      const row = count.get({ serial, now }) as DeliveryRow | undefined;
      if (!row) return undefined;
      if (row.downloads >= row.max_downloads) deleteSpent.run(serial);
      return deliveryFromRow(row);
    });
    this.insertLink = db.prepare(
      `INSERT INTO certificate_download_links (id, serial, created_at, expires_at, created_by, used_at)
       VALUES (@id, @serial, @createdAt, @expiresAt, @createdBy, @usedAt)`,
    );
    this.useLink = db.prepare(
      `UPDATE certificate_download_links SET used_at = @now
       WHERE id = @id AND used_at IS NULL AND expires_at > @now
       RETURNING *`,
    );
    this.linkById = db.prepare('SELECT * FROM certificate_download_links WHERE id = ?');
  }

  create(delivery: CertificateDelivery): Promise<void> {
    return run(() => {
      try {
        this.insert.run({ ...delivery });
      } catch (err) {
        if (isConstraint(err, 'certificate_deliveries.serial')) throw new StoreError(`a delivery for certificate ${delivery.serial} already exists`);
        throw err;
      }
    });
  }

  get(serial: string): Promise<CertificateDelivery | undefined> {
    return run(() => mapRow(this.bySerial.get(serial) as DeliveryRow | undefined, deliveryFromRow));
  }

  claimDownload(serial: string, now: number): Promise<CertificateDelivery | undefined> {
    return run(() => this.claim.immediate(serial, now));
  }

  delete(serial: string): Promise<void> {
    return run(() => {
      this.deleteStatement.run(serial);
    });
  }

  createLink(link: CertificateDownloadLink): Promise<void> {
    return run(() => {
      try {
        this.insertLink.run({ ...link, usedAt: link.usedAt ?? null });
      } catch (err) {
        if (isConstraint(err, 'certificate_download_links.id')) throw new StoreError('download link already exists');
        throw err;
      }
    });
  }

  consumeLink(id: string, now: number): Promise<CertificateDownloadLink> {
    return run(() => {
      const row = this.useLink.get({ id, now }) as DownloadLinkRow | undefined;
      if (row) return downloadLinkFromRow(row);
      // Refused; a read names the reason (a link never becomes usable again).
      const existing = this.linkById.get(id) as DownloadLinkRow | undefined;
      if (!existing) throw new DownloadLinkUnusableError('unknown');
      if (existing.used_at !== null) throw new DownloadLinkUnusableError('used');
      throw new DownloadLinkUnusableError('expired');
    });
  }
}

/** A Buffer view of the same bytes, for the driver's BLOB binding. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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

// ---------------------------------------------------------------------------------------------
// Named documents

interface DocumentRow {
  kind: string;
  id: string;
  body: string;
  version: number;
  updated_at: number;
  expires_at: number | null;
}

function documentFromRow(row: DocumentRow): StoredDocument {
  return {
    kind: row.kind,
    id: row.id,
    body: row.body,
    version: row.version,
    updatedAt: row.updated_at,
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
  };
}

const isLive = (row: DocumentRow, now: number): boolean => row.expires_at === null || row.expires_at > now;

class SqliteDocumentStore implements DocumentStore {
  private readonly select: Database.Statement;
  private readonly upsert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly page: Database.Statement;
  private readonly write: (doc: DocumentWrite, now: number, expectedVersion: number | undefined) => StoredDocument;

  constructor(db: Database.Database) {
    this.select = db.prepare('SELECT * FROM documents WHERE kind = ? AND id = ?');
    this.upsert = db.prepare(
      `INSERT INTO documents (kind, id, body, version, updated_at, expires_at)
       VALUES (@kind, @id, @body, @version, @updatedAt, @expiresAt)
       ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, version = excluded.version,
         updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
    );
    this.remove = db.prepare('DELETE FROM documents WHERE kind = ? AND id = ?');
    // Ids from `after` on, filtered by prefix with substr (LIKE would treat % and _ in ids as wildcards).
    this.page = db.prepare(
      `SELECT * FROM documents
       WHERE kind = @kind AND id > @after AND substr(id, 1, length(@prefix)) = @prefix
         AND (expires_at IS NULL OR expires_at > @now)
       ORDER BY id LIMIT @limit`,
    );
    // One immediate transaction: the version check and the write cannot interleave with another writer.
    const write = db.transaction((doc: DocumentWrite, now: number, expectedVersion: number | undefined): StoredDocument => {
      const current = this.select.get(doc.kind, doc.id) as DocumentRow | undefined;
      const live = current && isLive(current, now) ? current : undefined;
      if (expectedVersion !== undefined && (live?.version ?? 0) !== expectedVersion) {
        throw new ConcurrentUpdateError('document', `${doc.kind}/${doc.id}`);
      }
      const stored: StoredDocument = {
        kind: doc.kind,
        id: doc.id,
        body: doc.body,
        version: (live?.version ?? 0) + 1,
        updatedAt: now,
        ...(doc.expiresAt === undefined ? {} : { expiresAt: doc.expiresAt }),
      };
      this.upsert.run({ ...stored, expiresAt: doc.expiresAt ?? null });
      return stored;
    });
    this.write = write.immediate;
  }

  get(kind: string, id: string, now: number): Promise<StoredDocument | undefined> {
    return run(() => {
      checkDocumentKey(kind, id);
      const row = this.select.get(kind, id) as DocumentRow | undefined;
      return row && isLive(row, now) ? documentFromRow(row) : undefined;
    });
  }

  put(doc: DocumentWrite, opts: { readonly now: number; readonly expectedVersion?: number }): Promise<StoredDocument> {
    return run(() => {
      checkDocumentWrite(doc, opts.expectedVersion);
      return this.write(doc, opts.now, opts.expectedVersion);
    });
  }

  delete(kind: string, id: string, expectedVersion?: number): Promise<boolean> {
    return run(() => {
      checkDocumentKey(kind, id);
      if (expectedVersion === undefined) return this.remove.run(kind, id).changes > 0;
      const row = this.select.get(kind, id) as DocumentRow | undefined;
      if (!row || row.version !== expectedVersion) throw new ConcurrentUpdateError('document', `${kind}/${id}`);
      return this.remove.run(kind, id).changes > 0;
    });
  }

  list(
    kind: string,
    opts: { readonly now: number; readonly prefix?: string; readonly limit?: number; readonly cursor?: string },
  ): Promise<{ documents: StoredDocument[]; cursor?: string }> {
    return run(() => {
      checkDocumentKey(kind, 'x');
      const limit = pageSize(opts.limit);
      const after = decodeDocumentCursor(opts.cursor) ?? '';
      const rows = this.page.all({ kind, after, prefix: opts.prefix ?? '', now: opts.now, limit: limit + 1 }) as DocumentRow[];
      const more = rows.length > limit;
      const documents = rows.slice(0, limit).map(documentFromRow);
      return more ? { documents, cursor: encodeDocumentCursor(documents[documents.length - 1]!.id) } : { documents };
    });
  }
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
