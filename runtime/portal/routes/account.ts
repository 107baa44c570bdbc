import type { FastifyInstance } from 'fastify';
import { PasskeyPolicyError } from '../../services/passkey-choice.js';
import type { PortalKit } from '../kit.js';
import { accountPage } from '../pages/account.js';

/** A user's own passkeys and sessions. Every API here needs a session (401 without). */
export function registerAccountRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services, config } = kit;

  app.get('/.kanmon/account', async (req, reply) => {
    const active = await kit.sessionOf(req);
    if (!active) return reply.redirect(`/.kanmon/login?return=${encodeURIComponent('/.kanmon/account')}`, 302);
    const [passkeys, sessions, certificates] = await Promise.all([
      services.passkeyAccount.list(active.user),
      services.sessions.listForUser(active.user.id),
      services.clientCertificates.listForUser(active.user.id),
    ]);
    const now = Date.now();
    return kit.htmlReply(
      reply,
      200,
      accountPage({
        ...kit.pageBase(req),
        user: active.user,
        passkeys,
        sessions: sessions.filter((s) => s.absoluteExpiresAt > now && now - s.lastSeenAt < config.session.idleTimeoutSeconds * 1000),
        currentSessionId: active.session.id,
        deviceBoundNeeded: services.passkeyAccount.requirementFor(active.user).deviceBound,
        certificates,
      }),
    );
  });

  app.post('/.kanmon/api/account/passkeys/options', async (req) => services.passkeyAccount.startAdd((await kit.requireSession(req)).user));

  app.post('/.kanmon/api/account/passkeys/verify', async (req, reply) => {
    const a = await kit.requireSession(req);
    const body = kit.bodyOf(req);
    try {
      const cred = await services.passkeyAccount.finishAdd(a.user, body.response, body.name, kit.ctxOf(req));
      return { ok: true, id: cred.id };
    } catch (err) {
      // A synced passkey for a user whose group needs security keys: say so, not "failed".
      if (err instanceof PasskeyPolicyError) return kit.sendError(reply, req, 403, err.reason, 'enroll.needsSecurityKey');
      throw err;
    }
  });

  app.post('/.kanmon/api/account/passkeys/rename', async (req) => {
    const a = await kit.requireSession(req);
    const body = kit.bodyOf(req);
    await services.passkeyAccount.rename(a.user, body.id, body.name, kit.ctxOf(req));
    return { ok: true };
  });

  app.post('/.kanmon/api/account/passkeys/delete', async (req) => {
    const a = await kit.requireSession(req);
    await services.passkeyAccount.remove(a.user, kit.bodyOf(req).id, kit.ctxOf(req));
    return { ok: true };
  });

  app.post('/.kanmon/api/account/sessions/revoke-others', async (req) => {
    const a = await kit.requireSession(req);
    const count = await services.sessions.revokeAll(a.user, a.user.username, kit.ctxOf(req), a.session.id);
    return { ok: true, count };
  });
}
