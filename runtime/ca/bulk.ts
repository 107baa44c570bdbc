import { ServiceError, type ServiceErrorCode } from '../services/errors.js';
import type { RequestContext } from '../services/request-context.js';
import type { UserService } from '../services/users.js';
import type { ClientCertificateKeyType, RevocationReason, User } from '../store/types.js';
import type { ClientCertificateService } from './client-certificates.js';
import { csvField } from './csv.js';
import type { Pkcs12Profile } from './pkcs12.js';
import { buildZip, type ZipEntry } from './zip.js';

/** How many users a bulk operation works on at once: enough to overlap store round trips, few enough not to starve the server. */
const BULK_CONCURRENCY = 8;
/** A bulk run is for a department or a company, not a whole directory at once. */
export const MAX_BULK_USERS = 5000;

/** The outcome for one user of a bulk operation; every user listed gets exactly one. */
export interface BulkUserResult {
  readonly username: string;
  readonly ok: boolean;
  /** What happened: e.g. "issued", "revoked 2", "nothing to revoke". */
  readonly outcome: string;
  /** Certificates the operation touched. */
  readonly serials: readonly string[];
  /** Set when ok is false. */
  readonly error?: { readonly code: ServiceErrorCode | 'internal'; readonly message: string };
}

export interface BulkIssueResult {
  readonly results: readonly BulkUserResult[];
  /** The PKCS#12 files of every certificate issued, plus index.csv (no passwords). */
  readonly zip: Uint8Array;
  /**
   * The password sheet, CSV: one row per file. Kept out of the zip on purpose, so the files and
   * their passwords travel separately (a lost zip alone opens nothing).
   */
  readonly passwordSheetCsv: string;
}

export interface BulkDownloadResult {
  readonly results: readonly BulkUserResult[];
  /** The PKCS#12 files still waiting for download, plus index.csv. Their passwords were shown at issuance and are not stored. */
  readonly zip: Uint8Array;
}

export interface BulkOptions {
  readonly actor?: string;
  readonly context?: RequestContext;
}

interface ZipFile {
  readonly username: string;
  readonly displayName: string;
  readonly deviceLabel: string;
  readonly fileName: string;
  readonly serial: string;
  readonly expiresAt: number;
  readonly pkcs12: Uint8Array;
  readonly password?: string;
}

/**
 * Issue, download, revoke and delete for a list of users (typed, or read from a CSV with
 * parseUsernameCsv). Each user gets a result of their own, and one user's failure never stops
 * the others. Revoking or deleting twice is harmless: the second run reports nothing to do.
 */
export class BulkCertificateOperations {
  constructor(
    private readonly deps: { readonly certificates: ClientCertificateService; readonly users: UserService; readonly now?: () => number },
  ) {}

  async issue(
    usernames: readonly string[],
    options: BulkOptions & { deviceLabel?: string; keyType?: ClientCertificateKeyType; profile?: Pkcs12Profile } = {},
  ): Promise<BulkIssueResult> {
    const files: ZipFile[] = [];
    const results = await this.#each(usernames, async (user) => {
      const issued = await this.deps.certificates.issueForUser(user, {
        ...(options.deviceLabel ? { deviceLabel: options.deviceLabel } : {}),
        ...(options.keyType ? { keyType: options.keyType } : {}),
        ...(options.profile ? { profile: options.profile } : {}),
        ...this.#action(options),
      });
      // Putting the file in the zip is its first download.
      const file = await this.deps.certificates.download(issued.certificate.serial, this.#action(options));
      files.push({
        username: user.username,
        displayName: user.displayName,
        deviceLabel: issued.certificate.deviceLabel,
        fileName: file.fileName,
        serial: file.serial,
        expiresAt: issued.certificate.expiresAt,
        pkcs12: file.pkcs12,
        password: issued.password,
      });
      return { outcome: 'issued', serials: [issued.certificate.serial] };
    });
    const sorted = sortFiles(files);
    const sheet = [
      ['username', 'display name', 'device', 'file', 'password', 'serial', 'expires'],
      ...sorted.map((f) => [f.username, f.displayName, f.deviceLabel, f.fileName, f.password ?? '', f.serial, iso(f.expiresAt)]),
    ];
    return { results, zip: this.#zip(sorted), passwordSheetCsv: toCsv(sheet) };
  }

  async download(usernames: readonly string[], options: BulkOptions = {}): Promise<BulkDownloadResult> {
    const files: ZipFile[] = [];
    const results = await this.#each(usernames, async (user) => {
      const serials: string[] = [];
      for (const certificate of await this.deps.certificates.listForUser(user.id)) {
        if (certificate.status !== 'active' || !(await this.deps.certificates.pendingDownload(certificate.serial))) continue;
        const file = await this.deps.certificates.download(certificate.serial, this.#action(options));
        files.push({
          username: user.username,
          displayName: user.displayName,
          deviceLabel: certificate.deviceLabel,
          fileName: file.fileName,
          serial: file.serial,
          expiresAt: certificate.expiresAt,
          pkcs12: file.pkcs12,
        });
        serials.push(certificate.serial);
      }
      if (serials.length === 0) throw new ServiceError('not-found', 'no certificate file is waiting for download; issue a new certificate');
      return { outcome: `downloaded ${serials.length}`, serials };
    });
    return { results, zip: this.#zip(sortFiles(files)) };
  }

  async revoke(usernames: readonly string[], options: BulkOptions & { reason?: RevocationReason } = {}): Promise<BulkUserResult[]> {
    return this.#each(usernames, async (user) => {
      const serials: string[] = [];
      for (const certificate of await this.deps.certificates.listForUser(user.id)) {
        if (certificate.status !== 'active') continue;
        const { changed } = await this.deps.certificates.revoke(certificate.serial, { ...this.#action(options), ...(options.reason ? { reason: options.reason } : {}) });
        if (changed) serials.push(certificate.serial);
      }
      return { outcome: serials.length === 0 ? 'nothing to revoke' : `revoked ${serials.length}`, serials };
    });
  }

  async delete(usernames: readonly string[], options: BulkOptions = {}): Promise<BulkUserResult[]> {
    return this.#each(usernames, async (user) => {
      const serials: string[] = [];
      for (const certificate of await this.deps.certificates.listForUser(user.id)) {
        const { changed } = await this.deps.certificates.delete(certificate.serial, this.#action(options));
        if (changed) serials.push(certificate.serial);
      }
      return { outcome: serials.length === 0 ? 'nothing to delete' : `deleted ${serials.length}`, serials };
    });
  }

  /** Runs `work` for every user, a few at a time, turning each failure into that user's result. */
  async #each(usernames: readonly string[], work: (user: User) => Promise<{ outcome: string; serials: string[] }>): Promise<BulkUserResult[]> {
    if (usernames.length > MAX_BULK_USERS) throw new ServiceError('invalid-input', `a bulk operation takes at most ${MAX_BULK_USERS} users, got ${usernames.length}; split the list`);
    const results: BulkUserResult[] = new Array(usernames.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < usernames.length; i = next++) {
        const username = usernames[i]!;
        try {
          const user = await this.deps.users.require(username);
          const done = await work(user);
          results[i] = { username, ok: true, ...done };
        } catch (err) {
          results[i] = {
            username,
            ok: false,
            outcome: 'failed',
            serials: [],
            error: err instanceof ServiceError ? { code: err.code, message: err.message } : { code: 'internal', message: err instanceof Error ? err.message : String(err) },
          };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, usernames.length) }, worker));
    return results;
  }

  #action(options: BulkOptions): { actor?: string; context?: RequestContext } {
    return { ...(options.actor ? { actor: options.actor } : {}), ...(options.context ? { context: options.context } : {}) };
  }

  #zip(files: readonly ZipFile[]): Uint8Array {
    const index = [
      ['username', 'display name', 'device', 'file', 'serial', 'expires'],
      ...files.map((f) => [f.username, f.displayName, f.deviceLabel, f.fileName, f.serial, iso(f.expiresAt)]),
    ];
    const entries: ZipEntry[] = [
      ...files.map((f) => ({ name: f.fileName, data: f.pkcs12 })),
      { name: 'index.csv', data: new TextEncoder().encode(toCsv(index)) },
    ];
    return buildZip(entries, new Date((this.deps.now ?? Date.now)()));
  }
}

function sortFiles(files: ZipFile[]): ZipFile[] {
  return [...files].sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : a.fileName < b.fileName ? -1 : 1));
}

/** CSV with CRLF line ends (RFC 4180 §2.1) and a BOM, so spreadsheet programs read Japanese names as UTF-8. */
function toCsv(rows: readonly (readonly string[])[]): string {
  return `\uFEFF${rows.map((row) => row.map(csvField).join(',')).join('\r\n')}\r\n`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
