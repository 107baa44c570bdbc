/**
 * The store: one interface per aggregate. Two implementations (sqlite, dynamodb) pass
 * one conformance suite (test/runtime/store/conformance.ts). Services are the only callers.
 *
 * All times are epoch milliseconds. Binary values are Uint8Array. Secrets that reach the
 * store are already sealed by a SecretBox; the store never sees plaintext keys.
 */

export interface User {
  readonly id: string;
  /** Unique, case-folded at creation (lower-case NFKC). */
  readonly username: string;
  readonly displayName: string;
  readonly groups: readonly string[];
  readonly isAdmin: boolean;
  readonly disabled: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface UserStore {
  /** @throws UsernameTakenError when the username exists; UserExistsError when the id exists. */
  create(user: User): Promise<void>;
  getById(id: string): Promise<User | undefined>;
  getByUsername(username: string): Promise<User | undefined>;
  /** Replaces every mutable field (not id, not username). @throws NotFoundError */
  update(user: User): Promise<void>;
  /** Ordered by username; `cursor` is opaque and comes from the previous page. */
  list(opts?: { limit?: number; cursor?: string }): Promise<{ users: User[]; cursor?: string }>;
  /** True when at least one user exists; never a scan. */
  hasAny(): Promise<boolean>;
}

export type CredentialDeviceType = 'singleDevice' | 'multiDevice';

export interface PasskeyCredential {
  /** base64url credential id, unique across all users. */
  readonly id: string;
  readonly userId: string;
  /** COSE public key bytes. */
  readonly publicKey: Uint8Array;
  readonly counter: number;
  readonly transports: readonly string[];
  /** From the BE flag: multiDevice means backup eligible (synced passkey). */
  readonly deviceType: CredentialDeviceType;
  /** From the BS flag. */
  readonly backedUp: boolean;
  readonly aaguid: string;
  readonly name: string;
  readonly createdAt: number;
  readonly lastUsedAt?: number;
  /** The attestation statement format at registration ('none', 'packed', 'tpm', …), when one was sent. */
  readonly attestationFormat?: string;
  /**
   * True when the attestation verified and chained to a trusted root, so the AAGUID can be
   * believed (AAGUID allowlists); absent or false means the AAGUID is only the client's claim.
   */
  readonly attestationTrusted?: boolean;
}

export interface CredentialStore {
  /** @throws CredentialExistsError when the id exists (for any user). */
  create(credential: PasskeyCredential): Promise<void>;
  get(id: string): Promise<PasskeyCredential | undefined>;
  listByUser(userId: string): Promise<PasskeyCredential[]>;
  /**
   * Compare-and-set of the signature counter: succeeds only if the stored counter still
   * equals `expectedCounter`, so two concurrent assertions cannot both pass.
   * `backedUp` (the BS flag of this assertion) is stored when given: unlike BE, it may change
   * after registration, e.g. when a platform starts syncing the passkey.
   * @throws ConcurrentUpdateError when the stored counter differs; NotFoundError when gone.
   */
  recordUse(
    id: string,
    update: { expectedCounter: number; counter: number; lastUsedAt: number; backedUp?: boolean },
  ): Promise<void>;
  /** @throws NotFoundError */
  rename(id: string, name: string): Promise<void>;
  /** Idempotent. */
  delete(id: string): Promise<void>;
}

export type Ceremony = 'registration' | 'authentication';

export interface Challenge {
  /** The base64url challenge as the browser echoes it in clientDataJSON. */
  readonly challenge: string;
  readonly ceremony: Ceremony;
  /** What the challenge is bound to: a user id, an enrollment token id, or '' for usernameless login. */
  readonly subject: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** Small ceremony data (e.g. the username chosen at bootstrap), JSON. */
  readonly data?: string;
}

export interface ChallengeStore {
  put(challenge: Challenge): Promise<void>;
  /**
   * Atomically removes and returns the challenge, whether or not it expired, so that it
   * can never be used twice; callers check ceremony, subject and expiry.
   */
  consume(challenge: string): Promise<Challenge | undefined>;
}

export interface Session {
  /** SHA-256 (base64url) of the cookie value; the raw value is never stored. */
  readonly id: string;
  readonly userId: string;
  /** Methods used at login, e.g. ['passkey']. */
  readonly authMethods: readonly string[];
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly absoluteExpiresAt: number;
  readonly ip: string;
  readonly userAgent: string;
  /**
   * The passkey that proved the 'passkey' factor of this session, when one did: the evidence
   * device-bound and AAGUID-allowlist policies are checked against. Absent for sessions started
   * by other factors, and for sessions written before this field existed (which then never
   * satisfy a device-bound rule).
   */
  readonly passkey?: SessionPasskey;
}

/** What a session remembers of the passkey that signed it in. */
export interface SessionPasskey {
  readonly credentialId: string;
  /** BE = 0 at registration (WebAuthn §6.1.3): the private key cannot leave the authenticator. */
  readonly deviceBound: boolean;
  readonly aaguid: string;
  /** The credential's attestation verified and chained to a trusted root, so the AAGUID is proven. */
  readonly attested: boolean;
}

export interface SessionStore {
  create(session: Session): Promise<void>;
  get(id: string): Promise<Session | undefined>;
  /** Moves lastSeenAt forward (never back). Missing sessions are ignored. */
  touch(id: string, lastSeenAt: number): Promise<void>;
  /** Idempotent. */
  delete(id: string): Promise<void>;
  listByUser(userId: string): Promise<Session[]>;
  /** Deletes every session of the user except `exceptId`; returns how many were deleted. */
  deleteByUser(userId: string, exceptId?: string): Promise<number>;
}

/**
 * - bootstrap-admin: the first administrator, created at enrollment;
 * - enroll: an existing user adds a factor;
 * - recovery: admin-issued, for a user who lost every factor, to enroll again.
 */
export type EnrollmentPurpose = 'bootstrap-admin' | 'enroll' | 'recovery';

export interface EnrollmentToken {
  /** SHA-256 (base64url) of the token in the link. */
  readonly id: string;
  readonly purpose: EnrollmentPurpose;
  /** The user to enroll; '' for bootstrap-admin, whose user is created at enrollment. */
  readonly userId: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly createdBy: string;
  readonly usedAt?: number;
  /**
   * SHA-256 of a one-time code delivered on a second channel (the letter is the first), when
   * the link demands one. Stored and returned as-is; the service compares it.
   */
  readonly codeHash?: string;
}

export interface EnrollmentTokenStore {
  create(token: EnrollmentToken): Promise<void>;
  get(id: string): Promise<EnrollmentToken | undefined>;
  /**
   * Atomically marks the token used if it is unused and unexpired at `now`.
   * @throws TokenUnusableError with reason 'unknown' | 'used' | 'expired'
   */
  consume(id: string, now: number): Promise<EnrollmentToken>;
  /** Deletes unused tokens of a purpose (and user, when given); returns how many. */
  deleteUnused(purpose: EnrollmentPurpose, userId?: string): Promise<number>;
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'ES256';
  /** Public JWK as JSON text. */
  readonly publicJwk: string;
  /** PKCS#8 private key, sealed by the SecretBox. */
  readonly sealedPrivateKey: string;
  readonly createdAt: number;
  /** After this the key only verifies (stays in JWKS) and is not used to sign. */
  readonly retiresAt: number;
}

export interface SigningKeyStore {
  /** @throws KeyExistsError when the kid exists. */
  create(key: SigningKey): Promise<void>;
  /** Every key, newest first. The set is small (a few per year). */
  list(): Promise<SigningKey[]>;
}

export type AuditResult = 'success' | 'failure';

export interface AuditEvent {
  /** Time-sortable unique id (see runtime/store/ids.ts). */
  readonly id: string;
  readonly time: number;
  /** e.g. 'login', 'enroll', 'credential.add', 'session.revoke', 'admin.user.add' */
  readonly type: string;
  readonly result: AuditResult;
  readonly userId?: string;
  readonly username?: string;
  /** Who did it, when not the user themselves (an admin, 'cli'). */
  readonly actor?: string;
  readonly ip?: string;
  readonly userAgent?: string;
  /** The method used, e.g. 'passkey'. */
  readonly method?: string;
  /** Machine-readable reason for failures, e.g. 'challenge-replayed'. */
  readonly reason?: string;
  /** Small JSON-serialisable details. */
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface AuditStore {
  append(event: AuditEvent): Promise<void>;
  /** Newest first. `before` is an event id (exclusive). */
  list(opts?: { limit?: number; before?: string; userId?: string }): Promise<AuditEvent[]>;
}

/** A user's TOTP secret (RFC 6238), sealed by the SecretBox with context `totp:<userId>`. */
export interface TotpSecret {
  readonly userId: string;
  readonly sealedSecret: string;
  /** False until the user proved the app works by entering a valid code. */
  readonly confirmed: boolean;
  readonly createdAt: number;
  readonly confirmedAt?: number;
}

export interface TotpStore {
  /** Creates or replaces the user's secret (re-enrollment starts unconfirmed). */
  put(secret: TotpSecret): Promise<void>;
  get(userId: string): Promise<TotpSecret | undefined>;
  /**
   * Marks the secret confirmed. A second confirm keeps the first confirmedAt.
   * @throws NotFoundError
   */
  confirm(userId: string, at: number): Promise<void>;
  /** Idempotent. */
  delete(userId: string): Promise<void>;
  /**
   * RFC 6238 §5.2: a code is accepted at most once. Atomically records that (userId, step) was
   * used and returns true; returns false when it already was, even across nodes. The mark may
   * be forgotten after expiresAt (TTL).
   */
  claimStep(userId: string, step: number, expiresAt: number): Promise<boolean>;
}

export interface RecoveryCode {
  /** A slow hash (scrypt, with its own salt and parameters) of the code; never the code. */
  readonly hash: string;
  readonly usedAt?: number;
}

export interface RecoveryCodeSet {
  readonly userId: string;
  /** Changes on every regeneration, so a code of an old set can never be marked used. */
  readonly setId: string;
  readonly codes: readonly RecoveryCode[];
  readonly createdAt: number;
}

export interface RecoveryCodeStore {
  /** Replaces the user's set (the old codes stop working). */
  replace(set: RecoveryCodeSet): Promise<void>;
  get(userId: string): Promise<RecoveryCodeSet | undefined>;
  /** Atomically marks codes[index] of set `setId` used; false when already used or the set was replaced. */
  markUsed(userId: string, setId: string, index: number, at: number): Promise<boolean>;
  /** Idempotent. */
  delete(userId: string): Promise<void>;
}

/** Failed-login bookkeeping for one key: 'user:<username>' (the typed username, normalized, so unknown names lock like real ones) or 'ip:<address>'. */
export interface LoginThrottle {
  readonly key: string;
  readonly failures: number;
  readonly windowStartedAt: number;
  readonly lockedUntil?: number;
  /** When the record may be forgotten (TTL): the later of window end and lock end. */
  readonly expiresAt: number;
}

export interface LoginThrottleStore {
  /**
   * Atomically counts one failure. When the stored window started more than windowMs before
   * `now` (or there is no record), the window restarts at `now` with 1 failure. Concurrent
   * calls on two nodes never lose a count. Returns the record after the update.
   * A restart keeps lockedUntil: a lock ends by its time or by clear(), never by a new window.
   */
  recordFailure(key: string, now: number, windowMs: number): Promise<LoginThrottle>;
  get(key: string): Promise<LoginThrottle | undefined>;
  /**
   * Sets lockedUntil (keeps the failure count). A key with no record gets one with no failures
   * and no current window (windowStartedAt 0), so a lock always takes effect.
   */
  lock(key: string, until: number): Promise<void>;
  /** Forgets the key entirely (successful login, or an administrator's unlock). Idempotent. */
  clear(key: string): Promise<void>;
  /**
   * Keys locked at `now` (lockedUntil > now) whose key starts with `prefix` (e.g. 'user:'),
   * ordered by key, for the console; never a table scan on DynamoDB (gsi1 holds locked records
   * in one fixed partition, and may trail a lock by a moment).
   */
  listLocked(prefix: string, now: number): Promise<LoginThrottle[]>;
}

/**
 * Kanmon's own CA for TLS client certificates. One record per installation (id 'default'); its
 * private key (PKCS#8) is sealed by the SecretBox and never stored or logged in the clear.
 */
export interface CertificateAuthorityRecord {
  readonly id: string;
  /** The self-signed CA certificate, DER. */
  readonly certificateDer: Uint8Array;
  /** PKCS#8 private key, sealed by the SecretBox with context 'ca-key'. */
  readonly sealedPrivateKey: string;
  readonly createdAt: number;
}

export interface CertificateAuthorityStore {
  /**
   * Stores the CA only if no CA with this id exists, so of two nodes creating one at the same
   * moment exactly one wins; the other re-reads and adopts the winner's.
   * @throws CertificateAuthorityExistsError when the id exists.
   */
  create(ca: CertificateAuthorityRecord): Promise<void>;
  get(id: string): Promise<CertificateAuthorityRecord | undefined>;
}

/** Whom a client certificate belongs to: a user, or a shared (kiosk, terminal) device by label. */
export type CertificateOwner =
  | { readonly kind: 'user'; readonly userId: string }
  | { readonly kind: 'shared'; readonly label: string };

export type ClientCertificateStatus = 'active' | 'revoked' | 'deleted';
export type ClientCertificateKeyType = 'ec-p256' | 'rsa-2048';
/** RFC 5280 §5.3.1 CRLReason names (the subset an administrator can choose). */
export type RevocationReason =
  | 'unspecified'
  | 'keyCompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'privilegeWithdrawn';

export interface ClientCertificate {
  /** Lower-case hex of the positive serial number, no leading zeros; unique. */
  readonly serial: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly fingerprint: string;
  readonly owner: CertificateOwner;
  readonly deviceLabel: string;
  readonly keyType: ClientCertificateKeyType;
  /** The certificate (public data only; the private key never reaches the store in the clear). */
  readonly certificateDer: Uint8Array;
  readonly issuedAt: number;
  /** notAfter. */
  readonly expiresAt: number;
  readonly issuedBy: string;
  readonly status: ClientCertificateStatus;
  /** Set for revoked certificates, and for deleted ones that were active when deleted. */
  readonly revokedAt?: number;
  readonly revocationReason?: RevocationReason;
  readonly deletedAt?: number;
  /** The serial of the certificate this one renews. */
  readonly renewalOf?: string;
}

/** What a CRL lists for one certificate (RFC 5280 §5.1.2.6). */
export interface RevokedCertificateEntry {
  readonly serial: string;
  readonly revokedAt: number;
  readonly reason: RevocationReason;
  readonly expiresAt: number;
}

export interface ClientCertificateStore {
  /**
   * Stores a new certificate with status 'active'. With `limit`, the owner may hold at most
   * `limit.maxActive` certificates that are active and unexpired at `limit.now` (this one
   * included); the check and the write are atomic, also across nodes.
   * @throws CertificateExistsError when the serial exists; CertificateLimitError over the limit.
   */
  create(certificate: ClientCertificate, limit?: { maxActive: number; now: number }): Promise<void>;
  get(serial: string): Promise<ClientCertificate | undefined>;
  /** Every certificate of the owner, whatever its status, oldest first. */
  listByOwner(owner: CertificateOwner): Promise<ClientCertificate[]>;
  /** Every shared certificate, whatever its status, ordered by label then issue time. */
  listShared(): Promise<ClientCertificate[]>;
  /**
   * Moves an active certificate to 'revoked'. Idempotent: a certificate already revoked or
   * deleted is returned as it is with changed = false.
   * @throws NotFoundError
   */
  revoke(serial: string, at: number, reason: RevocationReason): Promise<{ certificate: ClientCertificate; changed: boolean }>;
  /**
   * Marks a certificate deleted (hidden from lists; kept as a tombstone so that it is still
   * refused). An active one is revoked at the same time with reason 'cessationOfOperation'.
   * Idempotent: an already deleted one is returned with changed = false.
   * @throws NotFoundError
   */
  markDeleted(serial: string, at: number): Promise<{ certificate: ClientCertificate; changed: boolean }>;
  /** Every revocation, for the CRL, ordered by serial. */
  listRevoked(): Promise<RevokedCertificateEntry[]>;
  /** Active certificates with after < expiresAt <= until, soonest first. */
  listExpiring(after: number, until: number): Promise<ClientCertificate[]>;
}

/**
 * A PKCS#12 file waiting to be downloaded. It is built at issuance (the private key exists only
 * inside it, encrypted under a password that is shown once and never stored) and sealed again
 * by the SecretBox with context `cert-pkcs12:<serial>`; it is forgotten after its last allowed
 * download or at expiresAt (TTL).
 */
export interface CertificateDelivery {
  readonly serial: string;
  readonly sealedPkcs12: string;
  readonly fileName: string;
  readonly maxDownloads: number;
  readonly downloads: number;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** A single-use download link to a delivery. */
export interface CertificateDownloadLink {
  /** SHA-256 (base64url) of the token in the link; the token itself is never stored. */
  readonly id: string;
  readonly serial: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly createdBy: string;
  readonly usedAt?: number;
}

export interface CertificateDeliveryStore {
  /** @throws StoreError when a delivery for the serial exists. */
  create(delivery: CertificateDelivery): Promise<void>;
  get(serial: string): Promise<CertificateDelivery | undefined>;
  /**
   * Atomically counts one download if fewer than maxDownloads happened and the delivery is
   * unexpired at `now`, and returns the delivery as counted; the last allowed download also
   * removes it. Returns undefined when there is nothing (left) to download.
   */
  claimDownload(serial: string, now: number): Promise<CertificateDelivery | undefined>;
  /** Idempotent. */
  delete(serial: string): Promise<void>;
  createLink(link: CertificateDownloadLink): Promise<void>;
  /**
   * Atomically marks the link used if it is unused and unexpired at `now`.
   * @throws DownloadLinkUnusableError with reason 'unknown' | 'used' | 'expired'
   */
  consumeLink(id: string, now: number): Promise<CertificateDownloadLink>;
}

/**
 * A small named document, for state that is read by name and changed rarely: the ACME account
 * and server certificates, leases, stored upstream credentials and cookie jars, config
 * versions, settings. Bodies are text (JSON as a rule) that the caller seals first when they
 * hold secrets; the store never looks inside. Writes are optimistic: a caller that read
 * version n writes with `expectedVersion: n` and loses a race with ConcurrentUpdateError.
 */
export interface StoredDocument {
  /** The namespace, e.g. 'lease', 'acme-account'; 1-64 of [a-z0-9-]. */
  readonly kind: string;
  /** Unique within the kind; 1-512 characters, no control characters. Listing is in id order. */
  readonly id: string;
  /** At most DOCUMENT_BODY_LIMIT bytes of UTF-8. */
  readonly body: string;
  /** 1 when created, one more at every write. */
  readonly version: number;
  readonly updatedAt: number;
  /** Epoch ms; from then on the document reads as absent (and may be swept). */
  readonly expiresAt?: number;
}

/** The largest document body, in bytes: well inside DynamoDB's 400 KB item limit. */
export const DOCUMENT_BODY_LIMIT = 300 * 1024;

export interface DocumentWrite {
  readonly kind: string;
  readonly id: string;
  readonly body: string;
  readonly expiresAt?: number;
}

export interface DocumentStore {
  /** The document, unless absent or expired at `now`. */
  get(kind: string, id: string, now: number): Promise<StoredDocument | undefined>;
  /**
   * Creates or replaces a document and returns what was stored.
   * `expectedVersion`: 0 means it must not exist (an expired one counts as absent); n means it
   * must be at version n; omitted means unconditional. A mismatch throws ConcurrentUpdateError.
   */
  put(doc: DocumentWrite, opts: { readonly now: number; readonly expectedVersion?: number }): Promise<StoredDocument>;
  /** Deletes it (at `expectedVersion` when given, else ConcurrentUpdateError); false when there was nothing to delete. */
  delete(kind: string, id: string, expectedVersion?: number): Promise<boolean>;
  /** Unexpired documents of a kind in ascending id order, optionally only ids starting with `prefix`; paged by `cursor`. */
  list(
    kind: string,
    opts: { readonly now: number; readonly prefix?: string; readonly limit?: number; readonly cursor?: string },
  ): Promise<{ documents: StoredDocument[]; cursor?: string }>;
}

export interface Store {
  readonly kind: 'sqlite' | 'dynamodb';
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
  /** A cheap round trip, for readiness. */
  ping(): Promise<void>;
  /**
   * Deletes expired challenges, sessions, tokens, TOTP step marks, login-throttle records,
   * certificate deliveries, download links and documents (expiresAt <= now). SQLite runs this on a timer; DynamoDB's
   * TTL does the work there, so its implementation may do nothing. Readers never rely on it:
   * every read path checks expiry itself.
   */
  sweepExpired(now: number): Promise<void>;
  close(): Promise<void>;
}
