/**
 * Import: a CSV upload gives a dry-run preview with a result per row, then an apply (running the
 * same file again changes nothing); the LDAP / Active Directory sync runs now (dry run, then
 * apply), with its last result and its schedule. Applying is a bulk operation, so it needs a
 * fresh passkey; the upload waits in the store meanwhile (services.importStaging).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { html, timeTag, type Html } from '../../portal/html.js';
import type { MessageKey, Translate } from '../../portal/i18n.js';
import { ServiceError } from '../../services/errors.js';
import type { ImportPlan } from '../../services/user-import.js';
import { ADMIN_PREFIX, field, type AdminConsole, type AdminRequest } from '../console.js';
import { CSRF_FIELD, csrfTokenMatches } from '../csrf.js';
import { postForm } from '../layout.js';

export const IMPORT_PATH = `${ADMIN_PREFIX}/import`;
/** The largest upload the console takes (the portal's usual limit is far smaller); bigger files go through `kanmon user import`. */
export const CSV_UPLOAD_MAX_BYTES = 4 * 1024 * 1024;
/** Rows shown in a preview; the summary always counts them all. */
const PREVIEW_ROWS = 2000;

export function registerImports(c: AdminConsole): void {
  const s = c.services;
  c.addNav({ href: IMPORT_PATH, label: 'admin.nav.import', order: 80 });

  c.page(IMPORT_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const sync = s.directorySync;
    const ldap = c.config.directory.ldap;
    const last = sync ? await lastRun(c, sync.source) : undefined;
    const body = html`<section aria-labelledby="csv-h"><h2 id="csv-h">${t('admin.import.csv')}</h2>
<p class="hint">${t('admin.import.csvHint')}</p>
<form method="post" action="${IMPORT_PATH}/csv" class="card admin-form" id="csv-form">
<input type="hidden" name="${CSRF_FIELD}" value="${a.csrf}">
<label for="csv-file">${t('admin.import.file')}</label><input id="csv-file" type="file" accept=".csv,text/csv" data-fills="csv-text">
<label for="csv-text">${t('admin.import.text')}</label><textarea id="csv-text" name="csv" rows="8" spellcheck="false" placeholder="username,displayName,groups,disabled"></textarea>
<button type="submit" class="primary" id="csv-dry-run">${t('admin.import.dryRun')}</button>
</form></section>
<section aria-labelledby="ldap-h"><h2 id="ldap-h">${t('admin.import.ldap')}</h2>
${sync && ldap
  ? html`<dl class="facts" id="ldap-facts"><dt>${t('admin.import.source')}</dt><dd>${sync.source} · <code>${ldap.url}</code> · <code>${ldap.baseDn}</code></dd>
<dt>${t('admin.import.schedule')}</dt><dd id="ldap-schedule">${ldap.scheduleMinutes > 0 ? `${t('admin.import.every')} ${ldap.scheduleMinutes} ${t('admin.import.minutes')}` : t('admin.import.manualOnly')}</dd>
<dt>${t('admin.import.lastRun')}</dt><dd id="ldap-last">${last ? html`${timeTag(last.time, '')} · ${last.actor} · ${summaryText(last.summary, t)}` : t('admin.import.never')}</dd></dl>
<div class="actions-row">
${postForm({ action: `${IMPORT_PATH}/ldap/dry-run`, csrf: a.csrf, className: 'inline-action', body: html`<input type="hidden" name="_back" value="${IMPORT_PATH}"><button type="submit" id="ldap-dry-run">${t('admin.import.dryRun')}</button>` })}
</div>`
  : html`<p id="ldap-none">${t('admin.import.noDirectory')}</p>`}
</section>`;
    return c.html(reply, c.render(req, a, { section: IMPORT_PATH, title: t('admin.nav.import'), body, scripts: ['admin-import.js'] }));
  });

  // The upload: the console's own checks (administrator, CSRF) with a body limit fit for a CSV.
  c.app.post(`${IMPORT_PATH}/csv`, { bodyLimit: CSV_UPLOAD_MAX_BYTES }, async (req, reply) => {
    const a = await c.guard(req, reply);
    if (!a) return reply;
    const body = c.kit.bodyOf(req);
    if (!csrfTokenMatches(c.kit.sessionToken(req)!, body[CSRF_FIELD])) {
      await s.audit.record({ type: 'admin.csrf', result: 'failure', reason: body[CSRF_FIELD] === undefined ? 'csrf-missing' : 'csrf-mismatch', userId: a.user.id, username: a.user.username, context: c.kit.ctxOf(req), details: { path: `${IMPORT_PATH}/csv` } });
      return c.kit.sendError(reply, req, 403, 'csrf', 'admin.csrfFailed');
    }
    const csv = field(body, 'csv', CSV_UPLOAD_MAX_BYTES);
    if (csv.trim() === '') throw new ServiceError('invalid-input', 'choose a CSV file or paste its text');
    const { entries, errors } = s.userImport.parseCsv(csv);
    const plan = await s.userImport.plan(entries, { source: 'csv', extraErrors: errors });
    const id = await s.importStaging.stage(csv, a.user.id);
    return showPlan(c, req, reply, a, plan, { applied: false, applyAction: `${IMPORT_PATH}/csv/apply`, uploadId: id });
  });

  c.action(
    `${IMPORT_PATH}/csv/apply`,
    async (req, reply, a) => {
      const id = field(c.kit.bodyOf(req), 'upload', 64);
      const csv = await s.importStaging.staged(id, a.user.id);
      const { entries, errors } = s.userImport.parseCsv(csv);
      const plan = await s.userImport.apply(entries, { source: 'csv', extraErrors: errors, actor: a.user.username, context: c.kit.ctxOf(req) });
      await c.recordChange(req, a, { type: 'import.csv', before: null, after: plan.summary, details: { rows: plan.rows.length } });
      return showPlan(c, req, reply, a, plan, { applied: true, applyAction: `${IMPORT_PATH}/csv/apply`, uploadId: id });
    },
    { sensitive: true },
  );

  c.action(`${IMPORT_PATH}/ldap/dry-run`, async (req, reply, a) => {
    const sync = s.directorySync;
    if (!sync) throw new ServiceError('not-found', 'no directory is configured (config: directory.ldap)');
    const plan = await sync.dryRun();
    return showPlan(c, req, reply, a, plan, { applied: false, applyAction: `${IMPORT_PATH}/ldap/apply` });
  });

  c.action(
    `${IMPORT_PATH}/ldap/apply`,
    async (req, reply, a) => {
      const sync = s.directorySync;
      if (!sync) throw new ServiceError('not-found', 'no directory is configured (config: directory.ldap)');
      const plan = await sync.run(a.user.username, c.kit.ctxOf(req));
      await c.recordChange(req, a, { type: 'import.ldap', before: null, after: plan.summary, details: { source: sync.source } });
      return showPlan(c, req, reply, a, plan, { applied: true, applyAction: `${IMPORT_PATH}/ldap/apply` });
    },
    { sensitive: true },
  );
}

/** The newest `users.import` audit event of a source: scheduled, CLI and console runs all record one. */
async function lastRun(c: AdminConsole, source: string): Promise<{ time: number; actor: string; summary: Record<string, unknown> } | undefined> {
  const { events } = await c.services.adminConsole.queryAudit({ type: 'users.import', limit: 200 });
  const e = events.find((x) => x.details?.source === source);
  return e ? { time: e.time, actor: e.actor ?? '', summary: e.details ?? {} } : undefined;
}

function summaryText(summary: Record<string, unknown>, t: Translate): string {
  return (['create', 'update', 'disable', 'unchanged', 'error'] as const).map((k) => `${t(`admin.import.action.${k}` as MessageKey)} ${String(summary[k] ?? 0)}`).join(' · ');
}

function showPlan(c: AdminConsole, req: FastifyRequest, reply: FastifyReply, a: AdminRequest, plan: ImportPlan, o: { applied: boolean; applyAction: string; uploadId?: string }): FastifyReply {
  const t = req.kanmonT;
  const shown = plan.rows.slice(0, PREVIEW_ROWS);
  const pending = plan.summary.create + plan.summary.update + plan.summary.disable;
  const body: Html = html`<p class="lead" id="import-state">${o.applied ? t('admin.import.applied') : t('admin.import.preview')} (${plan.source})</p>
<ul class="summary" id="import-summary">${(['create', 'update', 'disable', 'unchanged', 'error'] as const).map((k) => html`<li>${t(`admin.import.action.${k}` as MessageKey)}: <strong id="summary-${k}">${String(plan.summary[k])}</strong></li>`)}</ul>
${!o.applied && pending > 0
  ? postForm({ action: o.applyAction, csrf: a.csrf, className: 'inline-action', confirm: t('admin.confirm'), body: html`<input type="hidden" name="_back" value="${IMPORT_PATH}">${o.uploadId ? html`<input type="hidden" name="upload" value="${o.uploadId}">` : ''}<button type="submit" class="primary" id="import-apply">${t('admin.import.apply')} (${String(pending)})</button>` })
  : !o.applied
    ? html`<p id="import-nothing">${t('admin.import.nothingToDo')}</p>`
    : ''}
<table id="import-rows"><thead><tr><th scope="col">${t('admin.import.row')}</th><th scope="col">${t('admin.users.username')}</th><th scope="col">${t('admin.import.result')}</th><th scope="col">${t('admin.import.changes')}</th></tr></thead>
<tbody>${shown.map((r) => html`<tr class="${r.action}" data-username="${r.username}"><td>${r.origin}</td><td>${r.username}</td><td class="action">${t(`admin.import.action.${r.action}` as MessageKey)}</td><td>${r.action === 'error' ? html`<span class="error">${r.error ?? ''}</span>` : (r.changes ?? []).map((ch) => html`<code>${ch.field}</code> ${JSON.stringify(ch.before)} → ${JSON.stringify(ch.after)}<br>`)}</td></tr>`)}</tbody></table>
${plan.rows.length > shown.length ? html`<p class="hint">${String(plan.rows.length - shown.length)} ${t('admin.import.moreRows')}</p>` : ''}
<p><a href="${IMPORT_PATH}" id="import-back">${t('admin.back')}</a></p>`;
  return c.html(reply, c.render(req, a, { section: IMPORT_PATH, title: o.applied ? t('admin.import.appliedTitle') : t('admin.import.previewTitle'), body }));
}
