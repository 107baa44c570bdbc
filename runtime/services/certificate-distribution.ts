/**
 * Getting a certificate's file to its user: its single-use download link by mail (to the
 * address given, or the user's own), or on a printed letter. Either way the PKCS#12 password
 * is not in it. Every handing-out is audited; a mail the relay refused is audited as a failure.
 */
import type { ClientCertificateService } from '../ca/client-certificates.js';
import { downloadLinkMail } from '../ca/certificate-mail.js';
import { renderCertificateLetter } from '../letters/certificate-letter.js';
import { cleanMailAddress, MailDeliveryError, type Mailer } from '../notify/mailer.js';
import type { ClientCertificate, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import type { ContactAddressService } from './contact-addresses.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

interface ActionOptions {
  readonly actor?: string;
  readonly context?: RequestContext;
}

export interface MailedLink {
  readonly serial: string;
  readonly to: string;
  readonly expiresAt: number;
}

export class CertificateDistributionService {
  constructor(
    private readonly deps: {
      certificates: ClientCertificateService;
      users: { getById(id: string): Promise<User | undefined> };
      contacts: ContactAddressService;
      audit: AuditLog;
      /** Absent when no mail transport is configured (notifications.mail). */
      mailer?: Mailer;
      /** Who the mails and letters are from, e.g. webauthn.rpName or the CA's organisation. */
      organisation: string;
      timeZone?: string;
    },
  ) {}

  /** Whether links can be mailed at all. */
  get canMail(): boolean {
    return this.deps.mailer !== undefined;
  }

  /**
   * Mails a new single-use download link of the certificate's file to `to`, or to its user's
   * own address. Shared-device certificates need `to`.
   */
  async mailDownloadLink(serial: string, opts: ActionOptions & { to?: string } = {}): Promise<MailedLink> {
    const mailer = this.deps.mailer;
    if (!mailer) throw new ServiceError('conflict', 'no mail transport is configured: set notifications.mail, or hand the link out by letter or the CLI');
    const certificate = await this.#require(serial);
    const user = certificate.owner.kind === 'user' ? await this.deps.users.getById(certificate.owner.userId) : undefined;
    let to: string | undefined;
    if (opts.to !== undefined) {
      to = cleanMailAddress(opts.to);
      if (!to) throw new ServiceError('invalid-input', `the recipient must be one plain e-mail address, got ${JSON.stringify(String(opts.to).slice(0, 80))}`);
    } else if (user) {
      to = await this.deps.contacts.get(user.id);
    }
    if (!to) throw new ServiceError('invalid-input', `${user ? `user ${user.username} has no e-mail address; set one first or` : 'a shared device has no address:'} give the recipient`);
    const link = await this.deps.certificates.createDownloadLink(certificate.serial, opts);
    const mail = downloadLinkMail({
      name: nameOf(user, certificate),
      organisation: this.deps.organisation,
      deviceLabel: certificate.deviceLabel,
      serial: certificate.serial,
      url: link.url,
      linkExpiresAt: link.expiresAt,
      ...(this.deps.timeZone ? { timeZone: this.deps.timeZone } : {}),
    });
    const who = { ...(user ? { userId: user.id, username: user.username } : {}), actor: opts.actor ?? 'cli', context: opts.context ?? CLI_CONTEXT };
    try {
      await mailer.send({ to, subject: mail.subject, text: mail.text });
    } catch (err) {
      const reason = err instanceof MailDeliveryError ? err.reason : 'refused';
      await this.deps.audit.record({ type: 'cert.mail', result: 'failure', reason: `mail-${reason}`, ...who, details: { serial: certificate.serial, to } });
      throw new ServiceError('conflict', `the link could not be mailed to ${to}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    await this.deps.audit.record({ type: 'cert.mail', result: 'success', ...who, details: { serial: certificate.serial, to, expiresAt: link.expiresAt } });
    return { serial: certificate.serial, to, expiresAt: link.expiresAt };
  }

  /** A printable letter (self-contained HTML) with a new single-use download link of the certificate's file. */
  async letter(serial: string, opts: ActionOptions = {}): Promise<{ html: string; expiresAt: number }> {
    const certificate = await this.#require(serial);
    const user = certificate.owner.kind === 'user' ? await this.deps.users.getById(certificate.owner.userId) : undefined;
    const link = await this.deps.certificates.createDownloadLink(certificate.serial, opts);
    const html = await renderCertificateLetter({
      username: user?.username ?? (certificate.owner.kind === 'shared' ? certificate.owner.label : ''),
      displayName: user?.displayName ?? '',
      deviceLabel: certificate.deviceLabel,
      serial: certificate.serial,
      url: link.url,
      expiresAt: link.expiresAt,
      organisation: this.deps.organisation,
      ...(this.deps.timeZone ? { timeZone: this.deps.timeZone } : {}),
    });
    await this.deps.audit.record({
      type: 'cert.letter',
      result: 'success',
      ...(user ? { userId: user.id, username: user.username } : {}),
      actor: opts.actor ?? 'cli',
      context: opts.context ?? CLI_CONTEXT,
      details: { serial: certificate.serial, expiresAt: link.expiresAt },
    });
    return { html, expiresAt: link.expiresAt };
  }

  async #require(serial: string): Promise<ClientCertificate> {
    const certificate = await this.deps.certificates.get(serial);
    if (!certificate) throw new ServiceError('not-found', `no certificate with serial ${String(serial).slice(0, 80)}`);
    return certificate;
  }
}

function nameOf(user: User | undefined, certificate: ClientCertificate): string {
  if (!user) return certificate.owner.kind === 'shared' ? certificate.owner.label : certificate.deviceLabel;
  return user.displayName && user.displayName !== user.username ? `${user.displayName} (${user.username})` : user.username;
}
