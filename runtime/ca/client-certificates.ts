import { REVOCATION_REASONS } from '../store/records.js';
import { createHash, randomBytes, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { setBounded } from '../cache/bounded-map.js';
import type { ClientCertificatesConfig } from '../config/schema.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { AuditLog } from '../services/audit-log.js';
import { ServiceError } from '../services/errors.js';
import { CLI_CONTEXT, type RequestContext } from '../services/request-context.js';
import { CertificateExistsError, CertificateLimitError, DownloadLinkUnusableError, NotFoundError } from '../store/errors.js';
import type {
  CertificateOwner,
  ClientCertificate,
  ClientCertificateKeyType,
  RevocationReason,
  Store,
  User,
} from '../store/types.js';
import { BACKDATE_MS, type CertificateAuthorityService } from './ca-service.js';
import {
  certificateFingerprint,
  isSharedLabel,
  normalizeSerial,
  ownerFromUri,
  ownerKey,
  ownerUri,
  pkcs12FileName,
  randomSerialHex,
  sameOwner,
} from './names.js';
import { randomPkcs12Password } from './password.js';
import { buildPkcs12, type Pkcs12Profile } from './pkcs12.js';

const DAY = 86_400_000;
/** Where the portal serves a download link (the route itself belongs to the portal). */
export const CERT_DOWNLOAD_PATH = '/.kanmon/cert/download';
/** Where the portal serves the CRL; named in every certificate (RFC 5280 §4.2.1.13). */
export const CA_CRL_PATH = '/.kanmon/ca/crl';
/** Where the portal serves the CA certificate. */
export const CA_CERT_PATH = '/.kanmon/ca/cert';
/** Upper bound on cached certificate states per node; a full cache drops its oldest entry. */
const STATUS_CACHE_MAX_ENTRIES = 50_000;

/** The reasons a revocation may give: the store's list, the one place that names them. */
export { REVOCATION_REASONS };

/** Why a presented certificate does not count. */
export type PresentedCertificateRefusal =
  | 'malformed'
  | 'unknown-issuer'
  | 'not-yet-valid'
  | 'expired'
  | 'unknown-certificate'
  | 'owner-mismatch'
  | 'revoked'
  | 'unavailable';

/** The answer of checkPresented, for the TLS listener and the policy. */
export type PresentedCertificateCheck =
  | {
      readonly valid: true;
      readonly serial: string;
      readonly fingerprint: string;
      /** A user certificate is bound to that user; a shared one proves only the device. */
      readonly owner: CertificateOwner;
      readonly deviceLabel: string;
      readonly expiresAt: number;
      /** When this node read the status from the store (epoch ms): callers that keep the answer keep it no longer than statusCacheMs past this. */
      readonly statusReadAt: number;
    }
  | {
      readonly valid: false;
      readonly reason: PresentedCertificateRefusal;
      /** Absent only when the certificate could not be parsed. */
      readonly serial?: string;
      readonly fingerprint?: string;
      readonly owner?: CertificateOwner;
      /** Present when the answer came from the stored status. */
      readonly statusReadAt?: number;
    };

export interface IssueOptions {
  /** What the device is, e.g. "Work laptop"; shown in lists and in the certificate's CN. @default "device" (user), the label (shared) */
  readonly deviceLabel?: string;
  /** @default clientCertificates.keyType */
  readonly keyType?: ClientCertificateKeyType;
  /** @default 'modern' */
  readonly profile?: Pkcs12Profile;
  readonly actor?: string;
  readonly context?: RequestContext;
}

/** A new certificate. The password is in this object only: it is never stored or logged. */
export interface IssuedCertificate {
  readonly certificate: ClientCertificate;
  readonly password: string;
  readonly fileName: string;
  readonly profile: Pkcs12Profile;
  readonly downloadsAllowed: number;
  /** The PKCS#12 file can be downloaded until then (or until its downloads are used up). */
  readonly downloadExpiresAt: number;
}

export interface CertificateFile {
  readonly serial: string;
  readonly fileName: string;
  readonly pkcs12: Uint8Array;
  readonly downloadsLeft: number;
}

export interface DownloadLink {
  readonly url: string;
  /** The secret part of the URL; only its SHA-256 is stored. */
  readonly token: string;
  readonly expiresAt: number;
}

export interface ClientCertificateServiceDeps {
  readonly store: Pick<Store, 'clientCertificates' | 'certificateDeliveries' | 'users'>;
  readonly ca: CertificateAuthorityService;
  readonly secrets: SecretBox;
  readonly audit: AuditLog;
  readonly config: ClientCertificatesConfig;
  /** Links and the CRL distribution point are made from it. */
  readonly publicOrigin: string;
  /** Put in the subject of every client certificate next to the CN, when set (usually the CA's). */
  readonly organization?: string;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

interface ActionOptions {
  readonly actor?: string;
  readonly context?: RequestContext;
}

interface CachedStatus {
  readonly certificate: ClientCertificate | undefined;
  readonly fetchedAt: number;
}

/**
 * Client certificates: issuing (the key pair made here, the private key written only into a
 * password-protected PKCS#12 and then dropped), downloading that file a limited number of times,
 * single-use download links, renewal, revocation, deletion, expiry listing, and the check the
 * TLS listener runs on every new session.
 */
export class ClientCertificateService {
  readonly #deps: ClientCertificateServiceDeps;
  readonly #now: () => number;
  readonly #statusCache = new Map<string, CachedStatus>();

  constructor(deps: ClientCertificateServiceDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** How stale a node's view of a certificate's status may be, in milliseconds (the revocation bound). */
  get statusCacheMs(): number {
    return this.#deps.config.statusCacheSeconds * 1000;
  }

  /** Issues a certificate bound to the user (SAN urn:kanmon:user:<id>), within the per-user limit. */
  async issueForUser(user: User, options: IssueOptions = {}): Promise<IssuedCertificate> {
    if (user.disabled) throw new ServiceError('forbidden', `user ${user.username} is disabled; enable them before issuing a certificate`);
    return this.#issue({ kind: 'user', userId: user.id }, user.username, cleanDeviceLabel(options.deviceLabel ?? 'device'), options);
  }

  /** Issues a certificate for a shared device (SAN urn:kanmon:shared:<label>): it proves the device, not a person. */
  async issueShared(label: string, options: IssueOptions = {}): Promise<IssuedCertificate> {
    const clean = cleanSharedLabel(label);
    return this.#issue({ kind: 'shared', label: clean }, clean, cleanDeviceLabel(options.deviceLabel ?? clean), options);
  }

  /**
   * Issues a new certificate for the same owner and device before the old one lapses. The old one
   * stays valid until it expires (or is revoked), so it does not count against the per-user limit
   * here; a certificate is renewed once.
   */
  async renew(serial: string, options: Omit<IssueOptions, 'deviceLabel'> = {}): Promise<IssuedCertificate> {
    const old = await this.#require(serial);
    if (old.status !== 'active') throw new ServiceError('conflict', `certificate ${old.serial} is ${old.status}; issue a new one instead of renewing it`);
    const siblings = await this.#deps.store.clientCertificates.listByOwner(old.owner);
    const renewed = siblings.find((c) => c.renewalOf === old.serial && c.status === 'active');
    if (renewed) throw new ServiceError('conflict', `certificate ${old.serial} was already renewed by ${renewed.serial}`);
    let ownerName: string;
    if (old.owner.kind === 'user') {
      const user = await this.#deps.store.users.getById(old.owner.userId);
      if (!user) throw new ServiceError('not-found', `the owner of certificate ${old.serial} no longer exists`);
      if (user.disabled) throw new ServiceError('forbidden', `user ${user.username} is disabled`);
      ownerName = user.username;
    } else {
      ownerName = old.owner.label;
    }
    return this.#issue(old.owner, ownerName, old.deviceLabel, { ...options, keyType: options.keyType ?? old.keyType }, old);
  }

  async get(serial: string): Promise<ClientCertificate | undefined> {
    return this.#deps.store.clientCertificates.get(safeSerial(serial));
  }

  /** A user's certificates, oldest first; deleted ones only when asked for. */
  async listForUser(userId: string, options: { includeDeleted?: boolean } = {}): Promise<ClientCertificate[]> {
    const all = await this.#deps.store.clientCertificates.listByOwner({ kind: 'user', userId });
    return options.includeDeleted ? all : all.filter((c) => c.status !== 'deleted');
  }

  /** Shared-device certificates, by label; deleted ones only when asked for. */
  async listShared(options: { label?: string; includeDeleted?: boolean } = {}): Promise<ClientCertificate[]> {
    const all =
      options.label === undefined
        ? await this.#deps.store.clientCertificates.listShared()
        : await this.#deps.store.clientCertificates.listByOwner({ kind: 'shared', label: cleanSharedLabel(options.label) });
    return options.includeDeleted ? all : all.filter((c) => c.status !== 'deleted');
  }

  /** Active certificates that expire within `withinDays` (default: clientCertificates.renewBeforeDays), soonest first. */
  async listExpiring(withinDays: number = this.#deps.config.renewBeforeDays): Promise<ClientCertificate[]> {
    if (!Number.isFinite(withinDays) || withinDays < 0) throw new ServiceError('invalid-input', `days must be a non-negative number, got ${withinDays}`);
    const now = this.#now();
    return this.#deps.store.clientCertificates.listExpiring(now, now + withinDays * DAY);
  }

  /** How many downloads of a certificate's PKCS#12 are left, and until when; undefined when none. */
  async pendingDownload(serial: string): Promise<{ downloadsLeft: number; expiresAt: number } | undefined> {
    const delivery = await this.#deps.store.certificateDeliveries.get(safeSerial(serial));
    if (!delivery || delivery.expiresAt <= this.#now() || delivery.downloads >= delivery.maxDownloads) return undefined;
    return { downloadsLeft: delivery.maxDownloads - delivery.downloads, expiresAt: delivery.expiresAt };
  }

  /** Hands out the PKCS#12 of an issuance, counting one download. */
  async download(serial: string, options: ActionOptions = {}): Promise<CertificateFile> {
    const certificate = await this.#require(serial);
    return this.#deliver(certificate, options, undefined);
  }

  /** A single-use link to the PKCS#12 of an issuance, valid until the file's own expiry at the latest. */
  async createDownloadLink(serial: string, options: ActionOptions & { ttlSeconds?: number } = {}): Promise<DownloadLink> {
    const certificate = await this.#require(serial);
    if (certificate.status !== 'active') throw new ServiceError('conflict', `certificate ${certificate.serial} is ${certificate.status}`);
    const pending = await this.pendingDownload(certificate.serial);
    if (!pending) throw new ServiceError('token-unusable', `the file of certificate ${certificate.serial} has no downloads left or has expired; issue a new certificate`);
    const now = this.#now();
    const ttlMs = (options.ttlSeconds ?? this.#deps.config.downloadLinkTtlSeconds) * 1000;
    const token = randomBytes(32).toString('base64url');
    const expiresAt = Math.min(now + ttlMs, pending.expiresAt);
    await this.#deps.store.certificateDeliveries.createLink({ id: linkId(token), serial: certificate.serial, createdAt: now, expiresAt, createdBy: options.actor ?? 'cli' });
    await this.#deps.audit.record({
      type: 'cert.link',
      result: 'success',
      ...this.#who(certificate, options),
      details: { serial: certificate.serial, expiresAt },
    });
    return { url: `${this.#deps.publicOrigin}${CERT_DOWNLOAD_PATH}?token=${token}`, token, expiresAt };
  }

  /** Redeems a download link (once) for the PKCS#12 it points at. */
  async redeemDownloadLink(token: unknown, context: RequestContext): Promise<CertificateFile> {
    if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(token)) {
      await this.#deps.audit.record({ type: 'cert.download', result: 'failure', reason: 'link-malformed', context });
      throw new ServiceError('token-unusable', 'this download link is not valid');
    }
    let link;
    try {
      link = await this.#deps.store.certificateDeliveries.consumeLink(linkId(token), this.#now());
    } catch (err) {
      if (!(err instanceof DownloadLinkUnusableError)) throw err;
      await this.#deps.audit.record({ type: 'cert.download', result: 'failure', reason: `link-${err.reason}`, context });
      throw new ServiceError('token-unusable', `this download link is ${err.reason}`, { cause: err });
    }
    const certificate = await this.#require(link.serial);
    return this.#deliver(certificate, { actor: undefined, context }, 'link');
  }

  /** Revokes one certificate. Revoking it again changes nothing and says so (changed = false). */
  async revoke(serial: string, options: ActionOptions & { reason?: RevocationReason } = {}): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    const reason = options.reason ?? 'unspecified';
    if (!REVOCATION_REASONS.includes(reason)) throw new ServiceError('invalid-input', `reason must be one of ${REVOCATION_REASONS.join(', ')}, got ${JSON.stringify(reason)}`);
    const clean = safeSerial(serial);
    return this.#changeStatus(clean, 'cert.revoke', options, () => this.#deps.store.clientCertificates.revoke(clean, this.#now(), reason), (c) => ({
      reason,
      before: { status: 'active' },
      after: { status: 'revoked', revokedAt: c.revokedAt },
    }));
  }

  /**
   * A user revokes one of their own certificates (a lost or replaced device). Someone else's
   * serial, or a malformed one, is 'not-found' either way, so the answer tells nothing about
   * other people's certificates.
   */
  async revokeOwn(user: Pick<User, 'id' | 'username'>, serial: unknown, options: { context?: RequestContext } = {}): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    let clean: string | undefined;
    try {
      clean = typeof serial === 'string' && serial.length <= 64 ? normalizeSerial(serial) : undefined;
    } catch {
      clean = undefined;
    }
    const certificate = clean ? await this.#deps.store.clientCertificates.get(clean) : undefined;
    if (!certificate || certificate.owner.kind !== 'user' || certificate.owner.userId !== user.id || certificate.status === 'deleted') {
      await this.#deps.audit.record({
        type: 'cert.revoke',
        result: 'failure',
        reason: 'not-own-certificate',
        userId: user.id,
        username: user.username,
        actor: user.username,
        context: options.context ?? CLI_CONTEXT,
        details: { serial: String(serial).slice(0, 64) },
      });
      throw new ServiceError('not-found', 'you have no certificate with that serial');
    }
    return this.revoke(certificate.serial, { actor: user.username, ...(options.context ? { context: options.context } : {}), reason: 'cessationOfOperation' });
  }

  /** Deletes one certificate (revoking it first when active); deleting again changes nothing. */
  async delete(serial: string, options: ActionOptions = {}): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    const clean = safeSerial(serial);
    const before = await this.#deps.store.clientCertificates.get(clean);
    if (!before) throw new ServiceError('not-found', `no certificate with serial ${clean}`);
    return this.#changeStatus(clean, 'cert.delete', options, () => this.#deps.store.clientCertificates.markDeleted(clean, this.#now()), (c) => ({
      before: { status: before.status, ...(before.revokedAt === undefined ? {} : { revokedAt: before.revokedAt }) },
      after: { status: 'deleted', revokedAt: c.revokedAt, revocationReason: c.revocationReason },
    }));
  }

  /**
   * A status change in the store (revoke, delete): a vanished certificate becomes 'not-found',
   * caches and the CRL follow the change, and only a real change is audited, so repeating an
   * operation is harmless and leaves no noise.
   */
  async #changeStatus(
    serial: string,
    type: 'cert.revoke' | 'cert.delete',
    options: ActionOptions,
    change: () => Promise<{ certificate: ClientCertificate; changed: boolean }>,
    beforeAfter: (certificate: ClientCertificate) => Record<string, unknown>,
  ): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    let result;
    try {
      result = await change();
    } catch (err) {
      if (err instanceof NotFoundError) throw new ServiceError('not-found', `no certificate with serial ${serial}`, { cause: err });
      throw err;
    }
    await this.#afterStatusChange(result.certificate);
    if (result.changed) {
      await this.#deps.audit.record({
        type,
        result: 'success',
        ...this.#who(result.certificate, options),
        details: { serial, owner: ownerKey(result.certificate.owner), deviceLabel: result.certificate.deviceLabel, ...beforeAfter(result.certificate) },
      });
    }
    return result;
  }

  /**
   * Checks a certificate a client presented in the TLS handshake (the DER the runtime itself
   * saw, never a header): signed by Kanmon's CA, inside its validity, known to the store, not
   * revoked or deleted, and naming the same owner as its record.
   *
   * The status comes from the store through a per-node cache of at most
   * `clientCertificates.statusCacheSeconds` (default 5 s): a revocation made on any node is
   * refused by every node within that bound. When the store cannot be read the answer is
   * invalid ('unavailable'): fail closed.
   */
  async checkPresented(peerCertDer: Uint8Array): Promise<PresentedCertificateCheck> {
    let cert: NodeX509Certificate;
    try {
      cert = new NodeX509Certificate(peerCertDer);
    } catch {
      return { valid: false, reason: 'malformed' };
    }
    const fingerprint = certificateFingerprint(peerCertDer);
    let serial: string;
    try {
      serial = normalizeSerial(cert.serialNumber);
    } catch {
      return { valid: false, reason: 'malformed', fingerprint };
    }
    const facts = { serial, fingerprint };
    let issuedByUs: boolean;
    try {
      issuedByUs = await this.#deps.ca.verifyIssuedBy(peerCertDer);
    } catch {
      return { valid: false, reason: 'unavailable', ...facts };
    }
    if (!issuedByUs) return { valid: false, reason: 'unknown-issuer', ...facts };
    const now = this.#now();
    if (Date.parse(cert.validFrom) > now) return { valid: false, reason: 'not-yet-valid', ...facts };
    if (Date.parse(cert.validTo) <= now) return { valid: false, reason: 'expired', ...facts };

    let record: ClientCertificate | undefined;
    let statusReadAt: number;
    try {
      ({ certificate: record, fetchedAt: statusReadAt } = await this.#statusOf(serial, now));
    } catch {
      return { valid: false, reason: 'unavailable', ...facts };
    }
    // The fingerprint check rules out a second certificate that reuses a known serial.
    if (!record || record.fingerprint !== fingerprint) return { valid: false, reason: 'unknown-certificate', ...facts, statusReadAt };
    const named = sanOwners(cert);
    if (named.length !== 1 || !sameOwner(named[0]!, record.owner)) return { valid: false, reason: 'owner-mismatch', ...facts, owner: record.owner, statusReadAt };
    if (record.status !== 'active') return { valid: false, reason: 'revoked', ...facts, owner: record.owner, statusReadAt };
    return { valid: true, ...facts, owner: record.owner, deviceLabel: record.deviceLabel, expiresAt: record.expiresAt, statusReadAt };
  }

  /** Drops this node's cached status of a certificate (after a change made here). */
  forgetStatus(serial: string): void {
    this.#statusCache.delete(serial);
  }

  async #issue(owner: CertificateOwner, ownerName: string, deviceLabel: string, options: IssueOptions, renewalOf?: ClientCertificate): Promise<IssuedCertificate> {
    const { config } = this.#deps;
    const keyType = options.keyType ?? config.keyType;
    if (keyType !== 'ec-p256' && keyType !== 'rsa-2048') throw new ServiceError('invalid-input', `key type must be ec-p256 or rsa-2048, got ${JSON.stringify(keyType)}`);
    const profile = options.profile ?? 'modern';
    if (profile !== 'modern' && profile !== 'legacy') throw new ServiceError('invalid-input', `profile must be modern or legacy, got ${JSON.stringify(profile)}`);
    const actor = options.actor ?? 'cli';
    const now = this.#now();
    const notBefore = now - BACKDATE_MS;
    const caDer = await this.#deps.ca.certificateDer();
    const keys = await generateKeyPair(keyType);
    const friendlyName = `${ownerName} (${deviceLabel})`;
    const limit = owner.kind === 'user' ? { maxActive: config.maxActivePerUser + (renewalOf ? 1 : 0), now } : undefined;

    // 126 random bits make a serial collision practically impossible; the store still refuses
    // one, and a second draw settles it.
    for (let attempt = 1; ; attempt++) {
      const serial = randomSerialHex();
      const der = await this.#deps.ca.signClientCertificate({
        serial,
        subject: [...(this.#deps.organization ? [{ O: [this.#deps.organization] }] : []), { CN: [truncate(friendlyName, 64)] }],
        publicKey: keys.publicKey,
        notBefore: new Date(notBefore),
        notAfter: new Date(notBefore + config.lifetimeDays * DAY),
        sanUris: [ownerUri(owner)],
        crlUrls: [`${this.#deps.publicOrigin}${CA_CRL_PATH}`],
      });
      const expiresAt = Date.parse(new NodeX509Certificate(der).validTo);
      const fileName = pkcs12FileName(ownerName, deviceLabel, serial);
      // The private key goes into the PKCS#12 and nowhere else; the exported copy is wiped.
      const password = randomPkcs12Password();
      const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
      let pkcs12: Uint8Array;
      try {
        pkcs12 = buildPkcs12({ certificateDer: der, privateKeyPkcs8: pkcs8, caCertificateDer: caDer, password, friendlyName, profile });
      } finally {
        pkcs8.fill(0);
      }
      const sealedPkcs12 = await this.#deps.secrets.seal(pkcs12, deliveryContext(serial));
      pkcs12.fill(0);

      const certificate: ClientCertificate = {
        serial,
        fingerprint: certificateFingerprint(der),
        owner,
        deviceLabel,
        keyType,
        certificateDer: der,
        issuedAt: now,
        expiresAt,
        issuedBy: actor,
        status: 'active',
        ...(renewalOf ? { renewalOf: renewalOf.serial } : {}),
      };
      try {
        await this.#deps.store.clientCertificates.create(certificate, limit);
      } catch (err) {
        if (err instanceof CertificateExistsError && attempt < 3) continue;
        if (err instanceof CertificateLimitError) {
          await this.#deps.audit.record({
            type: 'cert.issue',
            result: 'failure',
            reason: 'limit-reached',
            ...this.#who(certificate, options),
            details: { owner: ownerKey(owner), maxActive: config.maxActivePerUser },
          });
          throw new ServiceError('conflict', `${ownerName} already has ${config.maxActivePerUser} active certificate(s), the maximum; revoke one first`, { cause: err });
        }
        throw err;
      }
      const downloadExpiresAt = now + config.downloadLinkTtlSeconds * 1000;
      try {
        await this.#deps.store.certificateDeliveries.create({
          serial,
          sealedPkcs12,
          fileName,
          maxDownloads: config.maxDownloadsPerIssuance,
          downloads: 0,
          createdAt: now,
          expiresAt: downloadExpiresAt,
        });
      } catch (err) {
        // A certificate whose file cannot be delivered must not stay valid: nobody holds its key.
        await this.#deps.store.clientCertificates.revoke(serial, now, 'cessationOfOperation').catch(() => undefined);
        throw err;
      }
      await this.#deps.audit.record({
        type: 'cert.issue',
        result: 'success',
        ...this.#who(certificate, options),
        details: {
          serial,
          fingerprint: certificate.fingerprint,
          owner: ownerKey(owner),
          deviceLabel,
          keyType,
          profile,
          expiresAt,
          ...(renewalOf ? { renewalOf: renewalOf.serial } : {}),
          after: { status: 'active' },
        },
      });
      return { certificate, password, fileName, profile, downloadsAllowed: config.maxDownloadsPerIssuance, downloadExpiresAt };
    }
  }

  async #deliver(certificate: ClientCertificate, options: ActionOptions, via: 'link' | undefined): Promise<CertificateFile> {
    const who = this.#who(certificate, options);
    if (certificate.status !== 'active') {
      await this.#deps.store.certificateDeliveries.delete(certificate.serial);
      await this.#deps.audit.record({ type: 'cert.download', result: 'failure', reason: `certificate-${certificate.status}`, ...who, details: { serial: certificate.serial } });
      throw new ServiceError('conflict', `certificate ${certificate.serial} is ${certificate.status}; its file is no longer handed out`);
    }
    const delivery = await this.#deps.store.certificateDeliveries.claimDownload(certificate.serial, this.#now());
    if (!delivery) {
      await this.#deps.audit.record({ type: 'cert.download', result: 'failure', reason: 'no-downloads-left', ...who, details: { serial: certificate.serial } });
      throw new ServiceError('token-unusable', `the file of certificate ${certificate.serial} has no downloads left or has expired; issue a new certificate`);
    }
    const pkcs12 = await this.#deps.secrets.open(delivery.sealedPkcs12, deliveryContext(certificate.serial));
    const downloadsLeft = delivery.maxDownloads - delivery.downloads;
    await this.#deps.audit.record({
      type: 'cert.download',
      result: 'success',
      ...who,
      details: { serial: certificate.serial, download: delivery.downloads, downloadsLeft, ...(via ? { via } : {}) },
    });
    return { serial: certificate.serial, fileName: delivery.fileName, pkcs12, downloadsLeft };
  }

  /** A revoked or deleted certificate's file is never handed out again; this node stops trusting it at once. */
  async #afterStatusChange(certificate: ClientCertificate): Promise<void> {
    this.forgetStatus(certificate.serial);
    this.#deps.ca.invalidateCrl();
    if (certificate.status !== 'active') await this.#deps.store.certificateDeliveries.delete(certificate.serial);
  }

  async #statusOf(serial: string, now: number): Promise<CachedStatus> {
    const ttl = this.statusCacheMs;
    const cached = this.#statusCache.get(serial);
    if (cached && now - cached.fetchedAt < ttl && now >= cached.fetchedAt) return cached;
    const certificate = await this.#deps.store.clientCertificates.get(serial);
    if (ttl > 0) {
      setBounded(this.#statusCache, serial, { certificate, fetchedAt: now }, STATUS_CACHE_MAX_ENTRIES);
    }
    return { certificate, fetchedAt: now };
  }

  async #require(serial: string): Promise<ClientCertificate> {
    const clean = safeSerial(serial);
    const certificate = await this.#deps.store.clientCertificates.get(clean);
    if (!certificate) throw new ServiceError('not-found', `no certificate with serial ${clean}`);
    return certificate;
  }

  #who(certificate: Pick<ClientCertificate, 'owner'>, options: ActionOptions): { userId?: string; actor?: string; context: RequestContext } {
    return {
      ...(certificate.owner.kind === 'user' ? { userId: certificate.owner.userId } : {}),
      ...(options.actor ? { actor: options.actor } : {}),
      context: options.context ?? CLI_CONTEXT,
    };
  }
}

/** SecretBox context of a pending PKCS#12, bound to its serial so a sealed file cannot be moved to another record. */
function deliveryContext(serial: string): string {
  return `cert-pkcs12:${serial}`;
}

function linkId(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

async function generateKeyPair(keyType: ClientCertificateKeyType): Promise<CryptoKeyPair> {
  const algorithm =
    keyType === 'rsa-2048'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: 'P-256' };
  // Extractable once, to be written into the PKCS#12; the pair itself is dropped after issuing.
  return (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** The owners named by the certificate's URI SANs (node prints them as "URI:…", comma-separated). */
function sanOwners(cert: NodeX509Certificate): CertificateOwner[] {
  const san = cert.subjectAltName ?? '';
  const owners: CertificateOwner[] = [];
  for (const part of san.split(/,\s*/)) {
    if (!part.startsWith('URI:')) continue;
    const owner = ownerFromUri(part.slice(4));
    if (owner) owners.push(owner);
  }
  return owners;
}

function safeSerial(serial: string): string {
  try {
    return normalizeSerial(serial);
  } catch (err) {
    throw new ServiceError('invalid-input', (err as Error).message);
  }
}

function cleanSharedLabel(label: string): string {
  const clean = typeof label === 'string' ? label.trim() : '';
  if (!isSharedLabel(clean)) {
    throw new ServiceError('invalid-input', `a shared device label is 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit, got ${JSON.stringify(String(label).slice(0, 80))}`);
  }
  return clean;
}

/** A device label as stored: NFC, no control characters, trimmed, 1-64 characters; ServiceError 'invalid-input' otherwise. */
export function cleanDeviceLabel(label: string): string {
  const clean = (typeof label === 'string' ? label : '').normalize('NFC').replace(/[\u0000-\u001f\u007f]/g, '').trim();
  if (clean.length === 0 || clean.length > 64) throw new ServiceError('invalid-input', `a device label is 1-64 characters, got ${JSON.stringify(String(label).slice(0, 80))}`);
  return clean;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
