import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EnrollmentCodeError } from '../../services/enrollment-codes.js';
import { PasskeyPolicyError } from '../../services/passkey-choice.js';
import { passkeyEvidence } from '../../services/passkey-evidence.js';
import { TokenUnusableError } from '../../store/errors.js';
import type { PortalKit } from '../kit.js';
import { enrollPage } from '../pages/enroll.js';
import { messagePage } from '../pages/messages.js';

/** One-time enrollment links: the page, and the registration ceremony it runs. */
export function registerEnrollRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;

  app.get('/.kanmon/enroll', async (req, reply) => {
    const token = (req.query as Record<string, unknown>).token;
    try {
      const view = await services.enrollment.inspect(token);
      if (view.codeLocked) {
        return kit.htmlReply(reply, 410, messagePage({ ...kit.pageBase(req), titleKey: 'token.title', bodyKey: 'enroll.codeLocked' }));
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
    try {
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
    const context = kit.ctxOf(req);
    try {
      const { user, credential } = await services.enrollment.finishRegistration(body.token, body.response, body.name, context);
      const { setCookie } = await services.sessions.start(user, ['passkey'], context, kit.sessionToken(req), { passkey: passkeyEvidence(credential) });
      reply.header('set-cookie', setCookie);
      // The authenticator app comes after the passkey, when the user asked for it and has a session for it.
      return { redirect: body.thenTotp === true ? '/.kanmon/account/totp' : '/' };
    } catch (err) {
      return refuseOrThrow(kit, req, reply, err);
    }
  });
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
