/**
 * Answers ACME challenges on this node from the answers in the store, whichever node placed
 * the order: HTTP-01 (RFC 8555 §8.3) on the plain-HTTP listener and TLS-ALPN-01 (RFC 8737) on
 * the TLS listener.
 */
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import * as acme from 'acme-client';
import type { Logger } from 'pino';
import { alpnChallengeId, httpChallengeId, type ServerCertificateDocuments } from './server-certificate-documents.js';

/** RFC 8555 §8.3: the path an HTTP-01 validation requests. */
export const HTTP_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** RFC 8737 §6.2: the ALPN protocol of a TLS-ALPN-01 validation. */
export const ACME_TLS_ALPN = 'acme-tls/1';
/** RFC 8555 §8.1: a token is base64url; Let's Encrypt's are 43 characters. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

const kOffersAcmeTls = Symbol('kanmon.offersAcmeTls');

export type HttpChallengeAnswer = { readonly status: 200; readonly body: string } | { readonly status: 404 } | { readonly status: 503 };

export class AcmeChallengeResponder {
  /** Challenge certificates made on this node, by name and key authorization; a validation connects several times. */
  readonly #alpnContexts = new Map<string, { keyAuthorization: string; context: Promise<SecureContext> }>();
  readonly #names: ReadonlySet<string>;

  constructor(
    private readonly certificates: ServerCertificateDocuments,
    names: readonly string[],
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.#names = new Set(names.map((n) => n.toLowerCase()));
  }

  /** Whether a plain-HTTP request path is an HTTP-01 validation (anything else is redirected to https). */
  static isHttpChallengePath(url: string | undefined): boolean {
    return !!url && url.startsWith(HTTP_CHALLENGE_PREFIX);
  }

  /** The answer to `GET /.well-known/acme-challenge/<token>`: the key authorization, 404 when unknown, 503 when the store fails. */
  async answerHttp(url: string): Promise<HttpChallengeAnswer> {
    const token = url.slice(HTTP_CHALLENGE_PREFIX.length);
    if (!TOKEN.test(token)) return { status: 404 };
    try {
      const keyAuthorization = await this.certificates.getChallenge(httpChallengeId(token), this.now());
      // RFC 8555 §8.3: the body is the key authorization, which begins with the token.
      if (!keyAuthorization || !keyAuthorization.startsWith(`${token}.`)) return { status: 404 };
      return { status: 200, body: keyAuthorization };
    } catch (err) {
      this.logger.warn({ err }, 'ACME HTTP-01 answer could not be read from the store');
      return { status: 503 };
    }
  }

  /**
   * TLS options for the listener. OpenSSL asks for the ALPN protocol before the certificate
   * (verified for the Node versions Kanmon supports), so the ALPN callback marks the socket and
   * the SNI callback then hands a validation the challenge certificate; every other handshake
   * keeps the listener's own context and its usual http/1.1.
   */
  tlsOptions(): { ALPNCallback: (this: TLSSocket, arg: { servername: string; protocols: string[] }) => string | undefined; SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void } {
    const responder = this;
    return {
      ALPNCallback(this: TLSSocket, { protocols }) {
        if (protocols.includes(ACME_TLS_ALPN)) {
          (this as unknown as Record<symbol, boolean>)[kOffersAcmeTls] = true;
          return ACME_TLS_ALPN;
        }
        // As the listener's default (ALPNProtocols ['http/1.1']): no common protocol, no connection.
        return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
      },
      SNICallback(this: unknown, servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) {
        const socket = this as Record<symbol, boolean> | undefined;
        if (!socket?.[kOffersAcmeTls]) {
          cb(null);
          return;
        }
        responder.alpnContext(servername).then(
          (ctx) => (ctx ? cb(null, ctx) : cb(new Error(`no pending TLS-ALPN-01 challenge for ${servername}`))),
          (err: Error) => cb(err),
        );
      },
    };
  }

  /** The challenge certificate's context for a name with a pending TLS-ALPN-01 challenge. */
  async alpnContext(servername: string): Promise<SecureContext | undefined> {
    const name = servername.toLowerCase();
    // Only configured names reach the store: a stranger's handshakes cost no reads.
    if (!this.#names.has(name)) return undefined;
    const keyAuthorization = await this.certificates.getChallenge(alpnChallengeId(name), this.now());
    if (!keyAuthorization) return undefined;
    const cached = this.#alpnContexts.get(name);
    if (cached && cached.keyAuthorization === keyAuthorization) return cached.context;
    const context = (async () => {
      const key = await acme.crypto.createPrivateEcdsaKey('P-256');
      const [, cert] = await acme.crypto.createAlpnCertificate({ identifier: { type: 'dns', value: name } } as acme.Authorization, keyAuthorization, key);
      return createSecureContext({ key, cert, ALPNProtocols: [ACME_TLS_ALPN] } as Parameters<typeof createSecureContext>[0]);
    })();
    this.#alpnContexts.set(name, { keyAuthorization, context });
    context.catch(() => this.#alpnContexts.delete(name));
    return context;
  }
}
