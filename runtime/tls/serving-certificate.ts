/**
 * The certificate the TLS listener presents, swapped in place when its source changes: new
 * handshakes get the new certificate at once (tls.Server#setSecureContext), connections already
 * open keep theirs and are never dropped.
 *
 * Sources: the store (acme, imported; polled by the document's version), files (polled by
 * modification time, size and inode), or fixed (self-signed-dev). For acme this also drives
 * renewal: every node checks, one orders under the store lease (see server-certificate-service.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { ClientAuthOptions } from './client-auth.js';
import { createPlaceholderCertificate } from './placeholder-certificate.js';
import { describeCertificate, type ServerCertificate } from './server-certificate-documents.js';
import type { RenewalOutcome, ServerCertificateService } from './server-certificate-service.js';
import type { SecretsManagerCertificate } from './secrets-manager-certificate.js';

/** How often each node looks for a new certificate: the bound on how long a node serves the previous one. @default 30 s */
export const DEFAULT_CERTIFICATE_POLL_MS = 30_000;
/** How often each node asks whether renewal is due (two small store reads). @default 60 s */
export const DEFAULT_RENEWAL_CHECK_MS = 60_000;

export type CertificateSource =
  | { readonly kind: 'fixed'; readonly certificate: ServerCertificate }
  | { readonly kind: 'file'; readonly certFile: string; readonly keyFile: string }
  | { readonly kind: 'store'; readonly service: ServerCertificateService; readonly renew: boolean; readonly names: readonly string[] }
  | { readonly kind: 'secrets-manager'; readonly secret: SecretsManagerCertificate };

export interface ServingCertificateOptions {
  readonly source: CertificateSource;
  readonly logger: Logger;
  /** @default DEFAULT_CERTIFICATE_POLL_MS */
  readonly pollMs?: number;
  /** @default DEFAULT_RENEWAL_CHECK_MS */
  readonly renewalCheckMs?: number;
}

/** The TLS options every context of the listener shares. */
const BASE_OPTIONS = { minVersion: 'TLSv1.2' } as const;

export class ServingCertificate {
  #current!: ServerCertificate;
  #fileStamp = '';
  #secretVersion: string | undefined;
  #server: TlsServer | undefined;
  #clientAuth: ClientAuthOptions | undefined;
  #timers: NodeJS.Timeout[] = [];
  #loaded = false;
  #waiters: Array<() => void> = [];
  #polling: Promise<boolean> | undefined;
  readonly #listeners: Array<(cert: ServerCertificate) => void> = [];

  private constructor(private readonly opts: ServingCertificateOptions) {}

  /** Loads the certificate (or, for acme without one yet, a placeholder) so the listener can start. */
  static async open(opts: ServingCertificateOptions): Promise<ServingCertificate> {
    const serving = new ServingCertificate(opts);
    const { source } = opts;
    if (source.kind === 'fixed') {
      serving.#set(source.certificate);
    } else if (source.kind === 'secrets-manager') {
      const cert = await source.secret.read();
      serving.#secretVersion = cert!.secretVersion;
      serving.#set(cert!);
    } else if (source.kind === 'file') {
      const loaded = await serving.#readFiles();
      if (!loaded) throw new Error(`tls: the files ${JSON.stringify(source.certFile)} and ${JSON.stringify(source.keyFile)} do not hold a usable certificate and key`);
    } else {
      const cert = await source.service.current();
      if (cert) serving.#set(cert);
      else if (!source.renew) {
        throw new Error('tls.source is "imported" but the store holds no server certificate yet: run `kanmon cert server import --cert FILE --key FILE` first');
      } else {
        const placeholder = await createPlaceholderCertificate(source.names);
        serving.#current = { source: 'placeholder', chainPem: placeholder.certPem, keyPem: placeholder.keyPem, serial: '', names: source.names, issuer: '', notBefore: 0, notAfter: placeholder.notAfter };
      }
    }
    return serving;
  }

  /** The options the listener is created with; later swaps go through setSecureContext. */
  tlsOptions(): { cert: string; key: string; minVersion: 'TLSv1.2' } {
    return { cert: this.#current.chainPem, key: this.#current.keyPem, ...BASE_OPTIONS };
  }

  /** The certificate in service (a placeholder before the first ACME certificate). */
  get current(): ServerCertificate {
    return this.#current;
  }

  /** The name this node orders under (acme): the store lease's holder and the status's lastOrderBy. */
  get orderHolder(): string | undefined {
    return this.opts.source.kind === 'store' ? this.opts.source.service.holder : undefined;
  }

  /** Whether a real certificate is in service; readiness waits for it. */
  get loaded(): boolean {
    return this.#loaded;
  }

  get notAfter(): Date | undefined {
    return this.#loaded ? new Date(this.#current.notAfter) : undefined;
  }

  /** Resolves once a real certificate is in service. */
  whenLoaded(): Promise<void> {
    return this.#loaded ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  onChange(listener: (cert: ServerCertificate) => void): void {
    this.#listeners.push(listener);
  }

  /** The listener whose context is swapped on every change, and the client-certificate CAs each new context keeps. */
  attach(server: TlsServer, clientAuth?: ClientAuthOptions): void {
    this.#server = server;
    this.#clientAuth = clientAuth;
  }

  /** Starts polling the source (and, for acme, the renewal checks); returns the stop function. */
  start(): () => void {
    const { source } = this.opts;
    if (source.kind !== 'fixed') {
      const poll = setInterval(() => void this.poll(), this.opts.pollMs ?? 30_000);
      poll.unref();
      this.#timers.push(poll);
    }
    if (source.kind === 'store' && source.renew) {
      void this.renewNow();
      const renew = setInterval(() => void this.renewNow(), this.opts.renewalCheckMs ?? DEFAULT_RENEWAL_CHECK_MS);
      renew.unref();
      this.#timers.push(renew);
    }
    return () => {
      for (const t of this.#timers) clearInterval(t);
      this.#timers = [];
    };
  }

  /** Looks at the source once and swaps when it changed; true when a new certificate is now in service. */
  poll(): Promise<boolean> {
    if (!this.#polling) {
      this.#polling = this.#poll().finally(() => {
        this.#polling = undefined;
      });
    }
    return this.#polling;
  }

  /** One renewal check (acme); a renewed certificate is put into service on this node at once. */
  async renewNow(opts: { force?: boolean } = {}): Promise<RenewalOutcome | undefined> {
    const { source } = this.opts;
    if (source.kind !== 'store' || !source.renew) return undefined;
    try {
      const outcome = await source.service.renewIfDue(opts);
      if (outcome.action === 'renewed') await this.poll();
      return outcome;
    } catch (err) {
      this.opts.logger.error({ err }, 'server certificate renewal check failed');
      return undefined;
    }
  }

  async #poll(): Promise<boolean> {
    const { source, logger } = this.opts;
    try {
      if (source.kind === 'file') return await this.#readFiles();
      if (source.kind === 'secrets-manager') {
        const cert = await source.secret.read(this.#secretVersion);
        if (!cert) return false;
        this.#secretVersion = cert.secretVersion;
        this.#set(cert);
        return true;
      }
      if (source.kind === 'store') {
        const version = await source.service.currentVersion();
        if (version === undefined || version === this.#current.version) return false;
        const cert = await source.service.current();
        if (!cert) return false;
        this.#set(cert);
        return true;
      }
    } catch (err) {
      // The certificate in service stays; the next poll tries again.
      logger.error({ err }, 'server certificate could not be reloaded; the one in service stays');
    }
    return false;
  }

  async #readFiles(): Promise<boolean> {
    const { source, logger } = this.opts;
    if (source.kind !== 'file') return false;
    const [c, k] = await Promise.all([stat(source.certFile), stat(source.keyFile)]);
    const stamp = [c.ino, c.size, c.mtimeMs, k.ino, k.size, k.mtimeMs].join(':');
    if (stamp === this.#fileStamp) return false;
    const [chainPem, keyPem] = await Promise.all([readFile(source.certFile, 'utf8'), readFile(source.keyFile, 'utf8')]);
    let info;
    try {
      info = describeCertificate(chainPem, keyPem);
    } catch (err) {
      // Often the moment between writing the certificate and writing its key: the next poll sees both.
      if (this.#loaded) logger.warn({ err: (err as Error).message, certFile: source.certFile }, 'server certificate files not usable (yet); the one in service stays');
      else logger.error({ err: (err as Error).message, certFile: source.certFile }, 'server certificate files not usable');
      return false;
    }
    this.#fileStamp = stamp;
    if (this.#loaded && info.serial === this.#current.serial && chainPem === this.#current.chainPem) return false;
    this.#set({ source: 'file', chainPem, keyPem, ...info });
    return true;
  }

  #set(cert: ServerCertificate): void {
    const previous = this.#loaded ? this.#current : undefined;
    this.#current = cert;
    if (this.#server) {
      // New handshakes only; established connections keep their session (Node's documented behaviour).
      this.#server.setSecureContext({ cert: cert.chainPem, key: cert.keyPem, ...BASE_OPTIONS, ...(this.#clientAuth ? { ca: this.#clientAuth.ca } : {}) });
    }
    this.#loaded = true;
    for (const w of this.#waiters.splice(0)) w();
    if (previous) {
      this.opts.logger.info({ serial: cert.serial, previousSerial: previous.serial, notAfter: new Date(cert.notAfter).toISOString() }, 'server certificate reloaded');
    }
    for (const l of this.#listeners) l(cert);
  }
}

/** What `file` and `self-signed-dev` certificates say about themselves, as a ServerCertificate. */
export function certificateFromPem(source: ServerCertificate['source'], chainPem: string, keyPem: string): ServerCertificate {
  const info = describeCertificate(chainPem, keyPem);
  return { source, chainPem, keyPem, ...info };
}

export function notAfterOf(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}
