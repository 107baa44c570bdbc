import type { WebAuthnConfig } from '../config/schema.js';
import type { PasskeyCredential, Store, User } from '../store/types.js';
import { CeremonyError, startPasskeyAuthentication, verifyPasskeyAuthentication, type AuthenticatorMetadata } from '../webauthn/index.js';
import type { AuditLog } from './audit-log.js';
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

  /** Verifies the assertion and starts a fresh session; every outcome is audited. */
  async finish(response: unknown, context: RequestContext, previousToken?: string): Promise<{ user: User; setCookie: string }> {
    let user: User;
    let credential: PasskeyCredential;
    try {
      const result = await verifyPasskeyAuthentication(this.ceremonyDeps(), { response, subject: '' });
      user = result.user;
      credential = result.credential;
    } catch (err) {
      if (err instanceof CeremonyError) {
        await this.deps.audit.record({
          type: 'login',
          result: 'failure',
          method: 'passkey',
          reason: err.reason,
          context,
          details: { detail: err.message.slice(0, 300) },
        });
      }
      throw err;
    }
    const started = await this.deps.sessions.start(user, ['passkey'], context, previousToken, { passkey: passkeyEvidence(credential) });
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
}
