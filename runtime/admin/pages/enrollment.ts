import { buildZip } from '../../ca/zip.js';
import { csvField } from '../../ca/csv.js';
import { html } from '../../portal/html.js';
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
<p class="hint">${t('admin.enroll.sensitiveHint')}</p>`;
    return c.html(reply, c.render(req, a, { section: ENROLLMENT_PATH, title: t('admin.nav.enrollment'), body }));
  });

  // A batch is a bulk operation: it needs a fresh passkey.
  c.action(
    `${ENROLLMENT_PATH}/letters`,
    async (req, reply, a) => {
      const names = usernameList(field(c.kit.bodyOf(req), 'usernames', 200_000), MAX_LETTERS);
      // Every name is checked before any link is made, so a typo does not leave half a batch.
      const users: User[] = [];
      for (const name of names) {
        const user = await c.services.users.get(name);
        if (!user) throw new ServiceError('not-found', `no user named ${JSON.stringify(name.slice(0, 80))}`);
        if (user.disabled) throw new ServiceError('invalid-input', `user ${user.username} is disabled`);
        users.push(user);
      }
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
