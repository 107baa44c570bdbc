import type { WebAuthnConfig } from '../config/schema.js';
import type { Store, User } from '../store/types.js';
import { CeremonyError, startPasskeyAuthentication, verifyPasskeyAuthentication, type AuthenticatorMetadata } from '../webauthn/index.js';
import type { AuditLog } from './audit-log.js';
import { LoginLockedError, type LoginGuard } from './login-guard.js';
import { recordAdminAssertion } from './admin-reauth.js';
import { passkeyEvidence } from './passkey-evidence.js';
import type { RequestContext } from './request-context.js';
import type { SessionService } from './sessions.js';

/**
 * Usernameless passkey login (discoverable credentials), used by both the button and
 * conditional mediation (autofill): the options carry no allowCredentials, and the
 * authenticator tells us who the user is through the credential it picked.
 */
export class PasskeyLoginService {
  constructor(
    private readonly deps: {
      store: Store;
      rp: WebAuthnConfig;
      audit: AuditLog;
      sessions: SessionService;
      guard: LoginGuard;
      /** To refuse models whose metadata status says revoked or compromised (FIDO MDS3 §3.1.4). */
      metadata?: AuthenticatorMetadata;
      now?: () => number;
    },
  ) {}

  private ceremonyDeps() {
    return { store: this.deps.store, rp: this.deps.rp, now: this.deps.now ?? Date.now, ...(this.deps.metadata ? { metadata: this.deps.metadata } : {}) };
  }

  start() {
    return startPasskeyAuthentication(this.ceremonyDeps(), {});
  }

  /**
   * Verifies the assertion and starts a fresh session; every outcome is audited. The login
   * guard runs around the verification: the credential presented names the account (whose
   * lock applies to passkeys too, and whose count a failed assertion raises); an unknown
   * credential counts against the client address only.
   */
  async finish(response: unknown, context: RequestContext, previousToken?: string): Promise<{ user: User; setCookie: string }> {
    const owner = await this.ownerOfCredential(response);
    let refusal: CeremonyError | undefined;
    const verdict = await this.deps.guard.protect({ ...(owner ? { username: owner.username, user: owner } : {}), context }, async () => {
      try {
        return { ok: true, value: await verifyPasskeyAuthentication(this.ceremonyDeps(), { response, subject: '' }) } as const;
      } catch (err) {
        if (!(err instanceof CeremonyError)) throw err;
        refusal = err;
        return { ok: false, reason: err.reason } as const;
      }
    });
    if (!verdict.ok) {
      await this.deps.audit.record({
        type: 'login',
        result: 'failure',
        method: 'passkey',
        reason: verdict.reason,
        context,
        ...(refusal ? { details: { detail: refusal.message.slice(0, 300) } } : owner ? { userId: owner.id, username: owner.username } : {}),
      });
      throw refusal ?? new LoginLockedError('lockedBy' in verdict ? verdict.lockedBy : 'user');
    }
    const user = verdict.value.user;
    const credential = verdict.value.credential;
    const started = await this.deps.sessions.start(user, ['passkey'], context, previousToken, { passkey: passkeyEvidence(credential) });
    // An administrator's passkey sign-in is also a fresh confirmation for the console's sensitive actions.
    if (user.isAdmin) await recordAdminAssertion(this.deps.store, started.session, credential.id, (this.deps.now ?? Date.now)()).catch(() => undefined);
    await this.deps.audit.record({
      type: 'login',
      result: 'success',
      method: 'passkey',
      userId: user.id,
      username: user.username,
      context,
      details: { credentialName: credential.name, deviceBound: credential.deviceType === 'singleDevice' },
    });
    return { user, setCookie: started.setCookie };
  }

  /**
   * The user whose registered credential the response names, read before anything is verified
   * (so a locked account is refused before the credential's counter moves). Undefined for a
   * malformed response or an unknown credential.
   */
  private async ownerOfCredential(response: unknown): Promise<User | undefined> {
    const id = typeof response === 'object' && response !== null ? (response as { id?: unknown }).id : undefined;
    // WebAuthn §5.1: a credential id is at most 1023 bytes, 1364 in base64url.
    if (typeof id !== 'string' || id.length === 0 || id.length > 1364) return undefined;
    const credential = await this.deps.store.credentials.get(id);
    return credential ? this.deps.store.users.getById(credential.userId) : undefined;
  }
}
