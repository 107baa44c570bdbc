import type { FastifyInstance } from 'fastify';
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
      return kit.htmlReply(
        reply,
        200,
        enrollPage({
          ...kit.pageBase(req),
          token: token as string,
          bootstrap: view.token.purpose === 'bootstrap-admin',
          ...(view.user ? { username: view.user.username, displayName: view.user.displayName } : {}),
          expiresAt: view.token.expiresAt,
        }),
      );
    } catch (err) {
      if (!(err instanceof TokenUnusableError)) throw err;
      await services.audit.record({ type: 'enroll', result: 'failure', reason: `token-${err.reason}`, context: kit.ctxOf(req) });
      return kit.htmlReply(reply, 410, messagePage({ ...kit.pageBase(req), titleKey: 'token.title', bodyKey: `token.${err.reason}` }));
    }
  });

  app.post('/.kanmon/api/enroll/options', async (req) => {
    const body = kit.bodyOf(req);
    return services.enrollment.startRegistration(body.token, { username: body.username, displayName: body.displayName });
  });

  app.post('/.kanmon/api/enroll/verify', async (req, reply) => {
    const body = kit.bodyOf(req);
    const context = kit.ctxOf(req);
    const { user } = await services.enrollment.finishRegistration(body.token, body.response, body.name, context);
    const { setCookie } = await services.sessions.start(user, ['passkey'], context, kit.sessionToken(req));
    reply.header('set-cookie', setCookie);
    return { redirect: '/' };
  });
}
