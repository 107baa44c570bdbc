import type { FastifyInstance } from 'fastify';
import { safeReturnPath } from '../../http/return-path.js';
import { LoginLockedError } from '../../services/login-guard.js';
import type { PortalKit } from '../kit.js';
import { loginPage } from '../pages/login.js';
import { messagePage } from '../pages/messages.js';

/** Passkey login (button and autofill), sign-out. */
export function registerLoginRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;

  app.get('/.kanmon/login', async (req, reply) => {
    const returnTo = safeReturnPath((req.query as Record<string, unknown>).return);
    return kit.htmlReply(reply, 200, loginPage({ ...kit.pageBase(req), returnTo }));
  });

  app.post('/.kanmon/api/login/options', async () => services.passkeyLogin.start());

  app.post('/.kanmon/api/login/verify', async (req, reply) => {
    const body = kit.bodyOf(req);
    try {
      const { setCookie } = await services.passkeyLogin.finish(body.response, kit.ctxOf(req), kit.sessionToken(req));
      reply.header('set-cookie', setCookie);
      return { redirect: safeReturnPath(body.returnTo) };
    } catch (err) {
      // A lock is answered exactly as a refused ceremony is: from outside, it is just a failure.
      if (err instanceof LoginLockedError) return kit.sendError(reply, req, 400, 'ceremony-failed', 'common.failed');
      throw err;
    }
  });

  app.post('/.kanmon/logout', async (req, reply) => {
    const token = kit.sessionToken(req);
    if (token) {
      const active = await services.sessions.resolve(token);
      await services.sessions.end(token, kit.ctxOf(req), active?.user);
    }
    reply.header('set-cookie', services.sessions.clearCookieHeader());
    return reply.redirect('/.kanmon/signed-out', 303);
  });

  app.get('/.kanmon/signed-out', async (req, reply) =>
    kit.htmlReply(
      reply,
      200,
      messagePage({ ...kit.pageBase(req), titleKey: 'signedOut.title', bodyKey: 'signedOut.body', link: { href: '/.kanmon/login', labelKey: 'common.signIn' } }),
    ),
  );
}
