/**
 * Client certificates at enrollment:
 * - the gate (enrollment.requireClientCertificate): registering a passkey or an authenticator
 *   app needs a valid certificate of Kanmon's CA that belongs to the enrolling user, presented
 *   in this TLS handshake, so a stolen enrollment link or session alone enrolls nothing;
 * - the offer (groups.<name>.offerClientCertificate): right after a member enrolls a passkey,
 *   they may take one certificate for the device they are on. The offer is a named document
 *   ('devices-cert-offer', by user id) made at enrollment and consumed once, so it is not a
 *   standing way to mint certificates later.
 */
import { cleanDeviceLabel, type ClientCertificateService, type DownloadLink, type IssuedCertificate } from '../ca/client-certificates.js';
import type { KanmonConfig } from '../config/schema.js';
import { ConcurrentUpdateError } from '../store/errors.js';
import type { DocumentStore, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import type { RequestContext } from './request-context.js';

export const OFFER_KIND = 'devices-cert-offer';
/** How long after enrolling the offer stands. */
export const OFFER_TTL_MS = 30 * 60_000;

/** Why the gate refused: the same reasons the certificate-required page explains. */
export type CertificateGateRefusal = 'no-certificate' | 'certificate-invalid' | 'certificate-other-user';

export type CertificateGateResult = { readonly ok: true; readonly serial?: string } | { readonly ok: false; readonly reason: CertificateGateRefusal };

export interface AcceptedOffer {
  readonly issued: IssuedCertificate;
  readonly link: DownloadLink;
}

export class DeviceEnrollmentService {
  constructor(
    private readonly deps: {
      config: Pick<KanmonConfig, 'enrollment' | 'groups'>;
      certificates: ClientCertificateService;
      documents: DocumentStore;
      audit: AuditLog;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Whether enrollment needs a client certificate of the enrolling user. */
  get gateOn(): boolean {
    return this.deps.config.enrollment.requireClientCertificate;
  }

  /**
   * The gate for one enrollment step (`step` names it in the audit: 'passkey', 'totp', …).
   * `peerCertificateDer` is the certificate of this connection's own handshake, never a header.
   * With the gate off every step passes. Refusals are audited.
   */
  async checkGate(user: Pick<User, 'id' | 'username'>, peerCertificateDer: Uint8Array | undefined, step: string, context: RequestContext): Promise<CertificateGateResult> {
    if (!this.gateOn) return { ok: true };
    let reason: CertificateGateRefusal;
    let serial: string | undefined;
    if (!peerCertificateDer) {
      reason = 'no-certificate';
    } else {
      const check = await this.deps.certificates.checkPresented(peerCertificateDer);
      serial = check.serial;
      if (check.valid && check.owner.kind === 'user' && check.owner.userId === user.id) return { ok: true, serial: check.serial };
      // A valid certificate of someone else, or of a shared device, does not show this user's device.
      reason = check.valid ? 'certificate-other-user' : 'certificate-invalid';
    }
    await this.deps.audit.record({
      type: 'enroll.certificate',
      result: 'failure',
      reason,
      userId: user.id,
      username: user.username,
      context,
      details: { step, ...(serial ? { serial } : {}) },
    });
    return { ok: false, reason };
  }

  /** Whether any of the user's groups offers a certificate after enrollment. */
  offersCertificate(user: Pick<User, 'groups'>): boolean {
    return user.groups.some((g) => this.deps.config.groups[g]?.offerClientCertificate === true);
  }

  /** Right after a passkey enrollment: stands the offer for this user, when their group makes one. Returns whether it did. */
  async standOffer(user: Pick<User, 'id' | 'groups' | 'disabled'>): Promise<boolean> {
    if (user.disabled || !this.offersCertificate(user)) return false;
    const now = this.now();
    await this.deps.documents.put({ kind: OFFER_KIND, id: user.id, body: JSON.stringify({ at: now }), expiresAt: now + OFFER_TTL_MS }, { now });
    return true;
  }

  /** Whether an unexpired offer stands for the user. */
  async hasOffer(user: Pick<User, 'id'>): Promise<boolean> {
    return (await this.deps.documents.get(OFFER_KIND, user.id, this.now())) !== undefined;
  }

  /**
   * Takes the offer (once: two tabs racing get one certificate) and issues a certificate for
   * this device, with a single-use download link. The password is in the answer only.
   */
  async acceptOffer(user: User, input: { deviceLabel?: unknown; legacy?: unknown }, context: RequestContext): Promise<AcceptedOffer> {
    // Checked before the offer is taken, so a bad label loses nothing.
    const deviceLabel = cleanDeviceLabel(typeof input.deviceLabel === 'string' && input.deviceLabel.trim() !== '' ? input.deviceLabel : 'device');
    await this.#takeOffer(user, context);
    const issued = await this.deps.certificates.issueForUser(user, {
      deviceLabel,
      profile: input.legacy === true || input.legacy === 'on' || input.legacy === 'true' ? 'legacy' : 'modern',
      actor: user.username,
      context,
    });
    const link = await this.deps.certificates.createDownloadLink(issued.certificate.serial, { actor: user.username, context });
    return { issued, link };
  }

  /** The user said "not now": the offer goes. */
  async declineOffer(user: Pick<User, 'id' | 'username'>, context: RequestContext): Promise<void> {
    const removed = await this.deps.documents.delete(OFFER_KIND, user.id);
    if (removed) await this.deps.audit.record({ type: 'cert.offer', result: 'success', reason: 'declined', userId: user.id, username: user.username, actor: user.username, context });
  }

  async #takeOffer(user: Pick<User, 'id' | 'username'>, context: RequestContext): Promise<void> {
    const offer = await this.deps.documents.get(OFFER_KIND, user.id, this.now());
    let taken = false;
    if (offer) {
      try {
        taken = await this.deps.documents.delete(OFFER_KIND, user.id, offer.version);
      } catch (err) {
        if (!(err instanceof ConcurrentUpdateError)) throw err;
      }
    }
    if (!taken) {
      await this.deps.audit.record({ type: 'cert.offer', result: 'failure', reason: 'no-offer', userId: user.id, username: user.username, context });
      throw new ServiceError('token-unusable', 'no certificate offer stands for this user (it was taken, declined or has expired)');
    }
  }
}
