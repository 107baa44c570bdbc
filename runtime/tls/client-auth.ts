import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { clientAddressOf } from '../net/index.js';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { mtlsRequiredForAnyone, routeUsesMtls, type KanmonConfig } from '../config/schema.js';
import type { PeerCertificates } from '../gateway/peer-certificate.js';
import type { AuditInput } from '../services/audit-log.js';

/** What the TLS listener adds to its options when it asks for client certificates. */
export interface ClientAuthOptions {
  /** RFC 8446 §4.3.2 / RFC 5246 §7.4.4: send a CertificateRequest in every handshake. */
  readonly requestCert: true;
  /** Whether a handshake without a certificate that chains to `ca` fails (reject-connection). */
  readonly rejectUnauthorized: boolean;
  /** PEM certificates of the CAs a client certificate may chain to; also named in the CertificateRequest. */
  readonly ca: string[];
}

/** Whether the listener must ask for client certificates: some route uses 'mtls', someone must always present one, enforcement is per connection, enrollment needs one, or the admin console does. */
export function clientCertificatesWanted(config: KanmonConfig): boolean {
  const { requiredFor, enforcement } = config.mtls;
  return enforcement === 'reject-connection' || mtlsRequiredForAnyone(requiredFor) || config.routes.some(routeUsesMtls) || config.enrollment.requireClientCertificate || config.admin.requireMtls;
}

/**
 * The TLS options for client authentication: Kanmon's CA plus the extra trusted CA files. In
 * 'policy' mode the handshake accepts any certificate, or none, and the routes decide; in
 * 'reject-connection' mode OpenSSL refuses a missing certificate, or one that does not chain to
 * these CAs or is outside its validity (RFC 5280 §6), inside the handshake itself.
 */
export function clientAuthOptions(config: KanmonConfig, kanmonCaPems: readonly string[]): ClientAuthOptions {
  const extra = config.mtls.extraTrustedCaFiles.map((file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`mtls: option 'extraTrustedCaFiles' names ${JSON.stringify(file)}, which cannot be read: ${(err as Error).message}`);
    }
  });
  return { requestCert: true, rejectUnauthorized: config.mtls.enforcement === 'reject-connection', ca: [...kanmonCaPems, ...extra] };
}

/**
 * 'reject-connection' beyond what OpenSSL checks: a certificate of Kanmon's CA must also be
 * known, active and unrevoked in the store (through the status cache bound). OpenSSL has already
 * verified the chain, so a certificate Kanmon did not issue passes only when it chains to an
 * extra trusted CA. Every connection is checked as soon as its handshake completes, and no
 * request on it is served before that check has passed.
 */
export class ConnectionCertificateGuard {
  /** Connections whose refusal was already audited (the handshake check and a request may both see it). */
  readonly #audited = new WeakSet<object>();
  constructor(
    private readonly peers: PeerCertificates,
    private readonly logger: Logger,
    private readonly audit?: (input: AuditInput) => Promise<void>,
  ) {}

  /** Checks each new TLS session at once, so a revoked certificate loses its connection without sending a request. */
  attach(server: TlsServer): void {
    server.on('secureConnection', (socket: TLSSocket) => {
      void this.admit(socket).then((ok) => {
        if (!ok) socket.destroy();
      });
    });
  }

  /**
   * Whether requests on this connection may be served; refused connections are destroyed by the
   * caller. Asked per request, through the per-connection cache, so a keep-alive connection whose
   * certificate is revoked later is cut within the status cache bound.
   */
  admit(socket: TLSSocket): Promise<boolean> {
    return this.#decide(socket);
  }

  async #decide(socket: TLSSocket): Promise<boolean> {
    // Without a verified chain the handshake would have failed; this is the second line.
    if (!socket.authorized) return false;
    const evidence = this.peers.evidenceOf(socket);
    if (!evidence) return false;
    try {
      const { check } = await evidence;
      if (check.valid || check.reason === 'unknown-issuer') return true;
      this.logger.info({ reason: check.reason, serial: check.serial, remoteAddress: socket.remoteAddress }, 'connection refused: client certificate not valid');
      if (this.audit && check.reason !== 'unavailable' && check.reason !== 'malformed' && !this.#audited.has(socket)) {
        this.#audited.add(socket);
        const owner = check.owner;
        void this.audit({
          type: 'cert.present',
          result: 'failure',
          reason: check.reason,
          ...(owner?.kind === 'user' ? { userId: owner.userId } : {}),
          // The address PROXY v2 carried, when the connection came through the load balancer (only the socket is read).
          context: { ip: clientAddressOf({ socket } as unknown as IncomingMessage), userAgent: '' },
          details: { enforcement: 'reject-connection', serial: check.serial, ...(owner ? { certificateOwner: owner.kind === 'user' ? `user:${owner.userId}` : `shared:${owner.label}` } : {}) },
        });
      }
      return false;
    } catch (err) {
      this.logger.warn({ err }, 'connection refused: client certificate could not be checked');
      return false;
    }
  }
}
