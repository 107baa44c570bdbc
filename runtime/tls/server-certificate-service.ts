/**
 * The rules for the server certificate kept in the store (tls.source "acme" and "imported"):
 * when it is renewed, that only one node orders at a time, how failures back off and are
 * reported, and importing one by hand. The runtime's renewal loop, `kanmon cert server
 * status|renew|import` and the tests all go through here.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/schema.js';
import type { Notifier } from '../notify/notifier.js';
import type { Metrics } from '../observability/metrics.js';
import type { AuditInput } from '../services/audit-log.js';
import { ConcurrentUpdateError } from '../store/errors.js';
import { acquireLease, releaseLease, renewLease, type Lease } from '../store/lease.js';
import type { DocumentStore } from '../store/types.js';
import { isRateLimitError, orderServerCertificate } from './acme-order.js';
import {
  ORDER_LEASE_NAME,
  ServerCertificateError,
  describeCertificate,
  type RenewalStatus,
  type ServerCertificate,
  type ServerCertificateDocuments,
} from './server-certificate-documents.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** First retry after a failed order; doubles with every further failure. */
export const RENEWAL_BACKOFF_FIRST_MS = 5 * MINUTE;
/** The longest wait between attempts: well inside a 30-day renewal window, and no retry storm. */
export const RENEWAL_BACKOFF_MAX_MS = 12 * HOUR;
/** After the ACME server says a rate limit was hit, wait at least this long (Let's Encrypt's windows are hours to a week). */
export const RATE_LIMIT_BACKOFF_MS = 3 * HOUR;
/** A failing renewal is notified at its first failure, then at most once a day. */
export const FAILURE_REMINDER_MS = DAY;
/** The order lease: long enough for an order, short enough that a dead holder is replaced soon. */
export const ORDER_LEASE_TTL_MS = 10 * MINUTE;

export type RenewalOutcome =
  | { readonly action: 'not-due'; readonly notAfter: number }
  | { readonly action: 'backing-off'; readonly nextAttemptAt: number }
  | { readonly action: 'busy' }
  | { readonly action: 'renewed'; readonly certificate: ServerCertificate }
  | { readonly action: 'failed'; readonly error: string; readonly nextAttemptAt: number };

export interface ServerCertificateStatus {
  readonly source: TlsConfig['source'];
  readonly certificate?: Omit<ServerCertificate, 'keyPem' | 'chainPem'> & { readonly obtainedAt?: number };
  readonly renewal: RenewalStatus;
  /** When renewal starts for the certificate in service (acme only). */
  readonly renewFrom?: number;
}

export interface ServerCertificateServiceDeps {
  readonly tls: TlsConfig;
  readonly documents: DocumentStore;
  readonly certificates: ServerCertificateDocuments;
  readonly audit: (input: AuditInput) => Promise<void>;
  readonly logger: Logger;
  readonly notifier?: Notifier;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  /** This node's name in the lease and the status. @default host name, pid and a random suffix */
  readonly holder?: string;
  /** ACME polling of pending authorizations (ms); tests shorten it. @default acme-client's 5000-30000 */
  readonly acmePoll?: { readonly minMs: number; readonly maxMs: number };
}

export class ServerCertificateService {
  readonly holder: string;
  readonly #now: () => number;
  /** One order at a time in this process, even before the store lease is asked. */
  #inFlight: Promise<RenewalOutcome> | undefined;

  constructor(private readonly deps: ServerCertificateServiceDeps) {
    this.#now = deps.now ?? Date.now;
    this.holder = deps.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  }

  /** The certificate in service according to the store, key opened. */
  current(): Promise<ServerCertificate | undefined> {
    return this.deps.certificates.loadCertificate(this.#now());
  }

  /** The store's version of the certificate document: nodes poll this cheaply and reload when it moves. */
  currentVersion(): Promise<number | undefined> {
    return this.deps.certificates.certificateVersion(this.#now());
  }

  async status(): Promise<ServerCertificateStatus> {
    const now = this.#now();
    const [read, { status }] = await Promise.all([this.deps.certificates.readCertificate(now), this.deps.certificates.readStatus(now)]);
    const tls = this.deps.tls;
    const certificate = read
      ? {
          source: read.doc.source,
          serial: read.doc.serial,
          names: read.doc.names,
          issuer: read.doc.issuer,
          notBefore: read.doc.notBefore,
          notAfter: read.doc.notAfter,
          obtainedAt: read.doc.obtainedAt,
          version: read.version,
        }
      : undefined;
    return {
      source: tls.source,
      ...(certificate ? { certificate } : {}),
      renewal: status,
      ...(certificate && tls.source === 'acme' ? { renewFrom: certificate.notAfter - tls.renewBeforeDays * DAY } : {}),
    };
  }

  /**
   * Orders a new certificate when the one in service is missing, does not cover every
   * configured name, or is inside the renewal window, and the shared back-off allows; `force`
   * orders regardless of both (`kanmon cert server renew`). Only the holder of the store lease
   * orders; the others answer 'busy' and pick the result up from the store.
   */
  renewIfDue(opts: { force?: boolean } = {}): Promise<RenewalOutcome> {
    if (!this.#inFlight) {
      this.#inFlight = this.#renew(opts.force ?? false).finally(() => {
        this.#inFlight = undefined;
      });
    }
    return this.#inFlight;
  }

  async #renew(force: boolean): Promise<RenewalOutcome> {
    const tls = this.deps.tls;
    if (tls.source !== 'acme') throw new ServerCertificateError(`tls.source is "${tls.source}": only "acme" certificates are renewed by Kanmon`);
    const { documents, logger } = this.deps;
    const due = await this.#due(force);
    if (due.action !== 'due') return due.outcome;

    const lease = await acquireLease(documents, { name: ORDER_LEASE_NAME, holder: this.holder, ttlMs: ORDER_LEASE_TTL_MS, now: this.#now() });
    if (!lease) return { action: 'busy' };
    let held: Lease | undefined = lease;
    // An order usually takes seconds; the lease is kept alive for slow validations.
    const keepAlive = setInterval(() => {
      if (!held) return;
      renewLease(documents, held, { ttlMs: ORDER_LEASE_TTL_MS, now: this.#now() }).then(
        (renewed) => {
          held = renewed;
          if (!renewed) logger.warn('the ACME order lease was lost; the certificate will only be stored if no other node stored one meanwhile');
        },
        (err) => logger.warn({ err }, 'the ACME order lease could not be renewed'),
      );
    }, ORDER_LEASE_TTL_MS / 3);
    keepAlive.unref();
    try {
      // Another node may have finished an order between our check and our lease.
      const again = await this.#due(force);
      if (again.action !== 'due') return again.outcome;
      return await this.#order(again.version, again.status);
    } finally {
      clearInterval(keepAlive);
      if (held) await releaseLease(documents, held).catch((err) => logger.warn({ err }, 'the ACME order lease could not be released'));
    }
  }

  async #due(force: boolean): Promise<{ action: 'due'; version: number; status: RenewalStatus } | { action: 'skip'; outcome: RenewalOutcome }> {
    const tls = this.deps.tls;
    if (tls.source !== 'acme') throw new ServerCertificateError('not an ACME configuration');
    const now = this.#now();
    const [read, { status }] = await Promise.all([this.deps.certificates.readCertificate(now), this.deps.certificates.readStatus(now)]);
    const version = read?.version ?? 0;
    if (force) return { action: 'due', version, status };
    if (read) {
      const covers = tls.domains.every((d) => read.doc.names.includes(d.toLowerCase()));
      const renewFrom = read.doc.notAfter - tls.renewBeforeDays * DAY;
      if (covers && now < renewFrom) return { action: 'skip', outcome: { action: 'not-due', notAfter: read.doc.notAfter } };
    }
    if (status.nextAttemptAt !== undefined && now < status.nextAttemptAt) return { action: 'skip', outcome: { action: 'backing-off', nextAttemptAt: status.nextAttemptAt } };
    return { action: 'due', version, status };
  }

  async #order(version: number, previous: RenewalStatus): Promise<RenewalOutcome> {
    const tls = this.deps.tls;
    if (tls.source !== 'acme') throw new ServerCertificateError('not an ACME configuration');
    const { certificates, logger } = this.deps;
    const startedAt = this.#now();
    logger.info({ domains: tls.domains, directoryUrl: tls.directoryUrl, challenge: tls.challenge }, 'ordering the server certificate');
    try {
      const { chainPem, keyPem } = await orderServerCertificate({
        directoryUrl: tls.directoryUrl,
        email: tls.email,
        domains: tls.domains,
        keyType: tls.keyType,
        challenge: tls.challenge,
        ...(tls.directoryCaFile ? { directoryCaFile: tls.directoryCaFile } : {}),
        documents: certificates,
        now: this.#now,
        ...(this.deps.acmePoll ? { pollMinMs: this.deps.acmePoll.minMs, pollMaxMs: this.deps.acmePoll.maxMs } : {}),
      });
      const stored = await certificates.writeCertificate('acme', chainPem, keyPem, { now: this.#now(), expectedVersion: version });
      const certificate = await certificates.loadCertificate(this.#now());
      if (!certificate || certificate.version !== stored.version) throw new ServerCertificateError('the stored certificate could not be read back');
      await certificates.writeStatus({ lastAttemptAt: startedAt, lastSuccessAt: this.#now(), consecutiveFailures: 0, lastOrderBy: this.holder }, this.#now());
      logger.info({ serial: certificate.serial, notAfter: new Date(certificate.notAfter).toISOString(), names: certificate.names }, 'server certificate obtained');
      await this.deps.audit({ type: 'tls.certificate.renew', result: 'success', actor: this.holder, details: { serial: certificate.serial, names: certificate.names, notAfter: certificate.notAfter, issuer: certificate.issuer } });
      if (previous.consecutiveFailures > 0) {
        void this.deps.notifier?.notify({
          event: 'tls.renewal.recovered',
          severity: 'info',
          subject: 'Kanmon server certificate renewed',
          message: `The server certificate for ${certificate.names.join(', ')} was renewed after ${previous.consecutiveFailures} failed attempts; it is valid until ${new Date(certificate.notAfter).toISOString()}.`,
          details: { serial: certificate.serial },
        });
      }
      return { action: 'renewed', certificate };
    } catch (err) {
      if (err instanceof ConcurrentUpdateError) {
        logger.warn('another node stored a certificate while this one ordered; keeping theirs');
        return { action: 'busy' };
      }
      return this.#failed(err, startedAt, previous);
    }
  }

  async #failed(err: unknown, startedAt: number, previous: RenewalStatus): Promise<RenewalOutcome> {
    const now = this.#now();
    const error = (err instanceof Error ? err.message : String(err)).slice(0, 1000);
    const failures = previous.consecutiveFailures + 1;
    let wait = Math.min(RENEWAL_BACKOFF_FIRST_MS * 2 ** (failures - 1), RENEWAL_BACKOFF_MAX_MS);
    if (isRateLimitError(err)) wait = Math.max(wait, RATE_LIMIT_BACKOFF_MS);
    const nextAttemptAt = now + wait;
    const remind = previous.lastNotifiedAt === undefined || now - previous.lastNotifiedAt >= FAILURE_REMINDER_MS;
    const status: RenewalStatus = {
      ...previous,
      lastAttemptAt: startedAt,
      lastError: error,
      consecutiveFailures: failures,
      nextAttemptAt,
      lastOrderBy: this.holder,
      ...(remind ? { lastNotifiedAt: now } : {}),
    };
    this.deps.logger.error({ err, failures, nextAttemptAt: new Date(nextAttemptAt).toISOString() }, 'server certificate order failed; the certificate in service stays');
    this.deps.metrics?.count('serverCertificateRenewalFailures', {});
    try {
      await this.deps.certificates.writeStatus(status, now);
    } catch (writeErr) {
      this.deps.logger.error({ err: writeErr }, 'the renewal status could not be stored');
    }
    await this.deps.audit({ type: 'tls.certificate.renew', result: 'failure', actor: this.holder, reason: error, details: { failures, nextAttemptAt } });
    if (remind) {
      const current = await this.deps.certificates.readCertificate(now).catch(() => undefined);
      const daysLeft = current ? Math.floor((current.doc.notAfter - now) / DAY) : undefined;
      void this.deps.notifier?.notify({
        event: 'tls.renewal.failed',
        severity: daysLeft === undefined || daysLeft < 14 ? 'critical' : 'warning',
        subject: 'Kanmon server certificate renewal failed',
        message:
          `Ordering the server certificate failed (${failures} attempt${failures === 1 ? '' : 's'} in a row): ${error}\n` +
          (daysLeft === undefined ? 'No certificate is in service yet.\n' : `The certificate in service stays; it expires in ${daysLeft} days.\n`) +
          `The next attempt is at ${new Date(nextAttemptAt).toISOString()}; \`kanmon cert server renew\` tries at once.`,
        details: { failures, nextAttemptAt, ...(daysLeft !== undefined ? { daysLeft } : {}) },
      });
    }
    return { action: 'failed', error, nextAttemptAt };
  }

  /** `kanmon cert server import`: puts a certificate and key the administrator obtained elsewhere into service. */
  async importCertificate(chainPem: string, keyPem: string, actor: string): Promise<ServerCertificate> {
    const info = describeCertificate(chainPem, keyPem);
    const now = this.#now();
    if (info.notAfter <= now) throw new ServerCertificateError(`the certificate expired at ${new Date(info.notAfter).toISOString()}`);
    if (info.names.length === 0) throw new ServerCertificateError('the certificate names no DNS host in its subjectAltName');
    await this.deps.certificates.writeCertificate('imported', chainPem, keyPem, { now });
    const certificate = await this.deps.certificates.loadCertificate(now);
    if (!certificate) throw new ServerCertificateError('the stored certificate could not be read back');
    await this.deps.audit({ type: 'tls.certificate.import', result: 'success', actor, details: { serial: certificate.serial, names: certificate.names, notAfter: certificate.notAfter, issuer: certificate.issuer } });
    return certificate;
  }
}
