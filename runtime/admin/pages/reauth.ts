import { html } from '../../portal/html.js';
import { ADMIN_PREFIX, REAUTH_PATH, backPath, type AdminConsole } from '../console.js';

/**
 * The fresh-passkey step before a sensitive action: a page with one button (admin-reauth.js runs
 * the ceremony against the JSON API below), then back to where the action was started.
 */
export function registerReauth(c: AdminConsole): void {
  const deviceBound = () => c.config.admin.deviceBound;

  c.page(REAUTH_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const back = backPath((req.query as Record<string, unknown>).return);
    const body = html`<p>${t('admin.reauth.intro')}</p>
<p><button type="button" class="primary" id="reauth-button" data-return="${back}">${t('admin.reauth.button')}</button></p>
<p><a href="${back}">${t('admin.back')}</a></p>`;
    return c.html(reply, c.render(req, a, { section: '', title: t('admin.reauth.title'), body, scripts: ['simplewebauthn-browser.js', 'admin-reauth.js'] }));
  });

  c.api(`${ADMIN_PREFIX}/api/reauth/options`, async (_req, _reply, a) => c.services.adminReauth.start(a.user, { deviceBound: deviceBound() }));

  c.api(`${ADMIN_PREFIX}/api/reauth/verify`, async (req, _reply, a) => {
    const body = c.kit.bodyOf(req);
    await c.services.adminReauth.finish(a.user, a.active.session, body.response, c.kit.ctxOf(req), { deviceBound: deviceBound() });
    return { ok: true, redirect: backPath(body.returnTo) };
  });
}
