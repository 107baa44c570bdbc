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
}

export interface CredentialStore {
  /** @throws CredentialExistsError when the id exists (for any user). */
  create(credential: PasskeyCredential): Promise<void>;
  get(id: string): Promise<PasskeyCredential | undefined>;
  listByUser(userId: string): Promise<PasskeyCredential[]>;
  /**
   * Compare-and-set of the signature counter: succeeds only if the stored counter still
   * equals `expectedCounter`, so two concurrent assertions cannot both pass.
   * @throws ConcurrentUpdateError when the stored counter differs; NotFoundError when gone.
   */
  recordUse(id: string, update: { expectedCounter: number; counter: number; lastUsedAt: number }): Promise<void>;
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

export type EnrollmentPurpose = 'bootstrap-admin' | 'enroll';

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

export interface Store {
  readonly kind: 'sqlite' | 'dynamodb';
  readonly users: UserStore;
  readonly credentials: CredentialStore;
  readonly challenges: ChallengeStore;
  readonly sessions: SessionStore;
  readonly enrollmentTokens: EnrollmentTokenStore;
  readonly signingKeys: SigningKeyStore;
  readonly audit: AuditStore;
  /** A cheap round trip, for readiness. */
  ping(): Promise<void>;
  /**
   * Deletes expired challenges, sessions and tokens. SQLite runs this on a timer; DynamoDB's
   * TTL does the work there, so its implementation may do nothing. Readers never rely on it:
   * every read path checks expiry itself.
   */
  sweepExpired(now: number): Promise<void>;
  close(): Promise<void>;
}
