import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { safeReturnPath } from '../../http/return-path.js';
import type { RouteConfig } from '../../config/schema.js';
import { ServiceError } from '../../services/errors.js';
import type { ActiveSession } from '../../services/sessions.js';
import type { MessageKey } from '../i18n.js';
import type { PortalKit } from '../kit.js';
import { upstreamAppsPage } from '../pages/upstream-apps.js';

export const APPS_PATH = '/.kanmon/account/apps';

/**
 * The user's own sign-in details for applications with their own login (upstreamAuth). Plain
 * forms (no script needed); every post carries a single-use token bound to the session, on top
 * of the portal's same-origin check, so a forged or replayed post changes nothing.
 */
export function registerUpstreamAppsRoutes(app: FastifyInstance, kit: PortalKit): void {
  const { services } = kit;
  const creds = services.upstreamCredentials;

  /** Routes this user may use that take the user's own credentials. */
  const routesFor = (a: ActiveSession): RouteConfig[] => creds.routesWithSignIn().filter((r) => creds.takesUserCredentials(r) && creds.routeAllows(r, a.user));

  const render = async (req: FastifyRequest, reply: FastifyReply, a: ActiveSession, status: number, extra: { notice?: { key: MessageKey; error?: boolean }; returnTo?: string } = {}) => {
    const query = req.query as Record<string, unknown>;
    const routes = routesFor(a);
    const focusId = typeof query.route === 'string' && routes.some((r) => r.id === query.route) ? query.route : undefined;
    const rows = [];
    for (const route of routes) {
      rows.push({
        route,
        status: await creds.status(route, { kind: 'user', userId: a.user.id }),
        secretOnly: creds.usernameFromTemplate(route),
        sharedFallback: route.upstreamAuth!.credentials === 'user-or-shared',
        formToken: await creds.issueFormToken(a.session.id),
      });
    }
    return kit.htmlReply(
      reply,
      status,
      upstreamAppsPage({
        ...kit.pageBase(req),
        rows,
        ...(focusId ? { focus: { routeId: focusId, why: 'missing' as const } } : {}),
        returnTo: extra.returnTo ?? safeReturnPath(query.return),
        ...(extra.notice ? { notice: extra.notice } : {}),
      }),
    );
  };

  app.get(APPS_PATH, async (req, reply) => {
    const a = await kit.sessionOf(req);
    if (!a) return reply.redirect(`/.kanmon/login?return=${encodeURIComponent(req.url)}`, 302);
    const query = req.query as Record<string, unknown>;
    const notice = query.saved !== undefined ? { key: 'upstream.credentials.saved' as const } : query.removed !== undefined ? { key: 'upstream.credentials.removed' as const } : undefined;
    return render(req, reply, a, 200, notice ? { notice } : {});
  });

  /** The route a post names, if this user may manage credentials for it; else a 404 that says nothing about other routes. */
  const routeOfPost = (a: ActiveSession, body: Record<string, unknown>): RouteConfig => {
    const route = routesFor(a).find((r) => r.id === body.route);
    if (!route) throw new ServiceError('not-found', 'no such application for this user');
    return route;
  };

  app.post(`${APPS_PATH}/save`, async (req, reply) => {
    const a = await kit.requireSession(req);
    const body = kit.bodyOf(req);
    const route = routeOfPost(a, body);
    if (!(await creds.consumeFormToken(a.session.id, body.token))) {
      await services.audit.record({ type: 'upstream.credentials.set', result: 'failure', reason: 'form-token', userId: a.user.id, username: a.user.username, context: kit.ctxOf(req), details: { route: route.id } });
      return render(req, reply, a, 409, { notice: { key: 'upstream.credentials.formUsed', error: true } });
    }
    try {
      await creds.set(route, { kind: 'user', userId: a.user.id }, { username: body.username, secret: body.password }, { actor: a.user.username, user: a.user, context: kit.ctxOf(req) });
    } catch (err) {
      if (err instanceof ServiceError && err.code === 'invalid-input') {
        req.log.info({ requestId: req.id, detail: err.message }, 'upstream credentials refused');
        return render(req, reply, a, 400, { notice: { key: 'upstream.credentials.invalid', error: true } });
      }
      throw err;
    }
    const back = safeReturnPath(body.return);
    return reply.redirect(back !== '/' || body.return === '/' ? back : `${APPS_PATH}?saved=${encodeURIComponent(route.id)}`, 303);
  });

  app.post(`${APPS_PATH}/remove`, async (req, reply) => {
    const a = await kit.requireSession(req);
    const body = kit.bodyOf(req);
    const route = routeOfPost(a, body);
    if (!(await creds.consumeFormToken(a.session.id, body.token))) {
      return render(req, reply, a, 409, { notice: { key: 'upstream.credentials.formUsed', error: true } });
    }
    await creds.clear(route, { kind: 'user', userId: a.user.id }, { actor: a.user.username, user: a.user, context: kit.ctxOf(req) });
    return reply.redirect(`${APPS_PATH}?removed=${encodeURIComponent(route.id)}`, 303);
  });
}
