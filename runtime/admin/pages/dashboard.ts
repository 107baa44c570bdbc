import { html, timeTag, type Html } from '../../portal/html.js';
import type { Translate } from '../../portal/i18n.js';
import type { LoginHistogram } from '../../services/admin-console.js';
import { ADMIN_PREFIX, type AdminConsole } from '../console.js';

/** Events shown as alerts: what the notifier reports, and refusals an administrator should see. */
const ALERT_TYPES = new Set(['login.lockout', 'admin.access', 'admin.csrf', 'portal.cross-site', 'certificate.refused', 'mtls.certificate-refused']);

function isAlert(e: { type: string; result: string; method?: string; details?: Readonly<Record<string, unknown>> }): boolean {
  if (ALERT_TYPES.has(e.type)) return true;
  if (e.type === 'login' && e.method === 'recovery' && e.result === 'success') return true;
  return e.type === 'user.add' && e.details?.isAdmin === true;
}

/** Logins and failures per hour as a bar chart, drawn here so the page needs no script. */
export function loginChart(h: LoginHistogram, t: Translate): Html {
  const w = 24 * 22;
  const height = 120;
  const max = Math.max(1, ...h.hours.map(([, s, f]) => s + f));
  const bars = h.hours.map(([start, s, f], i) => {
    const sh = Math.round((s / max) * (height - 20));
    const fh = Math.round((f / max) * (height - 20));
    const x = i * 22 + 2;
    const hour = new Date(start).toISOString().slice(11, 16);
    return html`<g><title>${hour} UTC: ${s} ${t('admin.dash.successes')}, ${f} ${t('admin.dash.failures')}</title>
<rect class="ok" x="${x}" y="${height - 16 - sh}" width="18" height="${sh}"></rect>
<rect class="fail" x="${x}" y="${height - 16 - sh - fh}" width="18" height="${fh}"></rect>
${i % 6 === 0 ? html`<text x="${x}" y="${height - 2}">${hour}</text>` : ''}</g>`;
  });
  return html`<figure class="chart"><svg id="login-chart" role="img" aria-labelledby="login-chart-title" viewBox="0 0 ${w} ${height}" width="${w}" height="${height}">
<title id="login-chart-title">${t('admin.dash.chartTitle')}: ${h.successes} ${t('admin.dash.successes')}, ${h.failures} ${t('admin.dash.failures')}</title>
${bars}</svg>
<figcaption><span class="key ok"></span> ${t('admin.dash.successes')}: <strong id="login-successes">${h.successes}</strong> · <span class="key fail"></span> ${t('admin.dash.failures')}: <strong id="login-failures">${h.failures}</strong></figcaption></figure>`;
}

function daysLeft(date: Date | undefined, now: number): number | undefined {
  return date ? Math.floor((date.getTime() - now) / 86_400_000) : undefined;
}

export function registerDashboard(c: AdminConsole): void {
  c.addNav({ href: ADMIN_PREFIX, label: 'admin.nav.dashboard', order: 0 });
  c.page(ADMIN_PREFIX, async (req, reply, a) => {
    const t = req.kanmonT;
    const now = Date.now();
    const s = c.services;
    const [nodes, histogram, locked, ca, recent] = await Promise.all([
      c.deps.nodes ? c.deps.nodes().catch(() => undefined) : Promise.resolve(undefined),
      s.adminConsole.loginHistogram(),
      s.loginGuard.lockedUsers(),
      s.ca.ensure(c.kit.ctxOf(req)),
      s.adminConsole.queryAudit({ from: now - 7 * 86_400_000, limit: 2000 }),
    ]);
    const alerts = recent.events.filter(isAlert).slice(0, 10);
    const health = c.deps.health?.() ?? [];
    const serverCheck = health.find((r) => r.name === 'certificate');
    const serverDays = daysLeft(c.deps.serverCertificateNotAfter?.(), now);
    const caDays = daysLeft(ca.notAfter, now);
    const body = html`
<div class="tiles">
<section class="tile" aria-labelledby="nodes-h"><h2 id="nodes-h">${t('admin.dash.nodes')}</h2>
${nodes === undefined ? html`<p class="warn">${t('admin.dash.nodesUnknown')}</p>` : html`<table id="nodes"><thead><tr><th scope="col">${t('admin.dash.node')}</th><th scope="col">${t('admin.dash.version')}</th><th scope="col">${t('admin.dash.lastBeat')}</th></tr></thead>
<tbody>${nodes.map((n) => html`<tr><td>${n.host} (${n.nodeId.slice(0, 8)})</td><td>${n.version}</td><td>${timeTag(n.lastBeatAt, '')}</td></tr>`)}</tbody></table>`}
</section>
<section class="tile" aria-labelledby="health-h"><h2 id="health-h">${t('admin.dash.health')}</h2>
<ul id="health" class="plain">${health.map((r) => html`<li class="${r.state}"><span class="badge ${r.state}">${r.state === 'ok' ? t('admin.dash.ok') : t('admin.dash.failing')}</span> ${r.name} <small>${r.detail}</small></li>`)}</ul>
</section>
<section class="tile" aria-labelledby="certs-h"><h2 id="certs-h">${t('admin.dash.expiry')}</h2>
<dl class="facts"><dt>${t('admin.dash.serverCert')}</dt><dd id="server-cert-days">${serverDays !== undefined ? html`${serverDays} ${t('admin.days')}` : serverCheck ? serverCheck.detail : t('admin.dash.offloaded')}</dd>
<dt>${t('admin.dash.caCert')}</dt><dd id="ca-days">${caDays} ${t('admin.days')} (${timeTag(ca.notAfter.getTime(), '')})</dd></dl>
</section>
</div>
<section aria-labelledby="logins-h"><h2 id="logins-h">${t('admin.dash.logins')}</h2>${loginChart(histogram, t)}</section>
<section aria-labelledby="locks-h"><h2 id="locks-h">${t('admin.dash.lockouts')}</h2>
${locked.length === 0 ? html`<p id="lockouts-none">${t('admin.dash.noLockouts')}</p>` : html`<ul id="lockouts">${locked.map((l) => html`<li><a href="${ADMIN_PREFIX}/users/${encodeURIComponent(l.username)}">${l.username}</a> — ${t('admin.lockedUntil')} ${timeTag(l.lockedUntil, '')}</li>`)}</ul>`}
</section>
<section aria-labelledby="alerts-h"><h2 id="alerts-h">${t('admin.dash.alerts')}</h2>
${alerts.length === 0 ? html`<p>${t('admin.dash.noAlerts')}</p>` : html`<table id="alerts"><thead><tr><th scope="col">${t('admin.audit.time')}</th><th scope="col">${t('admin.audit.event')}</th><th scope="col">${t('admin.audit.user')}</th><th scope="col">${t('admin.audit.reason')}</th></tr></thead>
<tbody>${alerts.map((e) => html`<tr><td>${timeTag(e.time, '')}</td><td>${e.type}</td><td>${e.username ?? ''}</td><td>${e.reason ?? ''}</td></tr>`)}</tbody></table>`}
</section>`;
    return c.html(reply, c.render(req, a, { section: ADMIN_PREFIX, title: t('admin.nav.dashboard'), body }));
  });
}
