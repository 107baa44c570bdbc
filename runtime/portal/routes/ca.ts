import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CA_CERT_PATH, CA_CRL_PATH, CERT_DOWNLOAD_PATH } from '../../ca/client-certificates.js';
import { ServiceError } from '../../services/errors.js';
import type { PortalKit } from '../kit.js';
import { ACCOUNT_CERTIFICATE_REVOKE_PATH, certDownloadGonePage, certDownloadPage, revokedOwnCertificatePage, revokeOwnCertificatePage } from '../pages/certificate.js';

/** What a download token looks like (32 random bytes, base64url); anything else is refused before the store is asked. */
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Kanmon's CA in public: its certificate (for clients' and relying parties' trust stores) and
 * its CRL (RFC 5280 §5, named in every certificate's CRL distribution point), and the one-time
 * download of a client certificate's PKCS#12 file.
 */
export function registerCaRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;

  app.get(CA_CERT_PATH, async (req, reply) => {
    const der = (req.query as Record<string, unknown>).format === 'der';
    reply.header('cache-control', 'public, max-age=3600');
    if (der) {
      // RFC 2585 §4.1: application/pkix-cert for a DER certificate.
      reply.header('content-disposition', 'attachment; filename="kanmon-ca.cer"');
      return reply.type('application/pkix-cert').send(Buffer.from(await services.ca.certificateDer()));
    }
    reply.header('content-disposition', 'inline; filename="kanmon-ca.pem"');
    return reply.type('application/x-pem-file').send(await services.ca.certificatePem());
  });

  app.get(CA_CRL_PATH, async (_req, reply) => {
    // RFC 2585 §4.2: application/pkix-crl, DER. A node rebuilds its CRL at least every minute.
    reply.header('cache-control', 'public, max-age=60');
    return reply.type('application/pkix-crl').send(Buffer.from(await services.ca.crlDer()));
  });

  app.get(CERT_DOWNLOAD_PATH, async (req, reply) => {
    const token = (req.query as Record<string, unknown>).token;
    // The portal's 'same-origin' referrer policy already keeps the token from other sites;
    // 'no-referrer' here would make the browser post the form with Origin: null, which the
    // cross-site check refuses.
    reply.header('cache-control', 'no-store');
    if (typeof token !== 'string' || !TOKEN.test(token)) return gone(kit, req, reply);
    return kit.htmlReply(reply, 200, certDownloadPage({ ...kit.pageBase(req), token }));
  });

  // The portal's cross-site check has already run: only a POST from our own origin gets here.
  app.post(CERT_DOWNLOAD_PATH, async (req, reply) => {
    const body = kit.bodyOf(req);
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
    let file;
    try {
      file = await services.clientCertificates.redeemDownloadLink(body.token, kit.ctxOf(req));
    } catch (err) {
      // Used, expired, unknown, or the certificate was revoked since: all the same to the user.
      if (err instanceof ServiceError && (err.code === 'token-unusable' || err.code === 'conflict' || err.code === 'not-found')) return gone(kit, req, reply);
      throw err;
    }
    const pkcs12 = Buffer.from(file.pkcs12);
    file.pkcs12.fill(0);
    reply.header('content-disposition', `attachment; filename="${file.fileName}"`);
    reply.header('x-content-type-options', 'nosniff');
    // RFC 7292 Appendix D: application/x-pkcs12, which every platform's installer opens.
    return reply.type('application/x-pkcs12').send(pkcs12);
  });

  // A user's own certificate, from the account page: a GET shows what would be revoked, only the same-origin POST revokes.
  app.get(ACCOUNT_CERTIFICATE_REVOKE_PATH, async (req, reply) => {
    const active = await kit.sessionOf(req);
    if (!active) return reply.redirect(`/.kanmon/login?return=${encodeURIComponent('/.kanmon/account')}`, 302);
    const serial = (req.query as Record<string, unknown>).serial;
    const own = typeof serial === 'string' && serial.length <= 64 ? (await services.clientCertificates.listForUser(active.user.id)).find((c) => c.serial === serial.toLowerCase()) : undefined;
    reply.header('cache-control', 'no-store');
    if (!own || own.status !== 'active') return kit.sendError(reply, req, 404, 'not-found', 'error.notFound');
    return kit.htmlReply(reply, 200, revokeOwnCertificatePage({ ...kit.pageBase(req), certificate: own }));
  });

  app.post(ACCOUNT_CERTIFICATE_REVOKE_PATH, async (req, reply) => {
    const active = await kit.requireSession(req);
    const body = kit.bodyOf(req);
    // Someone else's serial or a malformed one: 404 from the service, audited there.
    await services.clientCertificates.revokeOwn(active.user, body.serial, { context: kit.ctxOf(req) });
    reply.header('cache-control', 'no-store');
    return kit.htmlReply(reply, 200, revokedOwnCertificatePage(kit.pageBase(req)));
  });
}

function gone(kit: PortalKit, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return kit.htmlReply(reply, 410, certDownloadGonePage(kit.pageBase(req)));
}
