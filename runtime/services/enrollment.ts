import { createHash, randomBytes } from 'node:crypto';
import type { EnrollmentConfig, WebAuthnConfig } from '../config/schema.js';
import { passkeyRequirementFor, otpUsableFor, type PasskeyRequirement, type PolicyTable } from '../policy/user-requirements.js';
import type { EnrollmentToken, PasskeyCredential, Store, User } from '../store/types.js';
import { TokenUnusableError } from '../store/errors.js';
import { CeremonyError, startPasskeyRegistration, verifyPasskeyRegistration, type AuthenticatorMetadata } from '../webauthn/index.js';
import type { AuditLog } from './audit-log.js';
import {
  EnrollmentCodeError,
  enrollmentCodeHash,
  enrollmentCodeMatches,
  enrollmentCodeThrottleKey,
  MAX_ENROLLMENT_CODE_ATTEMPTS,
  newEnrollmentCode,
  normalizeEnrollmentCode,
} from './enrollment-codes.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';
import { normalizeUsername, type UserService } from './users.js';
import { cleanPasskeyName } from './passkey-names.js';
import { AUTHENTICATOR_CHOICES, PasskeyPolicyError, registrationPreferences, type AuthenticatorChoice } from './passkey-choice.js';

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export function enrollmentTokenId(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** The bootstrap administrator's id is derived from the token, so options and verify agree without extra state. */
function bootstrapUserId(tokenId: string): string {
  return createHash('sha256').update(`bootstrap-admin:${tokenId}`).digest('base64url').slice(0, 22);
}

export interface EnrollmentLink {
  readonly url: string;
  readonly token: string;
  readonly expiresAt: number;
  /** The one-time code the link demands, to be delivered on another channel; shown only now. */
  readonly code?: string;
}

export interface EnrollmentView {
  readonly token: EnrollmentToken;
  /** The user to enroll; undefined for the bootstrap administrator, who picks a name. */
  readonly user?: User;
  /** The link demands a one-time code before it issues registration options. */
  readonly codeRequired: boolean;
  /** Too many wrong codes: the link is unusable (the page says so). */
  readonly codeLocked: boolean;
  /** What policy demands of this user's passkeys, to offer the right authenticator choices. */
  readonly requirement: PasskeyRequirement;
  /** Some route of this user takes an authenticator app code: offer TOTP after the passkey. */
  readonly otpUsable: boolean;
}

/**
 * One-time enrollment links. The link carries a random token; the store keeps only its
 * SHA-256, so a read of the store does not yield usable links.
 */
export class EnrollmentService {
  constructor(
    private readonly deps: {
      store: Store;
      users: UserService;
      audit: AuditLog;
      rp: WebAuthnConfig;
      enrollment: EnrollmentConfig;
      publicOrigin: string;
      /** Routes and group rules: what a user's passkeys must be. @default no routes, no rules */
      policy?: PolicyTable;
      metadata?: AuthenticatorMetadata;
      now?: () => number;
    },
  ) {}

  private policy(): PolicyTable {
    return this.deps.policy ?? { routes: [], groups: {} };
  }

  private ceremonyDeps() {
    return { store: this.deps.store, rp: this.deps.rp, now: () => this.now(), ...(this.deps.metadata ? { metadata: this.deps.metadata } : {}) };
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private linkFor(token: string): string {
    return `${this.deps.publicOrigin}/.kanmon/enroll?token=${token}`;
  }

  /**
   * The first administrator's link, printed at start-up while the store has no users.
   * Earlier unused bootstrap links are invalidated, so only the latest printed one works.
   */
  async createBootstrapLink(): Promise<EnrollmentLink | undefined> {
    if (await this.deps.store.users.hasAny()) return undefined;
    await this.deps.store.enrollmentTokens.deleteUnused('bootstrap-admin');
    return this.issue('bootstrap-admin', '', 'system', this.deps.enrollment.linkTtlSeconds);
  }

  /**
   * A one-time link for an existing user. With `requireCode` (default: enrollment.requireCode)
   * the link also demands an 8-digit code, returned here once and stored only as a hash.
   */
  async createLink(username: string, opts: { ttlSeconds?: number; actor?: string; context?: RequestContext; requireCode?: boolean } = {}): Promise<EnrollmentLink> {
    const user = await this.deps.users.require(username);
    if (user.disabled) throw new ServiceError('forbidden', `user ${user.username} is disabled`);
    const ttl = opts.ttlSeconds ?? this.deps.enrollment.linkTtlSeconds;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 90 * 86400) {
      throw new ServiceError('invalid-input', `link lifetime must be 60 s to 90 days, got ${ttl}`);
    }
    const withCode = opts.requireCode ?? this.deps.enrollment.requireCode;
    const link = await this.issue('enroll', user.id, opts.actor ?? 'cli', ttl, withCode);
    await this.deps.audit.record({
      type: 'enroll.link',
      result: 'success',
      userId: user.id,
      username: user.username,
      actor: opts.actor ?? 'cli',
      context: opts.context ?? CLI_CONTEXT,
      details: { expiresAt: link.expiresAt, code: withCode },
    });
    return link;
  }

  private async issue(purpose: EnrollmentToken['purpose'], userId: string, createdBy: string, ttlSeconds: number, withCode = false): Promise<EnrollmentLink> {
    const token = randomBytes(32).toString('base64url');
    const time = this.now();
    const id = enrollmentTokenId(token);
    const code = withCode ? newEnrollmentCode() : undefined;
    const record: EnrollmentToken = {
      id,
      purpose,
      userId,
      createdAt: time,
      expiresAt: time + ttlSeconds * 1000,
      createdBy,
      ...(code ? { codeHash: enrollmentCodeHash(id, code) } : {}),
    };
    await this.deps.store.enrollmentTokens.create(record);
    return { url: this.linkFor(token), token, expiresAt: record.expiresAt, ...(code ? { code } : {}) };
  }

  /** What the enrollment page shows; throws TokenUnusableError for unknown, used or expired tokens. */
  async inspect(token: unknown): Promise<EnrollmentView> {
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) throw new TokenUnusableError('unknown');
    const record = await this.deps.store.enrollmentTokens.get(enrollmentTokenId(token));
    if (!record) throw new TokenUnusableError('unknown');
    if (record.usedAt !== undefined) throw new TokenUnusableError('used');
    if (record.expiresAt <= this.now()) throw new TokenUnusableError('expired');
    const codeRequired = record.codeHash !== undefined;
    const codeLocked = codeRequired && (await this.codeFailures(record.id)) >= MAX_ENROLLMENT_CODE_ATTEMPTS;
    if (record.purpose === 'bootstrap-admin') {
      const policyUser = { username: '', groups: [] };
      return { token: record, codeRequired, codeLocked, requirement: passkeyRequirementFor(policyUser, this.policy()), otpUsable: otpUsableFor(policyUser, this.policy()) };
    }
    const user = await this.deps.store.users.getById(record.userId);
    if (!user || user.disabled) throw new TokenUnusableError('unknown');
    return { token: record, user, codeRequired, codeLocked, requirement: passkeyRequirementFor(user, this.policy()), otpUsable: otpUsableFor(user, this.policy()) };
  }

  private async codeFailures(tokenId: string): Promise<number> {
    return (await this.deps.store.loginThrottle.get(enrollmentCodeThrottleKey(tokenId)))?.failures ?? 0;
  }

  /**
   * The second-channel check, before any options are issued. Every attempt is counted first
   * (atomically, across nodes), so parallel guesses cannot get past the limit; a right code
   * clears the count, so a user who retries the passkey prompt is not locked out by it.
   */
  private async checkCode(view: EnrollmentView, code: unknown, context: RequestContext): Promise<void> {
    const record = view.token;
    if (record.codeHash === undefined) return;
    const audit = (reason: string, details: Record<string, unknown> = {}) =>
      this.deps.audit.record({ type: 'enroll.code', result: 'failure', reason, context, ...(view.user ? { userId: view.user.id, username: view.user.username } : {}), details });
    if (code === undefined || code === null || code === '') {
      if (view.codeLocked) throw new EnrollmentCodeError('code-locked', 0);
      throw new EnrollmentCodeError('code-required', MAX_ENROLLMENT_CODE_ATTEMPTS - (await this.codeFailures(record.id)));
    }
    const key = enrollmentCodeThrottleKey(record.id);
    const now = this.now();
    const counted = await this.deps.store.loginThrottle.recordFailure(key, now, Math.max(1, record.expiresAt - now));
    if (counted.failures > MAX_ENROLLMENT_CODE_ATTEMPTS) {
      await audit('code-locked', { attempts: counted.failures });
      throw new EnrollmentCodeError('code-locked', 0);
    }
    const normalized = normalizeEnrollmentCode(code);
    if (normalized !== undefined && enrollmentCodeMatches(record.id, normalized, record.codeHash)) {
      await this.deps.store.loginThrottle.clear(key);
      return;
    }
    if (counted.failures >= MAX_ENROLLMENT_CODE_ATTEMPTS) {
      // The lock outlives nothing: it ends when the link would have expired anyway.
      await this.deps.store.loginThrottle.lock(key, record.expiresAt);
      await audit('code-locked', { attempts: counted.failures });
      throw new EnrollmentCodeError('code-locked', 0);
    }
    await audit(normalized === undefined ? 'code-malformed' : 'code-wrong', { attempts: counted.failures });
    throw new EnrollmentCodeError('code-wrong', MAX_ENROLLMENT_CODE_ATTEMPTS - counted.failures);
  }

  /**
   * Registration options for the passkey this link enrolls, after the link's one-time code (if
   * it has one). `authenticator` is the user's choice on the page; policy may override it: a
   * group rule allows only a security key, and an AAGUID allowlist asks for attestation.
   */
  async startRegistration(
    token: unknown,
    input: { username?: unknown; displayName?: unknown; code?: unknown; authenticator?: unknown },
    context: RequestContext = CLI_CONTEXT,
  ) {
    const view = await this.inspect(token);
    await this.checkCode(view, input.code, context);
    let user: { id: string; username: string; displayName: string };
    let data: string | undefined;
    if (view.token.purpose === 'bootstrap-admin') {
      const username = normalizeUsername(typeof input.username === 'string' && input.username ? input.username : 'admin');
      const displayName = typeof input.displayName === 'string' && input.displayName.trim() ? input.displayName.trim().slice(0, 128) : username;
      if (await this.deps.store.users.getByUsername(username)) throw new ServiceError('conflict', `user ${username} already exists`);
      user = { id: bootstrapUserId(view.token.id), username, displayName };
      data = JSON.stringify({ username, displayName });
    } else {
      const u = view.user!;
      user = { id: u.id, username: u.username, displayName: u.displayName };
    }
    const existing = view.user ? await this.deps.store.credentials.listByUser(view.user.id) : [];
    const choice = (AUTHENTICATOR_CHOICES as readonly unknown[]).includes(input.authenticator) ? (input.authenticator as AuthenticatorChoice) : undefined;
    return startPasskeyRegistration(this.ceremonyDeps(), {
      user,
      subject: `enroll:${view.token.id}`,
      existing,
      ...(data ? { data } : {}),
      ...registrationPreferences(view.requirement, choice),
    });
  }

  /**
   * Verifies the attestation, then consumes the token (exactly once, even across nodes),
   * creates the bootstrap administrator if this is the first-run link, and stores the passkey.
   */
  async finishRegistration(token: unknown, response: unknown, name: unknown, context: RequestContext): Promise<{ user: User; credential: PasskeyCredential }> {
    const view = await this.inspect(token);
    // Options were only issued after the right code; a lock since then (someone else guessing)
    // still stops the link.
    if (view.codeLocked) throw new EnrollmentCodeError('code-locked', 0);
    const userId = view.token.purpose === 'bootstrap-admin' ? bootstrapUserId(view.token.id) : view.user!.id;
    let verified;
    try {
      verified = await verifyPasskeyRegistration(this.ceremonyDeps(), {
        response,
        subject: `enroll:${view.token.id}`,
        userId,
        // Empty when the user gave none: the ceremony then names it after the authenticator model.
        name: cleanPasskeyName(name, ''),
      });
    } catch (err) {
      // A model the metadata reports revoked or compromised is worth an administrator's attention.
      if (err instanceof CeremonyError && err.reason === 'authenticator-refused') {
        await this.deps.audit.record({
          type: 'enroll',
          result: 'failure',
          reason: err.reason,
          method: 'passkey',
          context,
          ...(view.user ? { userId: view.user.id, username: view.user.username } : {}),
          details: { detail: err.message.slice(0, 300) },
        });
      }
      throw err;
    }
    const { credential, challenge, attestationDetail } = verified;
    // A group rule demands device-bound passkeys everywhere: a synced one would be useless to
    // this user, so it is refused before the link is used up and they can try a security key.
    if (view.requirement.groups.length > 0 && credential.deviceType !== 'singleDevice') {
      await this.deps.audit.record({
        type: 'enroll',
        result: 'failure',
        reason: 'passkey-not-device-bound',
        method: 'passkey',
        context,
        ...(view.user ? { userId: view.user.id, username: view.user.username } : {}),
        details: { groups: view.requirement.groups },
      });
      throw new PasskeyPolicyError('passkey-not-device-bound');
    }
    await this.deps.store.enrollmentTokens.consume(view.token.id, this.now());
    let user: User;
    if (view.token.purpose === 'bootstrap-admin') {
      const chosen = JSON.parse(challenge.data ?? '{}') as { username?: string; displayName?: string };
      user = await this.deps.users.addUser({
        id: userId,
        username: chosen.username ?? 'admin',
        ...(chosen.displayName ? { displayName: chosen.displayName } : {}),
        isAdmin: true,
        actor: 'bootstrap',
        context,
      });
    } else {
      user = view.user!;
    }
    await this.deps.store.credentials.create(credential);
    await this.deps.audit.record({
      type: 'enroll',
      result: 'success',
      userId: user.id,
      username: user.username,
      method: 'passkey',
      context,
      details: {
        credentialName: credential.name,
        deviceType: credential.deviceType,
        purpose: view.token.purpose,
        attestationFormat: credential.attestationFormat,
        attestationTrusted: credential.attestationTrusted,
        attestation: attestationDetail.slice(0, 200),
      },
    });
    return { user, credential };
  }
}
