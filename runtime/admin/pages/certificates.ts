import type { FastifyReply, FastifyRequest } from 'fastify';
import { REVOCATION_REASONS, type BulkUserResult, type IssuedCertificate } from '../../ca/index.js';
import { html, timeTag } from '../../portal/html.js';
import { ServiceError } from '../../services/errors.js';
import type { ClientCertificate, RevocationReason } from '../../store/types.js';
import { ADMIN_PREFIX, field, optionalField, usernameList, type AdminConsole, type AdminRequest } from '../console.js';
import { postForm } from '../layout.js';
import { userPath } from './users.js';

export const CERTS_PATH = `${ADMIN_PREFIX}/certificates`;
const BULK_ACTIONS = ['issue', 'download', 'revoke', 'delete'] as const;
type BulkAction = (typeof BULK_ACTIONS)[number];

function reasonOf(value: string | undefined): RevocationReason {
  const reason = (value ?? 'unspecified') as RevocationReason;
  if (!REVOCATION_REASONS.includes(reason)) throw new ServiceError('invalid-input', `reason must be one of ${REVOCATION_REASONS.join(', ')}`);
  return reason;
}

/** The CA, issuing (one user, many, shared devices), bulk download/revoke/delete, limits, the CRL, what expires soon. */
export function registerCertificates(c: AdminConsole): void {
  const s = c.services;
  c.addNav({ href: CERTS_PATH, label: 'admin.nav.certificates', order: 30 });

  c.page(CERTS_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const [ca, shared, expiring, revoked] = await Promise.all([
      s.ca.ensure(c.kit.ctxOf(req)),
      s.clientCertificates.listShared(),
      s.clientCertificates.listExpiring(),
      s.ca.crlDer().then(() => undefined),
    ]);
    void revoked;
    // Owners by id, to name them in the lists.
    const ownerIds = [...new Set([...shared, ...expiring].flatMap((x) => (x.owner.kind === 'user' ? [x.owner.userId] : [])))];
    const owners = new Map((await Promise.all(ownerIds.map((id) => s.users.getById(id)))).flatMap((u) => (u ? [[u.id, u.username] as const] : [])));
    const cc = c.config.clientCertificates;
    const back = html`<input type="hidden" name="_back" value="${CERTS_PATH}">`;
    const body = html`
<section aria-labelledby="ca-h"><h2 id="ca-h">${t('admin.certs.ca')}</h2>
<dl class="facts" id="ca-details"><dt>${t('admin.certs.subject')}</dt><dd>${ca.subject}</dd><dt>${t('admin.certs.key')}</dt><dd>${ca.keyAlgorithm}</dd>
<dt>${t('admin.certs.valid')}</dt><dd>${timeTag(ca.notBefore.getTime(), '')} – ${timeTag(ca.notAfter.getTime(), '')}</dd>
<dt>SHA-256</dt><dd><code class="fingerprint">${ca.fingerprint.toUpperCase().match(/../g)!.join(':')}</code></dd></dl>
<p><a href="/.kanmon/ca/cert">${t('admin.certs.caDownload')}</a> · <a id="crl-link" href="${CERTS_PATH}/crl">${t('admin.certs.crl')}</a></p>
<p id="cert-limits">${t('admin.certs.limits')}: ${cc.maxActivePerUser} ${t('admin.certs.perUser')} · ${cc.lifetimeDays} ${t('admin.days')} · ${cc.maxDownloadsPerIssuance} ${t('admin.certs.downloads')}</p>
</section>
<section aria-labelledby="issue-h"><h2 id="issue-h">${t('admin.certs.issueTitle')}</h2>
<div class="tiles">
${postForm({ action: `${CERTS_PATH}/issue`, csrf: a.csrf, className: 'card admin-form', body: html`${back}<h3>${t('admin.certs.forUser')}</h3><label for="issue-username">${t('admin.users.username')}</label><input id="issue-username" name="username" type="text" required maxlength="64"><label for="issue-device">${t('admin.certs.device')}</label><input id="issue-device" name="device" type="text" maxlength="64"><button type="submit" class="primary">${t('admin.certs.issue')}</button>` })}
${postForm({ action: `${CERTS_PATH}/issue`, csrf: a.csrf, className: 'card admin-form', body: html`${back}<h3>${t('admin.certs.forShared')}</h3><label for="issue-label">${t('admin.certs.label')}</label><input id="issue-label" name="label" type="text" required maxlength="64"><button type="submit" class="primary">${t('admin.certs.issue')}</button>` })}
</div></section>
<section aria-labelledby="bulk-h"><h2 id="bulk-h">${t('admin.certs.bulk')}</h2>
${postForm({
  action: `${CERTS_PATH}/bulk`,
  csrf: a.csrf,
  id: 'bulk-form',
  className: 'card admin-form wide',
  body: html`${back}<label for="bulk-usernames">${t('admin.usernames')}</label><textarea id="bulk-usernames" name="usernames" rows="5" required aria-describedby="bulk-hint"></textarea><p id="bulk-hint" class="hint">${t('admin.usernamesHint')}</p>
<label for="bulk-action">${t('admin.certs.bulkAction')}</label><select id="bulk-action" name="action">${BULK_ACTIONS.map((x) => html`<option value="${x}">${t(`admin.certs.bulk.${x}`)}</option>`)}</select>
<label for="bulk-reason">${t('admin.certs.reason')}</label><select id="bulk-reason" name="reason">${REVOCATION_REASONS.map((r) => html`<option value="${r}">${t(`admin.certs.reason.${r}`)}</option>`)}</select>
<button type="submit" class="primary" id="bulk-run">${t('admin.certs.bulkRun')}</button>`,
})}
</section>
<section aria-labelledby="expiring-h"><h2 id="expiring-h">${t('admin.certs.expiring')} (${cc.renewBeforeDays} ${t('admin.days')})</h2>
${certTable(a, t, expiring, 'expiring', owners)}
</section>
<section aria-labelledby="shared-h"><h2 id="shared-h">${t('admin.certs.shared')}</h2>
${certTable(a, t, shared, 'shared', owners)}
</section>`;
    return c.html(reply, c.render(req, a, { section: CERTS_PATH, title: t('admin.nav.certificates'), body }));
  });

  c.page(`${CERTS_PATH}/crl`, async (_req, reply) => {
    reply.header('content-disposition', 'attachment; filename="kanmon-ca.crl"');
    return reply.type('application/pkix-crl').send(Buffer.from(await s.ca.crlDer()));
  });

  c.action(`${CERTS_PATH}/issue`, async (req, reply, a) => {
    const b = c.kit.bodyOf(req);
    const username = optionalField(b, 'username', 64);
    const label = optionalField(b, 'label', 64);
    const device = optionalField(b, 'device', 64);
    const opts = { actor: a.user.username, context: c.kit.ctxOf(req), ...(device ? { deviceLabel: device } : {}) };
    let issued: IssuedCertificate;
    if (username) {
      const user = await s.adminConsole.requireUser(username);
      issued = await s.clientCertificates.issueForUser(user, opts);
      await c.recordChange(req, a, { type: 'cert.issue', target: user, before: null, after: { serial: issued.certificate.serial, device: issued.certificate.deviceLabel } });
    } else if (label) {
      issued = await s.clientCertificates.issueShared(label, opts);
      await c.recordChange(req, a, { type: 'cert.issue', before: null, after: { serial: issued.certificate.serial, shared: label } });
    } else {
      throw new ServiceError('invalid-input', 'give a user name or a shared device label');
    }
    const link = await s.clientCertificates.createDownloadLink(issued.certificate.serial, { actor: a.user.username, context: c.kit.ctxOf(req) });
    return issuedPage(c, req, reply, a, issued, link.url);
  });

  c.action(
    `${CERTS_PATH}/bulk`,
    async (req, reply, a) => {
      const t = req.kanmonT;
      const b = c.kit.bodyOf(req);
      const action = field(b, 'action', 16) as BulkAction;
      if (!BULK_ACTIONS.includes(action)) throw new ServiceError('invalid-input', `action must be one of ${BULK_ACTIONS.join(', ')}`);
      const names = usernameList(field(b, 'usernames', 200_000));
      const opts = { actor: a.user.username, context: c.kit.ctxOf(req) };
      let results: readonly BulkUserResult[];
      let sheet: string | undefined;
      if (action === 'download') {
        const out = await s.certificateBulk.download(names, opts);
        await c.recordChange(req, a, { type: 'cert.bulk-download', before: null, after: { users: names.length } });
        reply.header('content-disposition', 'attachment; filename="certificates.zip"');
        return reply.code(200).type('application/zip').send(Buffer.from(out.zip));
      }
      if (action === 'issue') {
        const out = await s.certificateBulk.issue(names, opts);
        results = out.results;
        sheet = out.passwordSheetCsv;
      } else if (action === 'revoke') {
        results = await s.certificateBulk.revoke(names, { ...opts, reason: reasonOf(optionalField(b, 'reason', 32)) });
      } else {
        results = await s.certificateBulk.delete(names, opts);
      }
      await c.recordChange(req, a, { type: `cert.bulk-${action}`, before: null, after: { results: results.map((r) => ({ username: r.username, ok: r.ok, outcome: r.outcome, serials: r.serials })) } });
      const body = html`<table id="bulk-results"><thead><tr><th scope="col">${t('admin.users.username')}</th><th scope="col">${t('admin.result')}</th><th scope="col">${t('admin.certs.serial')}</th></tr></thead>
<tbody>${results.map((r) => html`<tr class="${r.ok ? 'ok' : 'fail'}"><td>${r.username}</td><td>${r.ok ? r.outcome : r.error?.message ?? r.outcome}</td><td>${r.serials.join(' ')}</td></tr>`)}</tbody></table>
${sheet ? html`<h2>${t('admin.certs.passwords')}</h2><p class="hint">${t('admin.certs.passwordsOnce')}</p><pre id="password-sheet">${sheet}</pre>
${postForm({ action: `${CERTS_PATH}/bulk`, csrf: a.csrf, className: 'inline-action', body: html`<input type="hidden" name="_back" value="${CERTS_PATH}"><input type="hidden" name="action" value="download"><input type="hidden" name="usernames" value="${names.join('\n')}"><button type="submit" class="primary" id="bulk-download">${t('admin.certs.bulk.download')}</button>` })}` : ''}
<p><a href="${CERTS_PATH}">${t('admin.back')}</a></p>`;
      return c.html(reply, c.render(req, a, { section: CERTS_PATH, title: t(`admin.certs.bulk.${action}`), body }));
    },
    { sensitive: true },
  );

  for (const action of ['revoke', 'delete'] as const) {
    c.action(
      `${CERTS_PATH}/${action}`,
      async (req, reply, a) => {
        const b = c.kit.bodyOf(req);
        const serial = field(b, 'serial', 64);
        const before = await s.clientCertificates.get(serial);
        if (!before) throw new ServiceError('not-found', 'no such certificate');
        const { certificate } = action === 'revoke' ? await s.clientCertificates.revoke(serial, { actor: a.user.username, context: c.kit.ctxOf(req), reason: reasonOf(optionalField(b, 'reason', 32)) }) : await s.clientCertificates.delete(serial, { actor: a.user.username, context: c.kit.ctxOf(req) });
        await c.recordChange(req, a, { type: `cert.${action}`, before: { serial, status: before.status }, after: { serial, status: certificate.status } });
        return c.done(reply, CERTS_PATH, action === 'revoke' ? 'revoked' : 'deleted');
      },
      { sensitive: true },
    );
  }
}

function certTable(a: AdminRequest, t: FastifyRequest['kanmonT'], certs: readonly ClientCertificate[], id: string, owners: ReadonlyMap<string, string>) {
  if (certs.length === 0) return html`<p>${t('admin.certs.none')}</p>`;
  return html`<table id="${id}-certificates"><thead><tr><th scope="col">${t('admin.certs.serial')}</th><th scope="col">${t('admin.certs.owner')}</th><th scope="col">${t('admin.certs.device')}</th><th scope="col">${t('admin.users.status')}</th><th scope="col">${t('admin.certs.expires')}</th><th scope="col">${t('account.col.actions')}</th></tr></thead>
<tbody>${certs.map((x) => html`<tr data-serial="${x.serial}"><td><code>${x.serial}</code></td><td>${x.owner.kind === 'shared' ? x.owner.label : html`<a href="${ADMIN_PREFIX}/users/by-id/${x.owner.userId}">${owners.get(x.owner.userId) ?? t('admin.certs.user')}</a>`}</td><td>${x.deviceLabel}</td><td data-status="${x.status}">${t(`admin.certs.status.${x.status}`)}</td><td>${timeTag(x.expiresAt, '')}</td>
<td>${x.status === 'active' ? postForm({ action: `${CERTS_PATH}/revoke`, csrf: a.csrf, className: 'inline-action', confirm: t('admin.confirm'), body: html`<input type="hidden" name="_back" value="${CERTS_PATH}"><input type="hidden" name="serial" value="${x.serial}"><button type="submit" class="danger">${t('admin.certs.revoke')}</button>` }) : ''}
${postForm({ action: `${CERTS_PATH}/delete`, csrf: a.csrf, className: 'inline-action', confirm: t('admin.confirm'), body: html`<input type="hidden" name="_back" value="${CERTS_PATH}"><input type="hidden" name="serial" value="${x.serial}"><button type="submit" class="danger">${t('admin.certs.delete')}</button>` })}</td></tr>`)}</tbody></table>`;
}

function issuedPage(c: AdminConsole, req: FastifyRequest, reply: FastifyReply, a: AdminRequest, issued: IssuedCertificate, url: string) {
  const t = req.kanmonT;
  const owner = issued.certificate.owner;
  const body = html`<p>${t('admin.certs.issuedIntro')}</p>
<dl class="facts"><dt>${t('admin.certs.serial')}</dt><dd><code id="issued-serial">${issued.certificate.serial}</code></dd>
<dt>${t('admin.certs.password')}</dt><dd><code id="issued-password">${issued.password}</code></dd>
<dt>${t('admin.certs.link')}</dt><dd><code id="issued-link">${url}</code></dd>
<dt>${t('admin.certs.expires')}</dt><dd>${timeTag(issued.certificate.expiresAt, '')}</dd></dl>
<p class="hint">${t('admin.certs.passwordsOnce')}</p>
<p><a href="${owner.kind === 'user' ? `${ADMIN_PREFIX}/users/by-id/${owner.userId}` : CERTS_PATH}">${t('admin.back')}</a></p>`;
  return c.html(reply, c.render(req, a, { section: CERTS_PATH, title: t('admin.certs.issued'), body }));
}

export { userPath };
