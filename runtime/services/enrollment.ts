import { createHash, randomBytes } from 'node:crypto';
import type { EnrollmentConfig, WebAuthnConfig } from '../config/schema.js';
import type { EnrollmentToken, PasskeyCredential, Store, User } from '../store/types.js';
import { TokenUnusableError } from '../store/errors.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../webauthn/index.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';
import { normalizeUsername, type UserService } from './users.js';
import { cleanPasskeyName } from './passkey-names.js';

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
}

export interface EnrollmentView {
  readonly token: EnrollmentToken;
  /** The user to enroll; undefined for the bootstrap administrator, who picks a name. */
  readonly user?: User;
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
      now?: () => number;
    },
  ) {}

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

  async createLink(username: string, opts: { ttlSeconds?: number; actor?: string; context?: RequestContext } = {}): Promise<EnrollmentLink> {
    const user = await this.deps.users.require(username);
    if (user.disabled) throw new ServiceError('forbidden', `user ${user.username} is disabled`);
    const ttl = opts.ttlSeconds ?? this.deps.enrollment.linkTtlSeconds;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 90 * 86400) {
      throw new ServiceError('invalid-input', `link lifetime must be 60 s to 90 days, got ${ttl}`);
    }
    const link = await this.issue('enroll', user.id, opts.actor ?? 'cli', ttl);
    await this.deps.audit.record({
      type: 'enroll.link',
      result: 'success',
      userId: user.id,
      username: user.username,
      actor: opts.actor ?? 'cli',
      context: opts.context ?? CLI_CONTEXT,
      details: { expiresAt: link.expiresAt },
    });
    return link;
  }

  private async issue(purpose: EnrollmentToken['purpose'], userId: string, createdBy: string, ttlSeconds: number): Promise<EnrollmentLink> {
    const token = randomBytes(32).toString('base64url');
    const time = this.now();
    const record: EnrollmentToken = {
      id: enrollmentTokenId(token),
      purpose,
      userId,
      createdAt: time,
      expiresAt: time + ttlSeconds * 1000,
      createdBy,
    };
    await this.deps.store.enrollmentTokens.create(record);
    return { url: this.linkFor(token), token, expiresAt: record.expiresAt };
  }

  /** What the enrollment page shows; throws TokenUnusableError for unknown, used or expired tokens. */
  async inspect(token: unknown): Promise<EnrollmentView> {
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) throw new TokenUnusableError('unknown');
    const record = await this.deps.store.enrollmentTokens.get(enrollmentTokenId(token));
    if (!record) throw new TokenUnusableError('unknown');
    if (record.usedAt !== undefined) throw new TokenUnusableError('used');
    if (record.expiresAt <= this.now()) throw new TokenUnusableError('expired');
    if (record.purpose === 'bootstrap-admin') return { token: record };
    const user = await this.deps.store.users.getById(record.userId);
    if (!user || user.disabled) throw new TokenUnusableError('unknown');
    return { token: record, user };
  }

  /** Registration options for the passkey this link enrolls. */
  async startRegistration(token: unknown, input: { username?: unknown; displayName?: unknown }) {
    const view = await this.inspect(token);
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
    return startPasskeyRegistration(
      { store: this.deps.store, rp: this.deps.rp, now: () => this.now() },
      { user, subject: `enroll:${view.token.id}`, existing, ...(data ? { data } : {}) },
    );
  }

  /**
   * Verifies the attestation, then consumes the token (exactly once, even across nodes),
   * creates the bootstrap administrator if this is the first-run link, and stores the passkey.
   */
  async finishRegistration(token: unknown, response: unknown, name: unknown, context: RequestContext): Promise<{ user: User; credential: PasskeyCredential }> {
    const view = await this.inspect(token);
    const userId = view.token.purpose === 'bootstrap-admin' ? bootstrapUserId(view.token.id) : view.user!.id;
    const { credential, challenge } = await verifyPasskeyRegistration(
      { store: this.deps.store, rp: this.deps.rp, now: () => this.now() },
      { response, subject: `enroll:${view.token.id}`, userId, name: cleanPasskeyName(name) },
    );
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
      details: { credentialName: credential.name, deviceType: credential.deviceType, purpose: view.token.purpose },
    });
    return { user, credential };
  }
}
