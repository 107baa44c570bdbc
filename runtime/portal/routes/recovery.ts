import type { FastifyInstance } from 'fastify';
import { safeReturnPath } from '../../http/return-path.js';
import { FallbackLoginError } from '../../services/fallback-login.js';
import type { PortalKit } from '../kit.js';
import { codeLoginPage } from '../pages/code-login.js';

/**
 * Recovery codes: sign-in with one (which then leads to registering a new passkey), and the
 * user's own set (status, generate). Generating needs a session (401 without).
 */
export function registerRecoveryRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;

  app.get('/.kanmon/login/recovery', async (req, reply) => {
    const returnTo = safeReturnPath((req.query as Record<string, unknown>).return);
    return kit.htmlReply(reply, 200, codeLoginPage({ ...kit.pageBase(req), kind: 'recovery', returnTo }));
  });

  app.post('/.kanmon/api/login/recovery', async (req, reply) => {
    const body = kit.bodyOf(req);
    try {
      const result = await services.fallbackLogin.loginWithRecoveryCode({ username: body.username, code: body.code }, kit.ctxOf(req), kit.sessionToken(req));
      reply.header('set-cookie', result.setCookie);
      return { redirect: result.redirect, remaining: result.remaining };
    } catch (err) {
      if (err instanceof FallbackLoginError) return kit.sendError(reply, req, 401, 'login-failed', 'codeLogin.failed');
      throw err;
    }
  });

  app.get('/.kanmon/api/account/recovery-codes', async (req) => {
    const status = await services.recoveryCodes.status((await kit.requireSession(req)).user);
    return status ? { exists: true, ...status } : { exists: false, total: 0, unused: 0 };
  });

  /** The only answer that ever carries the codes in clear; the page shows them once. */
  app.post('/.kanmon/api/account/recovery-codes/generate', async (req) => {
    const a = await kit.requireSession(req);
    kit.bodyOf(req); // no fields, but still only a JSON object is accepted
    const codes = await services.recoveryCodes.generate(a.user, { context: kit.ctxOf(req) });
    return { codes };
  });
}
