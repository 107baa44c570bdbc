import type { FastifyRequest } from 'fastify';
import { renderEnrollmentLetter } from '../../letters/enrollment-letter.js';
import { html, timeTag } from '../../portal/html.js';
import type { Body } from '../../portal/kit.js';
import { userFacts } from '../../services/admin-console.js';
import { formatEnrollmentCode } from '../../services/enrollment-codes.js';
import { ServiceError } from '../../services/errors.js';
import type { User } from '../../store/types.js';
import { ADMIN_PREFIX, field, optionalField, type AdminConsole, type AdminRequest } from '../console.js';
import { postForm } from '../layout.js';
import { letterFileName } from '../letters.js';

export const USERS_PATH = `${ADMIN_PREFIX}/users`;

export function userPath(username: string): string {
  return `${USERS_PATH}/${encodeURIComponent(username)}`;
}

function groupsFrom(text: string | undefined): string[] {
  return (text ?? '').split(/[\s,]+/).map((g) => g.trim()).filter(Boolean);
}

function isChecked(body: Body, name: string): boolean {
  return body[name] === 'on' || body[name] === 'true';
}

/** The CSP a served letter carries: its own inline style, nothing else, no script at all. */
export const LETTER_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'";

export function registerUsers(c: AdminConsole): void {
  const s = c.services;
  c.addNav({ href: USERS_PATH, label: 'admin.nav.users', order: 10 });

  c.page(USERS_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const q = req.query as Record<string, unknown>;
    const query = typeof q.q === 'string' ? q.q.slice(0, 128) : '';
    const cursor = typeof q.cursor === 'string' ? q.cursor.slice(0, 512) : undefined;
    const [page, locked] = await Promise.all([s.adminConsole.searchUsers({ query, ...(cursor ? { cursor } : {}), limit: 25 }), s.loginGuard.lockedUsers()]);
    const locks = new Map(locked.map((l) => [l.username, l.lockedUntil]));
    const next = page.cursor ? `${USERS_PATH}?${new URLSearchParams({ ...(query ? { q: query } : {}), cursor: page.cursor }).toString()}` : undefined;
    const body = html`
<form method="get" action="${USERS_PATH}" class="inline" role="search">
  <label for="user-search">${t('admin.users.search')}</label>
  <input id="user-search" name="q" type="search" value="${query}" maxlength="128">
  <button type="submit">${t('admin.users.searchButton')}</button>
  <a class="button primary" id="new-user" href="${USERS_PATH}/new">${t('admin.users.new')}</a>
</form>
<table id="users"><thead><tr><th scope="col">${t('admin.users.username')}</th><th scope="col">${t('admin.users.displayName')}</th><th scope="col">${t('admin.users.groups')}</th><th scope="col">${t('admin.users.role')}</th><th scope="col">${t('admin.users.status')}</th></tr></thead>
<tbody>${page.users.map(
      (u) => html`<tr data-username="${u.username}"><td><a href="${userPath(u.username)}">${u.username}</a></td><td class="display-name">${u.displayName}</td><td>${u.groups.join(', ')}</td><td>${u.isAdmin ? t('admin.users.admin') : ''}</td><td>${statusText(u, locks.get(u.username), t)}</td></tr>`,
    )}</tbody></table>
${page.users.length === 0 ? html`<p>${t('admin.users.none')}</p>` : ''}
${next ? html`<p><a id="next-page" href="${next}">${t('admin.next')}</a></p>` : ''}`;
    return c.html(reply, c.render(req, a, { section: USERS_PATH, title: t('admin.nav.users'), body }));
  });

  c.page(`${USERS_PATH}/new`, async (req, reply, a) => {
    const t = req.kanmonT;
    const body = postForm({
      action: USERS_PATH,
      csrf: a.csrf,
      id: 'new-user-form',
      className: 'card admin-form',
      body: html`<input type="hidden" name="_back" value="${USERS_PATH}/new">
<label for="username">${t('admin.users.username')}</label><input id="username" name="username" type="text" required maxlength="64" autocomplete="off">
<label for="displayName">${t('admin.users.displayName')}</label><input id="displayName" name="displayName" type="text" maxlength="128">
<label for="groups">${t('admin.users.groups')}</label><input id="groups" name="groups" type="text" maxlength="1024" aria-describedby="groups-hint"><p id="groups-hint" class="hint">${t('admin.users.groupsHint')}</p>
<div class="choice"><input id="isAdmin" name="isAdmin" type="checkbox"><label for="isAdmin">${t('admin.users.makeAdmin')}</label><p class="hint">${t('admin.users.makeAdminHint')}</p></div>
<button type="submit" class="primary" id="create-user">${t('admin.users.create')}</button>`,
    });
    return c.html(reply, c.render(req, a, { section: USERS_PATH, title: t('admin.users.new'), body }));
  });

  // Creating an administrator is sensitive; creating anyone else is not.
  c.action(
    USERS_PATH,
    async (req, reply, a) => {
      const b = c.kit.bodyOf(req);
      const displayName = optionalField(b, 'displayName', 128);
      const user = await s.users.addUser({
        username: field(b, 'username', 64),
        ...(displayName ? { displayName } : {}),
        groups: groupsFrom(optionalField(b, 'groups', 1024)),
        isAdmin: isChecked(b, 'isAdmin'),
        actor: a.user.username,
        context: c.kit.ctxOf(req),
      });
      await c.recordChange(req, a, { type: 'user.add', target: user, before: null, after: userFacts(user) });
      return c.done(reply, userPath(user.username), 'userCreated');
    },
    { sensitive: (b) => isChecked(b, 'isAdmin') },
  );

  c.page(`${USERS_PATH}/:username`, async (req, reply, a) => {
    const t = req.kanmonT;
    const user = await s.adminConsole.requireUser((req.params as { username: string }).username);
    const [passkeys, totp, recovery, sessions, certificates, lockedUntil] = await Promise.all([
      s.passkeyAccount.list(user),
      s.totp.status(user),
      s.recoveryCodes.status(user),
      s.sessions.listForUser(user.id),
      s.clientCertificates.listForUser(user.id),
      s.loginGuard.lockedUntil(user.username),
    ]);
    const path = userPath(user.username);
    const now = Date.now();
    const active = certificates.filter((x) => x.status === 'active' && x.expiresAt > now).length;
    const back = html`<input type="hidden" name="_back" value="${path}">`;
    const button = (action: string, label: string, o: { danger?: boolean; extra?: ReturnType<typeof html>; id?: string; confirm?: string } = {}) =>
      postForm({ action: `${path}/${action}`, csrf: a.csrf, className: 'inline-action', ...(o.confirm ? { confirm: o.confirm } : {}), body: html`${back}${o.extra ?? ''}<button type="submit"${o.id ? html` id="${o.id}"` : ''}${o.danger ? html` class="danger"` : ''}>${label}</button>` });
    const body = html`
<p class="lead"><strong id="user-display-name">${user.displayName}</strong> (<span id="user-username">${user.username}</span>) · ${statusText(user, lockedUntil, t)}${user.isAdmin ? html` · ${t('admin.users.admin')}` : ''}</p>
<section aria-labelledby="edit-h"><h2 id="edit-h">${t('admin.users.edit')}</h2>
${postForm({
  action: `${path}/edit`,
  csrf: a.csrf,
  id: 'edit-user-form',
  className: 'card admin-form',
  body: html`${back}
<label for="displayName">${t('admin.users.displayName')}</label><input id="displayName" name="displayName" type="text" maxlength="128" value="${user.displayName}">
<label for="groups">${t('admin.users.groups')}</label><input id="groups" name="groups" type="text" maxlength="1024" value="${user.groups.join(' ')}" aria-describedby="groups-hint"><p id="groups-hint" class="hint">${t('admin.users.groupsHint')}</p>
<div class="choice"><input id="isAdmin" name="isAdmin" type="checkbox"${user.isAdmin ? html` checked` : ''}><label for="isAdmin">${t('admin.users.makeAdmin')}</label></div>
<input type="hidden" name="isAdminField" value="1">
<button type="submit" class="primary" id="save-user">${t('admin.save')}</button>`,
})}
<div class="actions-row">
${user.disabled ? button('enable', t('admin.users.enable'), { id: 'enable-user' }) : button('disable', t('admin.users.disable'), { danger: true, id: 'disable-user', confirm: t('admin.confirm') })}
${lockedUntil !== undefined ? button('unlock', t('admin.users.unlock'), { id: 'unlock-user' }) : ''}
</div></section>
<section aria-labelledby="enroll-h"><h2 id="enroll-h">${t('admin.enroll.title')}</h2>
<div class="actions-row">
${postForm({ action: `${path}/enroll-link`, csrf: a.csrf, className: 'inline-action', body: html`${back}<div class="choice"><input id="link-code" name="code" type="checkbox"${c.config.enrollment.requireCode ? html` checked disabled` : ''}><label for="link-code">${t('admin.enroll.withCode')}</label></div><button type="submit" id="make-link">${t('admin.enroll.link')}</button>` })}
${postForm({ action: `${path}/letter`, csrf: a.csrf, className: 'inline-action', body: html`${back}<button type="submit" id="make-letter">${t('admin.enroll.letter')}</button>` })}
</div></section>
<section aria-labelledby="passkeys-h"><h2 id="passkeys-h">${t('account.passkeys')}</h2>
<table id="user-passkeys"><thead><tr><th scope="col">${t('account.col.name')}</th><th scope="col">${t('account.col.kind')}</th><th scope="col">${t('account.col.authenticator')}</th><th scope="col">${t('account.col.created')}</th><th scope="col">${t('account.col.lastUsed')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${passkeys.map((p) => html`<tr><td>${p.name}</td><td>${p.synced ? t('account.synced') : t('account.deviceBound')}</td><td>${p.authenticator ?? t('account.unknownAuthenticator')}</td><td>${timeTag(p.createdAt, '')}</td><td>${timeTag(p.lastUsedAt, t('account.never'))}</td>
<td>${button('passkeys/delete', t('account.delete'), { danger: true, confirm: t('admin.confirm'), extra: html`<input type="hidden" name="id" value="${p.id}">` })}</td></tr>`)}</tbody></table>
${passkeys.length === 0 ? html`<p>${t('admin.users.noPasskeys')}</p>` : ''}
</section>
<section aria-labelledby="factors-h"><h2 id="factors-h">${t('admin.users.otherFactors')}</h2>
<dl class="facts"><dt>${t('account.totp')}</dt><dd id="user-totp">${totp.enabled ? t('account.totpOn') : totp.pending ? t('admin.users.totpPending') : t('account.totpOff')}
${totp.enabled || totp.pending ? button('totp-reset', t('admin.users.reset'), { danger: true, confirm: t('admin.confirm'), id: 'totp-reset' }) : ''}</dd>
<dt>${t('account.recovery')}</dt><dd id="user-recovery">${recovery ? html`${recovery.unused} / ${recovery.total} ${t('admin.users.unused')}` : t('account.recoveryNone')}
${recovery ? button('recovery-reset', t('admin.users.reset'), { danger: true, confirm: t('admin.confirm'), id: 'recovery-reset' }) : ''}</dd></dl>
</section>
<section aria-labelledby="sessions-h"><h2 id="sessions-h">${t('account.sessions')}</h2>
<table id="user-sessions"><thead><tr><th scope="col">${t('account.col.started')}</th><th scope="col">${t('account.col.lastSeen')}</th><th scope="col">${t('admin.sessions.methods')}</th><th scope="col">${t('account.col.address')}</th><th scope="col">${t('account.col.device')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${sessions.map((x) => html`<tr><td>${timeTag(x.createdAt, '')}</td><td>${timeTag(x.lastSeenAt, '')}</td><td>${x.authMethods.join('+')}</td><td>${x.ip}</td><td class="ua">${x.userAgent.slice(0, 120)}</td>
<td>${button('sessions/revoke', t('admin.sessions.revoke'), { danger: true, extra: html`<input type="hidden" name="id" value="${x.id}">` })}</td></tr>`)}</tbody></table>
${sessions.length > 0 ? button('sessions/revoke', t('admin.sessions.revokeAll'), { danger: true, confirm: t('admin.confirm'), id: 'revoke-all-sessions' }) : html`<p>${t('admin.sessions.none')}</p>`}
</section>
<section aria-labelledby="certs-h"><h2 id="certs-h">${t('admin.certs.title')}</h2>
<p id="cert-limit">${t('admin.certs.limitUse')}: ${active} / ${c.config.clientCertificates.maxActivePerUser}</p>
<table id="user-certificates"><thead><tr><th scope="col">${t('admin.certs.serial')}</th><th scope="col">${t('admin.certs.device')}</th><th scope="col">${t('admin.users.status')}</th><th scope="col">${t('admin.certs.expires')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${certificates.map((x) => html`<tr data-serial="${x.serial}"><td><code>${x.serial}</code></td><td>${x.deviceLabel}</td><td class="cert-status" data-status="${x.status}">${t(`admin.certs.status.${x.status}`)}</td><td>${timeTag(x.expiresAt, '')}</td>
<td>${x.status === 'active' ? button('certificates/revoke', t('admin.certs.revoke'), { danger: true, confirm: t('admin.confirm'), extra: html`<input type="hidden" name="serial" value="${x.serial}">` }) : ''}</td></tr>`)}</tbody></table>
${postForm({ action: `${ADMIN_PREFIX}/certificates/issue`, csrf: a.csrf, className: 'inline-action', body: html`<input type="hidden" name="_back" value="${path}"><input type="hidden" name="username" value="${user.username}"><label for="cert-device">${t('admin.certs.device')}</label><input id="cert-device" name="device" type="text" maxlength="64"><button type="submit" id="issue-cert">${t('admin.certs.issue')}</button>` })}
</section>
<p><a href="${ADMIN_PREFIX}/audit?user=${encodeURIComponent(user.username)}">${t('admin.users.auditOf')}</a></p>`;
    return c.html(reply, c.render(req, a, { section: USERS_PATH, title: user.displayName, body }));
  });

  const userOf = (req: FastifyRequest) => s.adminConsole.requireUser((req.params as { username: string }).username);
  const ctx = (req: FastifyRequest) => c.kit.ctxOf(req);

  c.action(
    `${USERS_PATH}/:username/edit`,
    async (req, reply, a) => {
      const b = c.kit.bodyOf(req);
      const user = await userOf(req);
      const displayName = optionalField(b, 'displayName', 128);
      const { before, after } = await s.adminConsole.editUser(
        user.username,
        { displayName: displayName ?? '', groups: groupsFrom(optionalField(b, 'groups', 1024)), isAdmin: isChecked(b, 'isAdmin') },
        a.user.username,
        ctx(req),
      );
      await c.recordChange(req, a, { type: 'user.edit', target: after, before: userFacts(before), after: userFacts(after) });
      return c.done(reply, userPath(after.username), 'saved');
    },
    // Making someone an administrator is creating an admin.
    { sensitive: (b) => isChecked(b, 'isAdmin') },
  );

  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
    c.action(`${USERS_PATH}/:username/${action}`, async (req, reply, a) => {
      const before = await userOf(req);
      if (disabled && before.id === a.user.id) throw new ServiceError('forbidden', 'an administrator cannot disable themselves');
      const after = await s.users.setDisabled(before.username, disabled, a.user.username, ctx(req));
      await c.recordChange(req, a, { type: `user.${action}`, target: after, before: userFacts(before), after: userFacts(after) });
      return c.done(reply, userPath(after.username), disabled ? 'disabled' : 'enabled');
    });
  }

  c.action(`${USERS_PATH}/:username/unlock`, async (req, reply, a) => {
    const user = await userOf(req);
    const before = await s.loginGuard.lockedUntil(user.username);
    await s.loginGuard.unlock(user.username, { actor: a.user.username, user, context: ctx(req) });
    await c.recordChange(req, a, { type: 'user.unlock', target: user, before: { lockedUntil: before ?? null }, after: { lockedUntil: null } });
    return c.done(reply, userPath(user.username), 'unlocked');
  });

  c.action(`${USERS_PATH}/:username/totp-reset`, async (req, reply, a) => {
    const user = await userOf(req);
    const before = await s.totp.status(user);
    await s.totp.reset(user, { actor: a.user.username, context: ctx(req) });
    await c.recordChange(req, a, { type: 'totp.reset', target: user, before: { enabled: before.enabled, pending: before.pending }, after: { enabled: false, pending: false } });
    return c.done(reply, userPath(user.username), 'reset');
  });

  c.action(`${USERS_PATH}/:username/recovery-reset`, async (req, reply, a) => {
    const user = await userOf(req);
    const before = await s.recoveryCodes.status(user);
    await s.recoveryCodes.reset(user, { actor: a.user.username, context: ctx(req) });
    await c.recordChange(req, a, { type: 'recovery-codes.reset', target: user, before: before ? { total: before.total, unused: before.unused } : null, after: null });
    return c.done(reply, userPath(user.username), 'reset');
  });

  c.action(`${USERS_PATH}/:username/passkeys/delete`, async (req, reply, a) => {
    const user = await userOf(req);
    const id = field(c.kit.bodyOf(req), 'id', 1400);
    const before = (await s.passkeyAccount.list(user)).find((p) => p.id === id);
    if (!before) throw new ServiceError('not-found', 'no such passkey');
    // An administrator may take away the last passkey (the user re-enrolls with a new link).
    await s.passkeyAccount.remove(user, id, ctx(req), 1);
    await c.recordChange(req, a, { type: 'credential.delete', target: user, before: { id: before.id, name: before.name, synced: before.synced }, after: null });
    return c.done(reply, userPath(user.username), 'deleted');
  });

  c.action(`${USERS_PATH}/:username/sessions/revoke`, async (req, reply, a) => {
    const user = await userOf(req);
    const id = optionalField(c.kit.bodyOf(req), 'id', 64);
    if (id) await s.sessions.revoke(user, id, a.user.username, ctx(req));
    else await s.sessions.revokeAll(user, a.user.username, ctx(req));
    await c.recordChange(req, a, { type: 'session.revoke', target: user, before: { session: id ?? 'all' }, after: null });
    return c.done(reply, userPath(user.username), 'revoked');
  });

  c.action(
    `${USERS_PATH}/:username/certificates/revoke`,
    async (req, reply, a) => {
      const user = await userOf(req);
      const serial = field(c.kit.bodyOf(req), 'serial', 64);
      const cert = await s.clientCertificates.get(serial);
      if (!cert || cert.owner.kind !== 'user' || cert.owner.userId !== user.id) throw new ServiceError('not-found', 'no such certificate');
      const { certificate } = await s.clientCertificates.revoke(serial, { actor: a.user.username, context: ctx(req) });
      await c.recordChange(req, a, { type: 'cert.revoke', target: user, before: { serial, status: cert.status }, after: { serial, status: certificate.status } });
      return c.done(reply, userPath(user.username), 'revoked');
    },
    { sensitive: true },
  );

  c.action(`${USERS_PATH}/:username/enroll-link`, async (req, reply, a) => {
    const t = req.kanmonT;
    const user = await userOf(req);
    const link = await s.enrollment.createLink(user.username, { actor: a.user.username, context: ctx(req), requireCode: isChecked(c.kit.bodyOf(req), 'code') || c.config.enrollment.requireCode });
    await c.recordChange(req, a, { type: 'enroll-link', target: user, before: null, after: { expiresAt: link.expiresAt, code: link.code !== undefined } });
    const body = html`<p>${t('admin.enroll.linkIntro')}</p>
<p class="copy"><code id="enroll-link">${link.url}</code></p>
<p>${t('admin.enroll.expires')}: ${timeTag(link.expiresAt, '')}</p>
${link.code ? html`<p>${t('admin.enroll.code')}: <strong id="enroll-code">${formatEnrollmentCode(link.code)}</strong></p><p class="hint">${t('admin.enroll.codeHint')}</p>` : ''}
<p><a href="${userPath(user.username)}">${t('admin.back')}</a></p>`;
    return c.html(reply, c.render(req, a, { section: USERS_PATH, title: `${t('admin.enroll.link')}: ${user.username}`, body }));
  });

  c.action(`${USERS_PATH}/:username/letter`, async (req, reply, a) => {
    const user = await userOf(req);
    if (user.disabled) throw new ServiceError('invalid-input', 'the user is disabled; enable them first');
    const letter = await letterFor(c, req, a, user);
    reply.header('content-security-policy', LETTER_CSP);
    reply.header('content-disposition', `inline; filename="${letterFileName(user.username)}"`);
    return reply.code(200).type('text/html; charset=utf-8').send(letter.html);
  });
}

/** A letter with a fresh link (no code: a code goes by another channel, which the link page offers). */
export async function letterFor(c: AdminConsole, req: FastifyRequest, a: AdminRequest, user: User, ttlSeconds = 7 * 86400): Promise<{ html: string; code?: string }> {
  const link = await c.services.enrollment.createLink(user.username, { ttlSeconds, actor: a.user.username, context: c.kit.ctxOf(req), requireCode: c.config.enrollment.requireCode });
  await c.recordChange(req, a, { type: 'enroll-letter', target: user, before: null, after: { expiresAt: link.expiresAt, code: link.code !== undefined } });
  const letterHtml = await renderEnrollmentLetter({ username: user.username, displayName: user.displayName, url: link.url, expiresAt: link.expiresAt, codeSeparately: link.code !== undefined, organisation: c.config.webauthn.rpName });
  return { html: letterHtml, ...(link.code ? { code: formatEnrollmentCode(link.code) } : {}) };
}

function statusText(u: User, lockedUntil: number | undefined, t: (k: 'admin.users.disabled' | 'admin.users.active' | 'admin.users.locked') => string): string {
  const parts = [u.disabled ? t('admin.users.disabled') : t('admin.users.active')];
  if (lockedUntil !== undefined) parts.push(t('admin.users.locked'));
  return parts.join(', ');
}

/** Links from places that know only a user's id (certificates) land on the user's page. */
export function registerUserById(c: AdminConsole): void {
  c.page(`${USERS_PATH}/by-id/:id`, async (req, reply) => {
    const user = await c.services.users.getById(String((req.params as { id: string }).id).slice(0, 64));
    if (!user) throw new ServiceError('not-found', 'no such user');
    return reply.redirect(userPath(user.username), 302);
  });
}
