/**
 * Expiry warnings for client certificates. A periodic job, run by one node at a time under the
 * store lease 'devices-cert-expiry', finds active certificates within the largest warning
 * threshold (notifications.certificateExpiryDays, default 30, 7 and 1 days) and warns about
 * each once per threshold: administrators through the notifier (one digest per run), and the
 * certificate's user by mail when they have an address and mail is configured.
 *
 * "Once" is kept by a named document per certificate and threshold ('devices-cert-warned',
 * `<serial>:<days>`), created only if absent: even two nodes that both believe they hold the
 * lease (one paused past its expiry) cannot warn twice. A certificate already renewed is not
 * warned about; its successor carries on.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KanmonConfig } from '../config/schema.js';
import type { Metrics } from '../observability/metrics.js';
import type { Services } from '../services/create-services.js';
import type { Notifier } from '../notify/notifier.js';
import { MailDeliveryError, type Mailer } from '../notify/mailer.js';
import type { AuditLog } from '../services/audit-log.js';
import type { ContactAddressService } from '../services/contact-addresses.js';
import { ConcurrentUpdateError } from '../store/errors.js';
import { acquireLease, releaseLease } from '../store/lease.js';
import type { ClientCertificate, DocumentStore, User } from '../store/types.js';
import { expiryWarningMail } from './certificate-mail.js';
import type { ClientCertificateService } from './client-certificates.js';
import { ownerKey } from './names.js';

export const EXPIRY_LEASE = 'devices-cert-expiry';
export const WARNED_KIND = 'devices-cert-warned';
const DAY = 86_400_000;
/** Far longer than a run takes; a node that dies mid-run frees the job within this. */
const LEASE_TTL_MS = 10 * 60_000;

export interface CertificateExpiryWarningsDeps {
  readonly certificates: Pick<ClientCertificateService, 'listExpiring' | 'listForUser' | 'listShared'>;
  readonly users: { getById(id: string): Promise<User | undefined> };
  readonly contacts: Pick<ContactAddressService, 'get'>;
  readonly documents: DocumentStore;
  readonly notifier: Notifier;
  /** Absent when no mail transport is configured: users are then not mailed. */
  readonly mailer?: Mailer;
  readonly audit: AuditLog;
  /** Days before expiry at which to warn, any order; or a getter of the live setting, read at each run. */
  readonly thresholdsDays: readonly number[] | (() => readonly number[]);
  /** The metric counts active certificates expiring within this many days (clientCertificates.renewBeforeDays); or a getter, read at each run. */
  readonly renewBeforeDays: number | (() => number);
  /** Called with that count after each run this node made. */
  readonly onExpiringCount?: (count: number) => void;
  readonly organisation: string;
  readonly timeZone?: string;
  readonly logger: Logger;
  /** Names this node in the lease. @default a random id */
  readonly holder?: string;
  readonly now?: () => number;
}

export interface WarnedCertificate {
  readonly serial: string;
  readonly owner: string;
  readonly deviceLabel: string;
  readonly expiresAt: number;
  readonly thresholdDays: number;
  readonly daysLeft: number;
  /** The user's address the warning was mailed to, when it was. */
  readonly mailedTo?: string;
}

export interface ExpiryRun {
  /** False when another node held the lease and this one did nothing. */
  readonly ran: boolean;
  readonly warned: readonly WarnedCertificate[];
  /** Active certificates expiring within renewBeforeDays (when ran). */
  readonly expiringCount?: number;
}

export class CertificateExpiryWarnings {
  readonly #deps: CertificateExpiryWarningsDeps;
  readonly #holder: string;
  readonly #now: () => number;

  constructor(deps: CertificateExpiryWarningsDeps) {
    this.#deps = deps;
    this.#thresholds();
    this.#holder = deps.holder ?? `node-${randomBytes(6).toString('hex')}`;
    this.#now = deps.now ?? Date.now;
  }

  /** The thresholds as set now, ascending: the first one a certificate is inside is the one it is warned for now. */
  #thresholds(): number[] {
    const days = this.#deps.thresholdsDays;
    const list = typeof days === 'function' ? days() : days;
    if (list.length === 0) throw new TypeError('at least one expiry threshold is needed');
    return [...new Set(list)].sort((a, b) => a - b);
  }

  /** One run: under the lease, or not at all when another node holds it. */
  async runOnce(): Promise<ExpiryRun> {
    const { documents } = this.#deps;
    const lease = await acquireLease(documents, { name: EXPIRY_LEASE, holder: this.#holder, ttlMs: LEASE_TTL_MS, now: this.#now() });
    if (!lease) {
      this.#deps.logger.debug({ holder: this.#holder }, 'certificate expiry warnings: another node holds the lease');
      return { ran: false, warned: [] };
    }
    try {
      const now = this.#now();
      // Live settings: read once per run, so one run uses one consistent set.
      const thresholds = this.#thresholds();
      const renewBeforeDays = typeof this.#deps.renewBeforeDays === 'function' ? this.#deps.renewBeforeDays() : this.#deps.renewBeforeDays;
      const horizon = Math.max(thresholds.at(-1)!, renewBeforeDays);
      const expiring = await this.#deps.certificates.listExpiring(horizon);
      const expiringCount = expiring.filter((c) => c.expiresAt <= now + renewBeforeDays * DAY).length;
      this.#deps.onExpiringCount?.(expiringCount);
      const warned: WarnedCertificate[] = [];
      for (const certificate of expiring) {
        const remaining = certificate.expiresAt - now;
        const threshold = thresholds.find((t) => remaining <= t * DAY);
        if (threshold === undefined || remaining <= 0) continue;
        if (await this.#renewed(certificate)) continue;
        if (!(await this.#claim(certificate, threshold, now))) continue;
        warned.push(await this.#warnUser(certificate, threshold, Math.ceil(remaining / DAY)));
      }
      if (warned.length > 0) await this.#notifyAdministrators(warned);
      this.#deps.logger.info({ holder: this.#holder, warned: warned.length, expiring: expiringCount }, 'certificate expiry warnings ran');
      return { ran: true, warned, expiringCount };
    } finally {
      await releaseLease(documents, lease).catch((err: unknown) => this.#deps.logger.warn({ err }, 'expiry-warning lease could not be released'));
    }
  }

  /** Runs soon (after `firstRunDelayMs`: by default a short, random delay so a pair started together does not collide) and then every `intervalMs`. */
  start(intervalMs = 60 * 60_000, firstRunDelayMs = 5_000 + Math.floor(Math.random() * 25_000)): () => void {
    const tick = () => {
      this.runOnce().catch((err: unknown) => this.#deps.logger.warn({ err }, 'certificate expiry warnings could not run'));
    };
    const first = setTimeout(tick, firstRunDelayMs);
    const timer = setInterval(tick, intervalMs);
    first.unref();
    timer.unref();
    return () => {
      clearTimeout(first);
      clearInterval(timer);
    };
  }

  async #renewed(certificate: ClientCertificate): Promise<boolean> {
    const siblings =
      certificate.owner.kind === 'user'
        ? await this.#deps.certificates.listForUser(certificate.owner.userId)
        : await this.#deps.certificates.listShared({ label: certificate.owner.label });
    return siblings.some((c) => c.renewalOf === certificate.serial && c.status === 'active');
  }

  /** True for exactly one caller per certificate and threshold, whatever node it runs on. */
  async #claim(certificate: ClientCertificate, threshold: number, now: number): Promise<boolean> {
    try {
      await this.#deps.documents.put(
        { kind: WARNED_KIND, id: `${certificate.serial}:${threshold}`, body: JSON.stringify({ at: now, holder: this.#holder }), expiresAt: certificate.expiresAt + 30 * DAY },
        { now, expectedVersion: 0 },
      );
      return true;
    } catch (err) {
      if (err instanceof ConcurrentUpdateError) return false;
      throw err;
    }
  }

  async #warnUser(certificate: ClientCertificate, thresholdDays: number, daysLeft: number): Promise<WarnedCertificate> {
    const user = certificate.owner.kind === 'user' ? await this.#deps.users.getById(certificate.owner.userId) : undefined;
    const owner = user ? user.username : ownerKey(certificate.owner);
    let mailedTo: string | undefined;
    let mailFailure: string | undefined;
    const address = user && this.#deps.mailer ? await this.#deps.contacts.get(user.id) : undefined;
    if (user && address && this.#deps.mailer) {
      const mail = expiryWarningMail({
        name: user.displayName && user.displayName !== user.username ? `${user.displayName} (${user.username})` : user.username,
        organisation: this.#deps.organisation,
        deviceLabel: certificate.deviceLabel,
        serial: certificate.serial,
        expiresAt: certificate.expiresAt,
        daysLeft,
        ...(this.#deps.timeZone ? { timeZone: this.#deps.timeZone } : {}),
      });
      try {
        await this.#deps.mailer.send({ to: address, subject: mail.subject, text: mail.text });
        mailedTo = address;
      } catch (err) {
        mailFailure = err instanceof MailDeliveryError ? err.reason : 'refused';
      }
    }
    await this.#deps.audit.record({
      type: 'cert.expiry-warning',
      result: mailFailure ? 'failure' : 'success',
      ...(mailFailure ? { reason: `mail-${mailFailure}` } : {}),
      ...(user ? { userId: user.id, username: user.username } : {}),
      actor: 'system',
      details: { serial: certificate.serial, thresholdDays, daysLeft, expiresAt: certificate.expiresAt, ...(mailedTo ? { mailedTo } : {}) },
    });
    return { serial: certificate.serial, owner, deviceLabel: certificate.deviceLabel, expiresAt: certificate.expiresAt, thresholdDays, daysLeft, ...(mailedTo ? { mailedTo } : {}) };
  }

  async #notifyAdministrators(warned: readonly WarnedCertificate[]): Promise<void> {
    const lines = warned.map(
      (w) => `- ${w.owner} (${w.deviceLabel}), serial ${w.serial}: expires ${new Date(w.expiresAt).toISOString()} (${w.daysLeft} day(s))${w.mailedTo ? `, user mailed at ${w.mailedTo}` : ''}`,
    );
    await this.#deps.notifier.notify({
      event: 'cert.expiring',
      severity: warned.some((w) => w.thresholdDays <= 1) ? 'warning' : 'info',
      subject: `Kanmon: ${warned.length} client certificate(s) expire soon`,
      message: [
        `These client certificates expire soon:`,
        ...lines,
        '',
        'Renew one before it lapses with: kanmon cert renew --serial SERIAL (the old one stays valid until it expires), then hand out the new file.',
      ].join('\n'),
      details: { serials: warned.map((w) => w.serial) },
    });
  }
}

/**
 * The job as a node runs it, from the node's services: live settings are read at each run, and
 * the count of certificates due for renewal goes to the clientCertificatesExpiring gauge. A
 * single process starts it itself; in worker mode only the primary does (runtime/cluster).
 */
export function nodeCertificateExpiryWarnings(node: {
  readonly services: Services;
  readonly documents: DocumentStore;
  readonly notifier: Notifier;
  readonly metrics: Metrics;
  /** The config in force now (the stored config version's live settings). */
  readonly config: () => KanmonConfig;
  readonly logger: Logger;
}): CertificateExpiryWarnings {
  const { services, config } = node;
  return new CertificateExpiryWarnings({
    certificates: services.clientCertificates,
    users: services.users,
    contacts: services.contacts,
    documents: node.documents,
    notifier: node.notifier,
    ...(services.mailer ? { mailer: services.mailer } : {}),
    audit: services.audit,
    thresholdsDays: () => config().notifications.certificateExpiryDays,
    renewBeforeDays: () => config().clientCertificates.renewBeforeDays,
    onExpiringCount: (n) => node.metrics.gauge('clientCertificatesExpiring', {}, n),
    organisation: config().ca.organization ?? config().webauthn.rpName,
    logger: node.logger,
  });
}
