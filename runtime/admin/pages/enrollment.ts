import { buildZip } from '../../ca/zip.js';
import { csvField } from '../../ca/csv.js';
import { html, timeTag } from '../../portal/html.js';
import { formatEnrollmentCode } from '../../services/enrollment-codes.js';
import { ServiceError } from '../../services/errors.js';
import type { User } from '../../store/types.js';
import { ADMIN_PREFIX, field, usernameList, type AdminConsole } from '../console.js';
import { postForm } from '../layout.js';
import { letterFileName } from '../letters.js';
import { letterFor } from './users.js';

export const ENROLLMENT_PATH = `${ADMIN_PREFIX}/enrollment`;
/** Letters in one batch; each makes a link and a QR code. */
export const MAX_LETTERS = 500;

/** Enrollment letters for many users at once: a zip of printable pages, plus a code sheet when codes are on. */
export function registerEnrollment(c: AdminConsole): void {
  c.addNav({ href: ENROLLMENT_PATH, label: 'admin.nav.enrollment', order: 20 });

  c.page(ENROLLMENT_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const body = html`<p>${t('admin.enroll.bulkIntro')}</p>
${postForm({
  action: `${ENROLLMENT_PATH}/letters`,
  csrf: a.csrf,
  id: 'letters-form',
  className: 'card admin-form wide',
  body: html`<input type="hidden" name="_back" value="${ENROLLMENT_PATH}">
<label for="usernames">${t('admin.usernames')}</label><textarea id="usernames" name="usernames" rows="8" required aria-describedby="usernames-hint"></textarea>
<p id="usernames-hint" class="hint">${t('admin.usernamesHint')}</p>
<button type="submit" class="primary" id="make-letters">${t('admin.enroll.letters')}</button>`,
})}
${postForm({
  action: `${ENROLLMENT_PATH}/links`,
  csrf: a.csrf,
  id: 'links-form',
  className: 'card admin-form wide',
  body: html`<input type="hidden" name="_back" value="${ENROLLMENT_PATH}">
<label for="link-usernames">${t('admin.usernames')}</label><textarea id="link-usernames" name="usernames" rows="4" required aria-describedby="link-usernames-hint"></textarea>
<p id="link-usernames-hint" class="hint">${t('admin.usernamesHint')}</p>
<div class="choice"><input id="links-code" name="code" type="checkbox"><label for="links-code">${t('admin.enroll.withCode')}</label></div>
<button type="submit" id="make-links">${t('admin.enroll.links')}</button>`,
})}
<p class="hint">${t('admin.enroll.sensitiveHint')}</p>`;
    return c.html(reply, c.render(req, a, { section: ENROLLMENT_PATH, title: t('admin.nav.enrollment'), body }));
  });

  // Links for many users at once, shown once on the page (with their codes, when demanded).
  c.action(
    `${ENROLLMENT_PATH}/links`,
    async (req, reply, a) => {
      const t = req.kanmonT;
      const b = c.kit.bodyOf(req);
      const users = await checkedUsers(c, usernameList(field(b, 'usernames', 200_000), MAX_LETTERS));
      const requireCode = b.code === 'on' || c.config.enrollment.requireCode;
      const rows = [];
      for (const user of users) {
        const link = await c.services.enrollment.createLink(user.username, { actor: a.user.username, context: c.kit.ctxOf(req), requireCode });
        rows.push({ user, link });
      }
      await c.recordChange(req, a, { type: 'enroll-links', before: null, after: { users: users.map((u) => u.username), code: requireCode } });
      const body = html`<p>${t('admin.enroll.linkIntro')}</p>
<table id="enroll-links"><thead><tr><th scope="col">${t('admin.users.username')}</th><th scope="col">${t('admin.users.displayName')}</th><th scope="col">${t('admin.enroll.link')}</th>${requireCode ? html`<th scope="col">${t('admin.enroll.code')}</th>` : ''}<th scope="col">${t('admin.enroll.expires')}</th></tr></thead>
<tbody>${rows.map(({ user, link }) => html`<tr><td>${user.username}</td><td>${user.displayName}</td><td><code>${link.url}</code></td>${requireCode ? html`<td><strong>${link.code ? formatEnrollmentCode(link.code) : ''}</strong></td>` : ''}<td>${timeTag(link.expiresAt, '')}</td></tr>`)}</tbody></table>
${requireCode ? html`<p class="hint">${t('admin.enroll.codeHint')}</p>` : ''}
<p><a href="${ENROLLMENT_PATH}">${t('admin.back')}</a></p>`;
      return c.html(reply, c.render(req, a, { section: ENROLLMENT_PATH, title: t('admin.enroll.links'), body }));
    },
    { sensitive: true },
  );

  // A batch is a bulk operation: it needs a fresh passkey.
  c.action(
    `${ENROLLMENT_PATH}/letters`,
    async (req, reply, a) => {
      const users = await checkedUsers(c, usernameList(field(c.kit.bodyOf(req), 'usernames', 200_000), MAX_LETTERS));
      const entries = [];
      const codes: string[] = ['username,code'];
      const used = new Set<string>();
      for (const user of users) {
        const letter = await letterFor(c, req, a, user);
        let file = letterFileName(user.username);
        for (let i = 2; used.has(file); i++) file = letterFileName(`${user.username}-${i}`);
        used.add(file);
        entries.push({ name: file, data: new TextEncoder().encode(letter.html) });
        if (letter.code) codes.push(`${csvField(user.username)},${csvField(letter.code)}`);
      }
      // Codes travel apart from letters; they are in the zip's sheet only when a code is demanded, and never in a letter.
      if (codes.length > 1) entries.push({ name: 'codes.csv', data: new TextEncoder().encode(`${codes.join('\r\n')}\r\n`) });
      await c.recordChange(req, a, { type: 'enroll-letters', before: null, after: { users: users.map((u) => u.username) } });
      reply.header('content-disposition', 'attachment; filename="enrollment-letters.zip"');
      return reply.code(200).type('application/zip').send(Buffer.from(buildZip(entries)));
    },
    { sensitive: true },
  );
}

/** Every name is checked before any link is made, so a typo does not leave half a batch. */
async function checkedUsers(c: AdminConsole, names: readonly string[]): Promise<User[]> {
  const users: User[] = [];
  for (const name of names) {
    const user = await c.services.users.get(name);
    if (!user) throw new ServiceError('not-found', `no user named ${JSON.stringify(name.slice(0, 80))}`);
    if (user.disabled) throw new ServiceError('invalid-input', `user ${user.username} is disabled`);
    users.push(user);
  }
  return users;
}
