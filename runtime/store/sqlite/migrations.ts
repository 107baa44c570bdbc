import type Database from 'better-sqlite3';

/**
 * Versioned schema for the SQLite store. The version lives in PRAGMA user_version, so an
 * existing file is upgraded in place by running only the migrations it has not seen.
 * Never edit a released migration; append a new one.
 */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema',
    sql: `
      CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        display_name  TEXT NOT NULL,
        groups_json   TEXT NOT NULL,
        is_admin      INTEGER NOT NULL,
        disabled      INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
      ) STRICT;

      -- No foreign key to users: the DynamoDB store cannot enforce one, and both stores
      -- must behave the same under the conformance suite.
      CREATE TABLE credentials (
        id               TEXT PRIMARY KEY,
        user_id          TEXT NOT NULL,
        public_key       BLOB NOT NULL,
        counter          INTEGER NOT NULL,
        transports_json  TEXT NOT NULL,
        device_type      TEXT NOT NULL,
        backed_up        INTEGER NOT NULL,
        aaguid           TEXT NOT NULL,
        name             TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        last_used_at     INTEGER
      ) STRICT;
      CREATE INDEX credentials_by_user ON credentials (user_id, created_at);

      CREATE TABLE challenges (
        challenge   TEXT PRIMARY KEY,
        ceremony    TEXT NOT NULL,
        subject     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        data        TEXT
      ) STRICT;
      CREATE INDEX challenges_by_expiry ON challenges (expires_at);

      CREATE TABLE sessions (
        id                   TEXT PRIMARY KEY,
        user_id              TEXT NOT NULL,
        auth_methods_json    TEXT NOT NULL,
        created_at           INTEGER NOT NULL,
        last_seen_at         INTEGER NOT NULL,
        absolute_expires_at  INTEGER NOT NULL,
        ip                   TEXT NOT NULL,
        user_agent           TEXT NOT NULL
      ) STRICT;
      CREATE INDEX sessions_by_user ON sessions (user_id, created_at);
      CREATE INDEX sessions_by_expiry ON sessions (absolute_expires_at);

      CREATE TABLE enrollment_tokens (
        id          TEXT PRIMARY KEY,
        purpose     TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        used_at     INTEGER
      ) STRICT;
      CREATE INDEX enrollment_tokens_by_purpose ON enrollment_tokens (purpose, user_id);
      CREATE INDEX enrollment_tokens_by_expiry ON enrollment_tokens (expires_at);

      CREATE TABLE signing_keys (
        kid                 TEXT PRIMARY KEY,
        alg                 TEXT NOT NULL,
        public_jwk          TEXT NOT NULL,
        sealed_private_key  TEXT NOT NULL,
        created_at          INTEGER NOT NULL,
        retires_at          INTEGER NOT NULL
      ) STRICT;

      -- The id is time-sortable, so ORDER BY id is time order and doubles as the paging key.
      CREATE TABLE audit_events (
        id            TEXT PRIMARY KEY,
        time          INTEGER NOT NULL,
        type          TEXT NOT NULL,
        result        TEXT NOT NULL,
        user_id       TEXT,
        username      TEXT,
        actor         TEXT,
        ip            TEXT,
        user_agent    TEXT,
        method        TEXT,
        reason        TEXT,
        details_json  TEXT
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX audit_events_by_user ON audit_events (user_id, id);
    `,
  },
  {
    version: 2,
    description: 'fallback factors and login protection: TOTP, recovery codes, login throttles, attestation and enrollment codes',
    sql: `
      -- Nullable, so rows written before this version stay valid and read back without the fields.
      ALTER TABLE credentials ADD COLUMN attestation_format TEXT;
      ALTER TABLE credentials ADD COLUMN attestation_trusted INTEGER;
      ALTER TABLE enrollment_tokens ADD COLUMN code_hash TEXT;

      CREATE TABLE totp_secrets (
        user_id        TEXT PRIMARY KEY,
        sealed_secret  TEXT NOT NULL,
        confirmed      INTEGER NOT NULL,
        created_at     INTEGER NOT NULL,
        confirmed_at   INTEGER
      ) STRICT;

      -- RFC 6238 §5.2: one row per (user, time step) already accepted; the primary key makes a
      -- second claim of the same step fail inside SQLite, whichever process tries it.
      CREATE TABLE totp_used_steps (
        user_id     TEXT NOT NULL,
        step        INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (user_id, step)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX totp_used_steps_by_expiry ON totp_used_steps (expires_at);

      CREATE TABLE recovery_code_sets (
        user_id     TEXT PRIMARY KEY,
        set_id      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
      ) STRICT;

      -- One row per code, so marking one used is a single conditional UPDATE.
      CREATE TABLE recovery_codes (
        user_id  TEXT NOT NULL,
        idx      INTEGER NOT NULL,
        hash     TEXT NOT NULL,
        used_at  INTEGER,
        PRIMARY KEY (user_id, idx)
      ) STRICT, WITHOUT ROWID;

      -- window_ends_at is kept (not exposed) so that expires_at can always be recomputed as the
      -- later of window end and lock end, whatever order lock and recordFailure run in.
      CREATE TABLE login_throttles (
        key                TEXT PRIMARY KEY,
        failures           INTEGER NOT NULL,
        window_started_at  INTEGER NOT NULL,
        window_ends_at     INTEGER NOT NULL,
        locked_until       INTEGER,
        expires_at         INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX login_throttles_by_lock ON login_throttles (locked_until) WHERE locked_until IS NOT NULL;
      CREATE INDEX login_throttles_by_expiry ON login_throttles (expires_at);
    `,
  },
  {
    version: 3,
    description: 'device evidence in sessions: the passkey that signed the session in',
    sql: `
      -- JSON {credentialId, deviceBound, aaguid, attested}; nullable, so sessions started before
      -- this version (or by other factors) read back without it.
      ALTER TABLE sessions ADD COLUMN passkey_json TEXT;
    `,
  },
  {
    version: 4,
    description: 'client certificates: the CA, issued certificates, pending PKCS#12 deliveries and download links',
    sql: `
      CREATE TABLE certificate_authorities (
        id                  TEXT PRIMARY KEY,
        certificate         BLOB NOT NULL,
        sealed_private_key  TEXT NOT NULL,
        created_at          INTEGER NOT NULL
      ) STRICT;

      -- owner_key is 'user:<userId>' or 'shared:<label>'; status is active, revoked or deleted.
      CREATE TABLE client_certificates (
        serial             TEXT PRIMARY KEY,
        fingerprint        TEXT NOT NULL,
        owner_key          TEXT NOT NULL,
        device_label       TEXT NOT NULL,
        key_type           TEXT NOT NULL,
        certificate        BLOB NOT NULL,
        issued_at          INTEGER NOT NULL,
        expires_at         INTEGER NOT NULL,
        issued_by          TEXT NOT NULL,
        status             TEXT NOT NULL,
        revoked_at         INTEGER,
        revocation_reason  TEXT,
        deleted_at         INTEGER,
        renewal_of         TEXT
      ) STRICT;
      CREATE INDEX client_certificates_by_owner ON client_certificates (owner_key, issued_at);
      CREATE INDEX client_certificates_active_by_expiry ON client_certificates (expires_at) WHERE status = 'active';
      CREATE INDEX client_certificates_revoked ON client_certificates (serial) WHERE revoked_at IS NOT NULL;

      CREATE TABLE certificate_deliveries (
        serial         TEXT PRIMARY KEY,
        sealed_pkcs12  TEXT NOT NULL,
        file_name      TEXT NOT NULL,
        max_downloads  INTEGER NOT NULL,
        downloads      INTEGER NOT NULL,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX certificate_deliveries_by_expiry ON certificate_deliveries (expires_at);

      CREATE TABLE certificate_download_links (
        id          TEXT PRIMARY KEY,
        serial      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        used_at     INTEGER
      ) STRICT;
      CREATE INDEX certificate_download_links_by_expiry ON certificate_download_links (expires_at);
    `,
  },
  {
    version: 5,
    description: 'named documents: small versioned state read by name (leases, ACME, credentials, config)',
    sql: `
      CREATE TABLE documents (
        kind        TEXT NOT NULL,
        id          TEXT NOT NULL,
        body        TEXT NOT NULL,
        version     INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        PRIMARY KEY (kind, id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX documents_by_expiry ON documents (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
];

/** Brings the database up to the newest schema; each step commits together with its version bump. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const newest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (current > newest) {
    // A newer Kanmon wrote this file; running against it could silently lose data.
    throw new Error(`SQLite store schema version ${current} is newer than this build supports (${newest})`);
  }
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}
