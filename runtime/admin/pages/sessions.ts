import { html, timeTag } from '../../portal/html.js';
import { ADMIN_PREFIX, field, type AdminConsole } from '../console.js';
import { postForm } from '../layout.js';
import { userPath } from './users.js';

export const SESSIONS_PATH = `${ADMIN_PREFIX}/sessions`;

/** Every active session, with revocation (every node stops accepting it within the session cache bound). */
export function registerSessions(c: AdminConsole): void {
  c.addNav({ href: SESSIONS_PATH, label: 'admin.nav.sessions', order: 50 });

  c.page(SESSIONS_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const rows = await c.services.adminConsole.activeSessions();
    const body = html`<p class="hint">${t('admin.sessions.hint')} (${c.config.session.cacheSeconds} s)</p>
<table id="all-sessions"><thead><tr><th scope="col">${t('admin.users.username')}</th><th scope="col">${t('account.col.started')}</th><th scope="col">${t('account.col.lastSeen')}</th><th scope="col">${t('admin.sessions.methods')}</th><th scope="col">${t('account.col.address')}</th><th scope="col">${t('account.col.device')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${rows.map(
      ({ session, user }) => html`<tr data-username="${user.username}"><td><a href="${userPath(user.username)}">${user.username}</a> <span class="display-name">${user.displayName}</span>${session.id === a.active.session.id ? html` <strong>(${t('account.thisSession')})</strong>` : ''}</td><td>${timeTag(session.createdAt, '')}</td><td>${timeTag(session.lastSeenAt, '')}</td><td>${session.authMethods.join('+')}</td><td>${session.ip}</td><td class="ua">${session.userAgent.slice(0, 120)}</td>
<td>${postForm({ action: `${SESSIONS_PATH}/revoke`, csrf: a.csrf, className: 'inline-action', body: html`<input type="hidden" name="_back" value="${SESSIONS_PATH}"><input type="hidden" name="id" value="${session.id}"><button type="submit" class="danger revoke-session">${t('admin.sessions.revoke')}</button>` })}</td></tr>`,
    )}</tbody></table>
${rows.length === 0 ? html`<p>${t('admin.sessions.none')}</p>` : ''}`;
    return c.html(reply, c.render(req, a, { section: SESSIONS_PATH, title: t('admin.nav.sessions'), body }));
  });

  c.action(`${SESSIONS_PATH}/revoke`, async (req, reply, a) => {
    const id = field(c.kit.bodyOf(req), 'id', 64);
    const user = await c.services.adminConsole.revokeSession(id, a.user.username, c.kit.ctxOf(req));
    await c.recordChange(req, a, { type: 'session.revoke', target: user, before: { session: id.slice(0, 8) }, after: null });
    return c.done(reply, SESSIONS_PATH, 'revoked');
  });
}
