import type { FastifyRequest } from 'fastify';
import { csvField } from '../../ca/csv.js';
import { html, timeTag } from '../../portal/html.js';
import type { AuditQuery } from '../../services/admin-console.js';
import { ServiceError } from '../../services/errors.js';
import type { AuditEvent } from '../../store/types.js';
import { ADMIN_PREFIX, type AdminConsole } from '../console.js';

export const AUDIT_PATH = `${ADMIN_PREFIX}/audit`;
/** Rows in one CSV export. */
export const EXPORT_LIMIT = 10_000;

interface Filter {
  readonly user: string;
  readonly event: string;
  readonly result: string;
  readonly from: string;
  readonly to: string;
}

function text(q: Record<string, unknown>, name: string, max: number): string {
  const v = q[name];
  return typeof v === 'string' ? v.trim().slice(0, max) : '';
}

/** A date or date-time from the form (UTC), or undefined when empty. */
function time(value: string, name: string): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(/Z$|[+-]\d\d:\d\d$/.test(value) ? value : `${value}${value.length <= 10 ? 'T00:00' : ''}Z`);
  if (!Number.isFinite(ms)) throw new ServiceError('invalid-input', `${name} must be a date like 2026-01-31 or 2026-01-31T09:00`);
  return ms;
}

async function queryOf(c: AdminConsole, req: FastifyRequest): Promise<{ filter: Filter; query: AuditQuery }> {
  const q = req.query as Record<string, unknown>;
  const filter: Filter = { user: text(q, 'user', 64), event: text(q, 'event', 64), result: text(q, 'result', 16), from: text(q, 'from', 32), to: text(q, 'to', 32) };
  if (filter.result && filter.result !== 'success' && filter.result !== 'failure') throw new ServiceError('invalid-input', 'result must be success or failure');
  if (filter.event && !/^[a-z0-9.-]+$/.test(filter.event)) throw new ServiceError('invalid-input', 'event must be an event type such as login or admin.');
  let userId: string | undefined;
  if (filter.user) {
    const user = await c.services.users.get(filter.user);
    // An unknown user has no events: match nothing rather than everything.
    userId = user?.id ?? '-none-';
  }
  const from = time(filter.from, 'from');
  const to = time(filter.to, 'to');
  const before = text(q, 'before', 64);
  return {
    filter,
    query: {
      ...(userId ? { userId } : {}),
      ...(filter.event ? { type: filter.event } : {}),
      ...(filter.result ? { result: filter.result as 'success' | 'failure' } : {}),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      ...(before ? { before } : {}),
    },
  };
}

/** What a datetime-local control can show again: the accepted forms are a superset. */
function localValue(value: string): string {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value) ? value : /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00` : '';
}

export function auditCsv(events: readonly AuditEvent[]): string {
  const rows = [['time', 'event', 'result', 'user', 'actor', 'address', 'method', 'reason', 'details']];
  for (const e of events) {
    rows.push([new Date(e.time).toISOString(), e.type, e.result, e.username ?? e.userId ?? '', e.actor ?? '', e.ip ?? '', e.method ?? '', e.reason ?? '', e.details ? JSON.stringify(e.details) : '']);
  }
  return `${rows.map((r) => r.map((cell) => csvField(spreadsheetSafe(cell))).join(',')).join('\r\n')}\r\n`;
}

/** A cell a spreadsheet would run as a formula (=, +, -, @) is prefixed with ' (OWASP CSV injection). */
function spreadsheetSafe(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
}

/** The audit trail: filter by user, event, result and time; export to CSV (a sensitive action). */
export function registerAudit(c: AdminConsole): void {
  c.addNav({ href: AUDIT_PATH, label: 'admin.nav.audit', order: 40 });

  c.page(AUDIT_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const { filter, query } = await queryOf(c, req);
    const { events, more } = await c.services.adminConsole.queryAudit({ ...query, limit: 100 });
    const params = new URLSearchParams(Object.entries(filter).filter(([, v]) => v) as [string, string][]);
    const older = more && events.length > 0 ? `${AUDIT_PATH}?${new URLSearchParams([...params, ['before', events[events.length - 1]!.id]]).toString()}` : undefined;
    const body = html`
<form method="get" action="${AUDIT_PATH}" class="filters" id="audit-filter">
  <div><label for="f-user">${t('admin.audit.user')}</label><input id="f-user" name="user" type="text" value="${filter.user}" maxlength="64"></div>
  <div><label for="f-event">${t('admin.audit.event')}</label><input id="f-event" name="event" type="text" value="${filter.event}" maxlength="64" aria-describedby="f-event-hint"><p id="f-event-hint" class="hint">${t('admin.audit.eventHint')}</p></div>
  <div><label for="f-result">${t('admin.audit.result')}</label><select id="f-result" name="result"><option value="">${t('admin.audit.any')}</option><option value="success"${filter.result === 'success' ? html` selected` : ''}>${t('admin.audit.success')}</option><option value="failure"${filter.result === 'failure' ? html` selected` : ''}>${t('admin.audit.failure')}</option></select></div>
  <div><label for="f-from">${t('admin.audit.from')}</label><input id="f-from" name="from" type="datetime-local" value="${localValue(filter.from)}"></div>
  <div><label for="f-to">${t('admin.audit.to')}</label><input id="f-to" name="to" type="datetime-local" value="${localValue(filter.to)}"></div>
  <div><button type="submit" id="audit-apply">${t('admin.audit.apply')}</button> <a class="button" id="audit-export" href="${AUDIT_PATH}/export.csv?${params.toString()}">${t('admin.audit.export')}</a></div>
</form>
<div class="table-wrap"><table id="audit"><thead><tr><th scope="col">${t('admin.audit.time')}</th><th scope="col">${t('admin.audit.event')}</th><th scope="col">${t('admin.audit.result')}</th><th scope="col">${t('admin.audit.user')}</th><th scope="col">${t('admin.audit.actor')}</th><th scope="col">${t('account.col.address')}</th><th scope="col">${t('admin.audit.reason')}</th><th scope="col">${t('admin.audit.details')}</th></tr></thead>
<tbody>${events.map((e) => html`<tr class="${e.result}"><td>${timeTag(e.time, '')}</td><td>${e.type}</td><td>${e.result === 'success' ? t('admin.audit.success') : t('admin.audit.failure')}</td><td>${e.username ?? ''}</td><td>${e.actor ?? ''}</td><td>${e.ip ?? ''}</td><td>${e.reason ?? e.method ?? ''}</td><td class="details"><code>${e.details ? JSON.stringify(e.details).slice(0, 400) : ''}</code></td></tr>`)}</tbody></table></div>
${events.length === 0 ? html`<p>${t('admin.audit.none')}</p>` : ''}
${older ? html`<p><a id="audit-older" href="${older}">${t('admin.next')}</a></p>` : ''}`;
    return c.html(reply, c.render(req, a, { section: AUDIT_PATH, title: t('admin.nav.audit'), body }));
  });

  c.page(
    `${AUDIT_PATH}/export.csv`,
    async (req, reply, a) => {
      const { query } = await queryOf(c, req);
      const { events } = await c.services.adminConsole.queryAudit({ ...query, limit: EXPORT_LIMIT });
      await c.services.audit.record({ type: 'admin.audit.export', result: 'success', actor: a.user.username, userId: a.user.id, username: a.user.username, context: c.kit.ctxOf(req), details: { rows: events.length, filter: req.url.split('?')[1]?.slice(0, 300) ?? '' } });
      reply.header('content-disposition', 'attachment; filename="kanmon-audit.csv"');
      return reply.code(200).type('text/csv; charset=utf-8').send(`\ufeff${auditCsv(events)}`);
    },
    { sensitive: true },
  );
}
