import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EnrollmentCodeError } from '../../services/enrollment-codes.js';
import { PasskeyPolicyError } from '../../services/passkey-choice.js';
import { passkeyEvidence } from '../../services/passkey-evidence.js';
import { TokenUnusableError } from '../../store/errors.js';
import { peerCertificateDer } from '../../gateway/peer-certificate.js';
import { ServiceError } from '../../services/errors.js';
import type { User } from '../../store/types.js';
import type { PortalKit } from '../kit.js';
import {
  certificateIssuedPage,
  certificateOfferGonePage,
  certificateOfferPage,
  ENROLL_CERTIFICATE_PATH,
  enrollCertificateRequiredPage,
} from '../pages/certificate.js';
import { enrollPage } from '../pages/enroll.js';
import { messagePage } from '../pages/messages.js';

/**
 * With enrollment.requireClientCertificate, signed-in enrollment steps need the user's device
 * certificate too: setting up an authenticator app, and adding a passkey from the account page.
 */
const GATED_SESSION_PATHS = new Map<string, string>([
  ['/.kanmon/account/totp', 'totp'],
  ['/.kanmon/api/account/totp/enroll', 'totp'],
  ['/.kanmon/api/account/totp/confirm', 'totp'],
  ['/.kanmon/api/account/passkeys/options', 'passkey'],
  ['/.kanmon/api/account/passkeys/verify', 'passkey'],
]);

/** One-time enrollment links: the page, and the registration ceremony it runs. */
export function registerEnrollRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;

  /** The enrollment gate for this request's own TLS handshake; a refusal is answered here (and audited by the service). */
  const gate = async (req: FastifyRequest, reply: FastifyReply, user: Pick<User, 'id' | 'username'>, step: string): Promise<FastifyReply | undefined> => {
    if (!services.deviceEnrollment.gateOn) return undefined;
    const result = await services.deviceEnrollment.checkGate(user, peerCertificateDer(req.raw.socket), step, kit.ctxOf(req));
    if (result.ok) return undefined;
    reply.header('cache-control', 'no-store');
    if (req.method === 'GET' && !req.url.startsWith('/.kanmon/api/')) {
      return kit.htmlReply(reply, 403, enrollCertificateRequiredPage({ ...kit.pageBase(req), reason: result.reason }));
    }
    return kit.sendError(reply, req, 403, 'client-certificate-required', 'devices.gate.short');
  };

  /** The gate for an enrollment link's user (not the bootstrap link's, which has none yet). Bad tokens fall through to the service's own refusal. */
  const gateForLink = async (req: FastifyRequest, reply: FastifyReply, token: unknown, step: string): Promise<FastifyReply | undefined> => {
    if (!services.deviceEnrollment.gateOn) return undefined;
    const view = await services.enrollment.inspect(token);
    return view.user ? gate(req, reply, view.user, step) : undefined;
  };

  if (services.deviceEnrollment.gateOn) {
    app.addHook('preHandler', async (req, reply) => {
      const step = GATED_SESSION_PATHS.get(req.url.split('?')[0]!);
      if (!step) return;
      const active = await kit.sessionOf(req);
      // Without a session the route itself answers (login redirect or 401).
      if (!active) return;
      return gate(req, reply, active.user, step);
    });
  }

  app.get('/.kanmon/enroll', async (req, reply) => {
    const token = (req.query as Record<string, unknown>).token;
    try {
      const view = await services.enrollment.inspect(token);
      if (view.codeLocked) {
        return kit.htmlReply(reply, 410, messagePage({ ...kit.pageBase(req), titleKey: 'token.title', bodyKey: 'enroll.codeLocked' }));
      }
      // The first administrator has no certificate yet (there is no one to issue it): the bootstrap link is not gated.
      if (view.user) {
        const refused = await gate(req, reply, view.user, 'passkey');
        if (refused) return refused;
      }
      return kit.htmlReply(
        reply,
        200,
        enrollPage({
          ...kit.pageBase(req),
          token: token as string,
          bootstrap: view.token.purpose === 'bootstrap-admin',
          ...(view.user ? { username: view.user.username, displayName: view.user.displayName } : {}),
          expiresAt: view.token.expiresAt,
          codeRequired: view.codeRequired,
          requirement: view.requirement,
          otpUsable: view.otpUsable,
        }),
      );
    } catch (err) {
      if (!(err instanceof TokenUnusableError)) throw err;
      await services.audit.record({ type: 'enroll', result: 'failure', reason: `token-${err.reason}`, context: kit.ctxOf(req) });
      return kit.htmlReply(reply, 410, messagePage({ ...kit.pageBase(req), titleKey: 'token.title', bodyKey: `token.${err.reason}` }));
    }
  });

  app.post('/.kanmon/api/enroll/options', async (req, reply) => {
    const body = kit.bodyOf(req);
    const gateLink = (token: unknown, step: string) => gateForLink(req, reply, token, step);
    try {
      const refused = await gateLink(body.token, 'passkey');
      if (refused) return refused;
      return await services.enrollment.startRegistration(
        body.token,
        { username: body.username, displayName: body.displayName, code: body.code, authenticator: body.authenticator },
        kit.ctxOf(req),
      );
    } catch (err) {
      return refuseOrThrow(kit, req, reply, err);
    }
  });

  app.post('/.kanmon/api/enroll/verify', async (req, reply) => {
    const body = kit.bodyOf(req);
    const gateLink = (token: unknown, step: string) => gateForLink(req, reply, token, step);
    const context = kit.ctxOf(req);
    try {
      const refused = await gateLink(body.token, 'passkey');
      if (refused) return refused;
      const { user, credential } = await services.enrollment.finishRegistration(body.token, body.response, body.name, context);
      const { setCookie } = await services.sessions.start(user, ['passkey'], context, kit.sessionToken(req), { passkey: passkeyEvidence(credential) });
      reply.header('set-cookie', setCookie);
      // A group that offers certificates: this device's comes next, then the authenticator app if asked for.
      if (await services.deviceEnrollment.standOffer(user)) {
        return { redirect: `${ENROLL_CERTIFICATE_PATH}${body.thenTotp === true ? '?next=totp' : ''}` };
      }
      // The authenticator app comes after the passkey, when the user asked for it and has a session for it.
      return { redirect: body.thenTotp === true ? '/.kanmon/account/totp' : '/' };
    } catch (err) {
      return refuseOrThrow(kit, req, reply, err);
    }
  });

  app.get(ENROLL_CERTIFICATE_PATH, async (req, reply) => {
    const next = nextAfterOffer((req.query as Record<string, unknown>).next);
    const active = await kit.sessionOf(req);
    if (!active) return reply.redirect(`/.kanmon/login?return=${encodeURIComponent(ENROLL_CERTIFICATE_PATH)}`, 302);
    reply.header('cache-control', 'no-store');
    if (!(await services.deviceEnrollment.hasOffer(active.user))) {
      return kit.htmlReply(reply, 410, certificateOfferGonePage({ ...kit.pageBase(req), next: next.href }));
    }
    return kit.htmlReply(reply, 200, certificateOfferPage({ ...kit.pageBase(req), deviceLabel: guessDeviceLabel(req.headers['user-agent']), next: next.key }));
  });

  // A same-origin form post (the portal's cross-site check has run): take or decline the offer.
  app.post(ENROLL_CERTIFICATE_PATH, async (req, reply) => {
    const body = kit.bodyOf(req);
    const next = nextAfterOffer(body.next);
    const active = await kit.sessionOf(req);
    if (!active) return kit.sendError(reply, req, 401, 'signed-out', 'error.forbidden');
    // The page holds the password; its download form must post with a real Origin (so no 'no-referrer').
    reply.header('cache-control', 'no-store');
    const context = kit.ctxOf(req);
    if (body.action === 'decline') {
      await services.deviceEnrollment.declineOffer(active.user, context);
      return reply.redirect(next.href, 303);
    }
    if (body.action !== 'accept') throw new ServiceError('invalid-input', 'action must be accept or decline');
    let accepted;
    try {
      accepted = await services.deviceEnrollment.acceptOffer(active.user, { deviceLabel: body.deviceLabel, legacy: body.legacy }, context);
    } catch (err) {
      if (err instanceof ServiceError && err.code === 'token-unusable') return kit.htmlReply(reply, 410, certificateOfferGonePage({ ...kit.pageBase(req), next: next.href }));
      throw err;
    }
    const { issued, link } = accepted;
    return kit.htmlReply(
      reply,
      200,
      certificateIssuedPage({
        ...kit.pageBase(req),
        password: issued.password,
        token: link.token,
        deviceLabel: issued.certificate.deviceLabel,
        serial: issued.certificate.serial,
        expiresAt: issued.certificate.expiresAt,
        next: next.href,
      }),
    );
  });
}

/** Where the user goes after the offer: only the two places enrollment leads to, never a URL from the request. */
function nextAfterOffer(value: unknown): { key: string; href: string } {
  return value === 'totp' ? { key: 'totp', href: '/.kanmon/account/totp' } : { key: '', href: '/' };
}

/** A first guess at the device's name from its browser, which the user can change. */
export function guessDeviceLabel(userAgent: unknown): string {
  const ua = typeof userAgent === 'string' ? userAgent.slice(0, 512) : '';
  if (/iPhone/.test(ua)) return 'iPhone';
  if (/iPad/.test(ua)) return 'iPad';
  if (/Android/.test(ua)) return 'Android';
  if (/Macintosh|Mac OS X/.test(ua)) return 'Mac';
  if (/Windows/.test(ua)) return 'Windows PC';
  if (/CrOS/.test(ua)) return 'Chromebook';
  if (/Linux/.test(ua)) return 'Linux PC';
  return 'device';
}

/** Code and policy refusals get their own message, so the page can say what to do next. */
function refuseOrThrow(kit: PortalKit, req: FastifyRequest, reply: FastifyReply, err: unknown) {
  if (err instanceof EnrollmentCodeError) {
    if (err.reason === 'code-locked') return kit.sendError(reply, req, 410, 'code-locked', 'enroll.codeLocked');
    return kit.sendError(reply, req, 403, err.reason, 'enroll.codeWrong');
  }
  if (err instanceof PasskeyPolicyError) return kit.sendError(reply, req, 403, err.reason, 'enroll.needsSecurityKey');
  throw err;
}
