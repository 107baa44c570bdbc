import type { WebAuthnConfig } from '../config/schema.js';
import type { Session, Store, User } from '../store/types.js';
import { CeremonyError, startPasskeyAuthentication, verifyPasskeyAuthentication, type AuthenticatorMetadata } from '../webauthn/index.js';
import { documentsOf } from './admin-documents.js';
import type { AuditLog } from './audit-log.js';
import { passkeyEvidence } from './passkey-evidence.js';
import type { RequestContext } from './request-context.js';

/** Document kind holding, per session id, when its user last proved a passkey for the console. */
export const ADMIN_REAUTH_KIND = 'admin-reauth';

/**
 * Records that an administrator's session just proved a passkey (a passkey sign-in, or the
 * console's confirmation step), so the console's sensitive actions need no second prompt within
 * the window. Kept with the session's own lifetime.
 */
export async function recordAdminAssertion(store: Store, session: Session, credentialId: string, at: number): Promise<void> {
  await documentsOf(store).put(
    { kind: ADMIN_REAUTH_KIND, id: session.id, body: JSON.stringify({ at, credentialId }), expiresAt: session.absoluteExpiresAt },
    { now: at },
  );
}

/**
 * Re-authentication for sensitive console actions: a fresh passkey assertion by the signed-in
 * administrator, bound to their own credentials (the challenge names the user, so another
 * user's passkey is refused, WebAuthn §7.2 step 6). The time of the last assertion is kept per
 * session in a named document that expires with the session, so every node sees it.
 */
export class AdminReauthService {
  constructor(
    private readonly deps: {
      store: Store;
      rp: WebAuthnConfig;
      audit: AuditLog;
      metadata?: AuthenticatorMetadata;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private ceremonyDeps() {
    return { store: this.deps.store, rp: this.deps.rp, now: this.deps.now ?? Date.now, ...(this.deps.metadata ? { metadata: this.deps.metadata } : {}) };
  }

  /** Options naming the user's own passkeys (only device-bound ones when the console demands them). */
  async start(user: User, opts: { deviceBound: boolean }) {
    const credentials = (await this.deps.store.credentials.listByUser(user.id)).filter((c) => !opts.deviceBound || c.deviceType === 'singleDevice');
    return startPasskeyAuthentication(this.ceremonyDeps(), { userId: user.id, allowCredentials: credentials });
  }

  /** Verifies the assertion and records its time on the session; every outcome is audited. */
  async finish(user: User, session: Session, response: unknown, context: RequestContext, opts: { deviceBound: boolean }): Promise<number> {
    try {
      const verified = await verifyPasskeyAuthentication(this.ceremonyDeps(), { response, subject: user.id });
      if (opts.deviceBound && !passkeyEvidence(verified.credential).deviceBound) {
        throw new CeremonyError('credential-not-allowed', 'the console needs a device-bound passkey, got a synced one');
      }
      const at = this.now();
      await recordAdminAssertion(this.deps.store, session, verified.credential.id, at);
      await this.deps.audit.record({ type: 'admin.reauth', result: 'success', method: 'passkey', userId: user.id, username: user.username, actor: user.username, context, details: { credentialName: verified.credential.name } });
      return at;
    } catch (err) {
      if (err instanceof CeremonyError) {
        await this.deps.audit.record({ type: 'admin.reauth', result: 'failure', method: 'passkey', reason: err.reason, userId: user.id, username: user.username, actor: user.username, context, details: { detail: err.message.slice(0, 300) } });
      }
      throw err;
    }
  }

  /** When this session last proved a passkey for the console, if it did. */
  async lastAssertionAt(session: Session): Promise<number | undefined> {
    const doc = await documentsOf(this.deps.store).get(ADMIN_REAUTH_KIND, session.id, this.now());
    if (!doc) return undefined;
    try {
      const at = (JSON.parse(doc.body) as { at?: unknown }).at;
      return typeof at === 'number' ? at : undefined;
    } catch {
      return undefined;
    }
  }

  /** Whether the last assertion is at most `windowSeconds` old. */
  async isFresh(session: Session, windowSeconds: number): Promise<boolean> {
    const at = await this.lastAssertionAt(session);
    return at !== undefined && this.now() - at <= windowSeconds * 1000;
  }
}
