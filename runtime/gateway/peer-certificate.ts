import { TLSSocket } from 'node:tls';
import type { PresentedCertificateCheck } from '../ca/index.js';
import type { PolicyCertificateHolder } from '../policy/decide.js';

/** The part of ClientCertificateService the listener and the gateway use. */
export interface PresentedCertificateChecker {
  checkPresented(peerCertDer: Uint8Array): Promise<PresentedCertificateCheck>;
  /** The status cache bound: how stale a certificate's status may be (clientCertificates.statusCacheSeconds). */
  readonly statusCacheMs: number;
}

/** What one TLS connection proved with its client certificate. */
export interface PeerEvidence {
  readonly check: PresentedCertificateCheck;
  /** For a valid user certificate: that user, when it exists (certificate-only routes name them). */
  readonly holder?: PolicyCertificateHolder;
}

export interface PeerCertificatesDeps {
  readonly checker: PresentedCertificateChecker;
  /** Looks up the user a user certificate names. */
  readonly userById: (userId: string) => Promise<PolicyCertificateHolder | undefined>;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

interface Entry {
  readonly evidence: Promise<PeerEvidence>;
  /** Epoch ms after which the answer must be checked again; Infinity while the check runs. */
  until: number;
}

/**
 * The DER certificate this TLS connection's own handshake carried (RFC 8446 §4.4.2, RFC 5246
 * §7.4.6), whether the connection arrived directly or after a PROXY v2 header. Certificates in
 * request headers are never read: they are whatever the client wanted to write.
 */
export function peerCertificateDer(socket: unknown): Buffer | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  // Read on every request (a TLS 1.2 renegotiation may change it), so only the DER: no parsed
  // chain or fingerprints as getPeerCertificate builds. Undefined when no certificate was sent.
  const raw = socket.getPeerX509Certificate()?.raw;
  return raw && raw.length > 0 ? raw : undefined;
}

/**
 * Per-connection answers of checkPresented. A keep-alive connection's requests reuse one
 * answer, but never for longer than the status cache bound counted from when the status was
 * read from the store, so a revocation on any node is refused within that bound here too.
 */
export class PeerCertificates {
  readonly #deps: PeerCertificatesDeps;
  readonly #now: () => number;
  readonly #bySocket = new WeakMap<object, Entry>();

  constructor(deps: PeerCertificatesDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** What the connection's certificate proves; undefined when it presented none. */
  evidenceOf(socket: unknown): Promise<PeerEvidence> | undefined {
    const der = peerCertificateDer(socket);
    if (!der) return undefined;
    const key = socket as object;
    const cached = this.#bySocket.get(key);
    if (cached && this.#now() < cached.until) return cached.evidence;
    const entry: Entry = { evidence: this.#evaluate(der), until: Number.POSITIVE_INFINITY };
    this.#bySocket.set(key, entry);
    entry.evidence.then(
      (evidence) => {
        entry.until = this.#keepUntil(evidence.check);
      },
      () => {
        entry.until = 0;
      },
    );
    return entry.evidence;
  }

  async #evaluate(der: Uint8Array): Promise<PeerEvidence> {
    const check = await this.#deps.checker.checkPresented(der);
    if (!check.valid || check.owner.kind !== 'user') return { check };
    const holder = await this.#deps.userById(check.owner.userId);
    return holder ? { check, holder } : { check };
  }

  #keepUntil(check: PresentedCertificateCheck): number {
    const bound = this.#deps.checker.statusCacheMs;
    // A store that could not be read is asked again on the next request; so is everything when caching is off.
    if (bound <= 0 || (!check.valid && check.reason === 'unavailable')) return 0;
    const readAt = check.statusReadAt ?? this.#now();
    const until = readAt + bound;
    return check.valid ? Math.min(until, check.expiresAt) : until;
  }
}
