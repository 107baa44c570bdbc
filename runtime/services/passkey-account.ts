import type { WebAuthnConfig } from '../config/schema.js';
import type { StepUpReason } from '../policy/decide.js';
import { passkeyRequirementFor, passkeyShortfallsByRoute, type PasskeyRequirement, type PolicyTable } from '../policy/user-requirements.js';
import type { PasskeyCredential, SessionPasskey, Store, User } from '../store/types.js';
import { startPasskeyRegistration, verifyPasskeyRegistration, authenticatorName, type AuthenticatorMetadata } from '../webauthn/index.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { passkeyEvidence } from './passkey-evidence.js';
import { PasskeyPolicyError, registrationPreferences, type AuthenticatorChoice } from './passkey-choice.js';
import { cleanPasskeyName } from './passkey-names.js';
import type { RequestContext } from './request-context.js';

export interface PasskeySummary {
  readonly id: string;
  readonly name: string;
  readonly createdAt: number;
  readonly lastUsedAt?: number;
  /** From the BE flag: a synced passkey can move to other devices of the user. */
  readonly synced: boolean;
  readonly backedUp: boolean;
  readonly authenticator?: string;
  /** Routes of this user the passkey does not satisfy (device-bound or AAGUID rules), and why. */
  readonly notAcceptedBy: ReadonlyArray<{ readonly route: string; readonly reason: StepUpReason }>;
}

/** A user's own passkeys: list, add, rename, delete. */
export class PasskeyAccountService {
  constructor(
    private readonly deps: {
      store: Store;
      rp: WebAuthnConfig;
      audit: AuditLog;
      /** Routes and group rules: what this user's passkeys must be. @default no routes, no rules */
      policy?: PolicyTable;
      metadata?: AuthenticatorMetadata;
      now?: () => number;
    },
  ) {}

  private ceremonyDeps() {
    return { store: this.deps.store, rp: this.deps.rp, now: this.deps.now ?? Date.now, ...(this.deps.metadata ? { metadata: this.deps.metadata } : {}) };
  }

  /** What policy demands of this user's passkeys (the account page explains it). */
  requirementFor(user: User): PasskeyRequirement {
    return passkeyRequirementFor(user, this.deps.policy ?? { routes: [], groups: {} });
  }

  async list(user: User): Promise<PasskeySummary[]> {
    const creds = await this.deps.store.credentials.listByUser(user.id);
    return creds
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((c) => {
        const authenticator = this.deps.metadata?.nameOf(c.aaguid) ?? authenticatorName(c.aaguid);
        return {
          id: c.id,
          name: c.name,
          createdAt: c.createdAt,
          ...(c.lastUsedAt !== undefined ? { lastUsedAt: c.lastUsedAt } : {}),
          synced: c.deviceType === 'multiDevice',
          backedUp: c.backedUp,
          ...(authenticator ? { authenticator } : {}),
          notAcceptedBy: passkeyShortfallsByRoute(passkeyEvidence(c), user, this.deps.policy ?? { routes: [], groups: {} }),
        };
      });
  }

  /** Each passkey of the user with the evidence a session signed in by it would carry (for `kanmon policy check`). */
  async evidence(user: User): Promise<Array<{ readonly name: string; readonly authenticator?: string; readonly passkey: SessionPasskey }>> {
    const creds = await this.deps.store.credentials.listByUser(user.id);
    return creds
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((c) => {
        const authenticator = this.deps.metadata?.nameOf(c.aaguid) ?? authenticatorName(c.aaguid);
        return { name: c.name, ...(authenticator ? { authenticator } : {}), passkey: passkeyEvidence(c) };
      });
  }

  /** Options for another passkey; where policy needs device-bound passkeys, on a security key. */
  async startAdd(user: User, choice?: AuthenticatorChoice) {
    const existing = await this.deps.store.credentials.listByUser(user.id);
    return startPasskeyRegistration(this.ceremonyDeps(), {
      user: { id: user.id, username: user.username, displayName: user.displayName },
      subject: `account:${user.id}`,
      existing,
      ...registrationPreferences(this.requirementFor(user), choice),
    });
  }

  async finishAdd(user: User, response: unknown, name: unknown, context: RequestContext): Promise<PasskeyCredential> {
    const { credential } = await verifyPasskeyRegistration(this.ceremonyDeps(), {
      response,
      subject: `account:${user.id}`,
      userId: user.id,
      // Empty when the user gave none: the ceremony then names it after the authenticator model.
      name: cleanPasskeyName(name, ''),
    });
    const requirement = this.requirementFor(user);
    if (requirement.groups.length > 0 && credential.deviceType !== 'singleDevice') {
      await this.deps.audit.record({
        type: 'credential.add',
        result: 'failure',
        reason: 'passkey-not-device-bound',
        userId: user.id,
        username: user.username,
        method: 'passkey',
        context,
        details: { groups: requirement.groups },
      });
      throw new PasskeyPolicyError('passkey-not-device-bound');
    }
    await this.deps.store.credentials.create(credential);
    await this.deps.audit.record({
      type: 'credential.add',
      result: 'success',
      userId: user.id,
      username: user.username,
      method: 'passkey',
      context,
      details: { credentialName: credential.name, deviceType: credential.deviceType },
    });
    return credential;
  }

  private async own(user: User, credentialId: unknown): Promise<PasskeyCredential> {
    if (typeof credentialId !== 'string' || credentialId.length > 1024) throw new ServiceError('not-found', 'no such passkey');
    const cred = await this.deps.store.credentials.get(credentialId);
    if (!cred || cred.userId !== user.id) throw new ServiceError('not-found', 'no such passkey');
    return cred;
  }

  async rename(user: User, credentialId: unknown, name: unknown, context: RequestContext): Promise<void> {
    const cred = await this.own(user, credentialId);
    const clean = cleanPasskeyName(name, cred.name);
    await this.deps.store.credentials.rename(cred.id, clean);
    await this.deps.audit.record({
      type: 'credential.rename',
      result: 'success',
      userId: user.id,
      username: user.username,
      context,
      details: { before: cred.name, after: clean },
    });
  }

  /**
   * Deletes a passkey. The last one goes only when the user has another way in: a confirmed
   * authenticator app (recovery codes do not count; they only lead back to registering a
   * passkey), or `otherFactors` the caller knows of. Nobody locks themselves out by accident.
   */
  async remove(user: User, credentialId: unknown, context: RequestContext, otherFactors = 0): Promise<void> {
    const cred = await this.own(user, credentialId);
    const all = await this.deps.store.credentials.listByUser(user.id);
    const totpConfirmed = all.length <= 1 && (await this.deps.store.totp.get(user.id))?.confirmed === true;
    if (all.length <= 1 && otherFactors === 0 && !totpConfirmed) {
      await this.deps.audit.record({ type: 'credential.delete', result: 'failure', reason: 'last-factor', userId: user.id, username: user.username, context });
      throw new ServiceError('last-factor', 'the last passkey cannot be deleted while no other sign-in method exists');
    }
    await this.deps.store.credentials.delete(cred.id);
    await this.deps.audit.record({
      type: 'credential.delete',
      result: 'success',
      userId: user.id,
      username: user.username,
      context,
      details: { credentialName: cred.name },
    });
  }
}
