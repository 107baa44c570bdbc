import type { FastifyInstance } from 'fastify';
import { safeReturnPath } from '../../http/return-path.js';
import { FallbackLoginError } from '../../services/fallback-login.js';
import type { PortalKit } from '../kit.js';
import { codeLoginPage } from '../pages/code-login.js';
import { totpEnrollPage } from '../pages/totp.js';

/**
 * Authenticator apps (TOTP): sign-in with a username and a code, and the user's own setup
 * (start, confirm, status, remove). Setup needs a session (401 without).
 */
export function registerTotpRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;

  app.get('/.kanmon/login/totp', async (req, reply) => {
    const returnTo = safeReturnPath((req.query as Record<string, unknown>).return);
    // Signed in already (a step-up after a passkey): the username is known, only the code is asked for.
    const active = await kit.sessionOf(req);
    return kit.htmlReply(reply, 200, codeLoginPage({ ...kit.pageBase(req), kind: 'otp', returnTo, ...(active ? { username: active.user.username } : {}) }));
  });

  app.post('/.kanmon/api/login/totp', async (req, reply) => {
    const body = kit.bodyOf(req);
    try {
      const { setCookie } = await services.fallbackLogin.loginWithTotp({ username: body.username, code: body.code }, kit.ctxOf(req), kit.sessionToken(req));
      reply.header('set-cookie', setCookie);
      return { redirect: safeReturnPath(body.returnTo) };
    } catch (err) {
      if (err instanceof FallbackLoginError) return kit.sendError(reply, req, 401, 'login-failed', 'codeLogin.failed');
      throw err;
    }
  });

  app.get('/.kanmon/account/totp', async (req, reply) => {
    const active = await kit.sessionOf(req);
    if (!active) return reply.redirect(`/.kanmon/login?return=${encodeURIComponent('/.kanmon/account/totp')}`, 302);
    const status = await services.totp.status(active.user);
    const view = status.enabled ? undefined : await services.totp.pendingEnrollment(active.user);
    return kit.htmlReply(
      reply,
      200,
      totpEnrollPage({
        ...kit.pageBase(req),
        username: active.user.username,
        state: status.enabled ? 'enabled' : view ? 'pending' : 'none',
        ...(view ? { view } : {}),
      }),
    );
  });

  app.get('/.kanmon/api/account/totp', async (req) => {
    const status = await services.totp.status((await kit.requireSession(req)).user);
    return { enabled: status.enabled, pending: status.pending, ...(status.confirmedAt !== undefined ? { confirmedAt: status.confirmedAt } : {}) };
  });

  app.post('/.kanmon/api/account/totp/enroll', async (req) => {
    const a = await kit.requireSession(req);
    kit.bodyOf(req); // no fields, but still only a JSON object is accepted
    await services.totp.beginEnrollment(a.user, kit.ctxOf(req));
    return { ok: true, next: '/.kanmon/account/totp' };
  });

  app.post('/.kanmon/api/account/totp/confirm', async (req) => {
    const a = await kit.requireSession(req);
    await services.totp.confirmEnrollment(a.user, kit.bodyOf(req).code, kit.ctxOf(req));
    return { ok: true };
  });

  app.post('/.kanmon/api/account/totp/reset', async (req) => {
    const a = await kit.requireSession(req);
    kit.bodyOf(req);
    await services.totp.reset(a.user, { context: kit.ctxOf(req), keepLastFactor: true });
    return { ok: true };
  });
}
