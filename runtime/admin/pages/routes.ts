/**
 * Routes and policies: list, add, edit and delete routes (upstream, matching, TLS, timeouts,
 * keep-alive, rewrite rules, form login, policy), every save a version with a diff and a
 * rollback, and "Check access" (the decision and why, as `kanmon policy check` gives it).
 *
 * Validation is the config file's schema; each error is shown beside its field. Every change is
 * sensitive (a policy can change with it), so the forms themselves ask for a fresh passkey first.
 */
import type { FastifyRequest } from 'fastify';
import { errorField, type ConfigState } from '../../config/live.js';
import { FACTORS, type RouteConfig } from '../../config/schema.js';
import { UsageError } from '../../cli/args.js';
import { policyCheckCommand } from '../../cli/policy-check.js';
import { html, timeTag, type Html } from '../../portal/html.js';
import type { Translate } from '../../portal/i18n.js';
import type { Body } from '../../portal/kit.js';
import type { DiffLine } from '../../services/config-versions.js';
import { ServiceError } from '../../services/errors.js';
import { ADMIN_PREFIX, field, optionalField, type AdminConsole, type AdminRequest } from '../console.js';
import { postForm } from '../layout.js';

export const ROUTES_PATH = `${ADMIN_PREFIX}/routes`;
export const VERSIONS_PATH = `${ROUTES_PATH}/versions`;
export const CHECK_PATH = `${ROUTES_PATH}/check`;

const CONNECTION_FIELDS = ['connectTimeoutMs', 'responseTimeoutMs', 'idleTimeoutMs', 'poolSize', 'retries', 'maxRequestBodyBytes'] as const;
const JSON_FIELDS = ['upstreamTls', 'rewrite', 'upstreamAuth'] as const;

/** What the form shows: text per field, as typed (or as stored). */
type FormValues = Record<string, string>;
type FieldErrors = Map<string, string[]>;

function routePath(id: string): string {
  return `${ROUTES_PATH}/${encodeURIComponent(id)}`;
}

function factorsText(factors: readonly (readonly string[])[]): string {
  return factors.map((alt) => alt.join(' + ')).join(' | ');
}

function valuesOf(route: RouteConfig | undefined): FormValues {
  if (!route) return { pathPrefix: '/', factors: 'passkey', keepAlive: 'on' };
  const c = route.connection;
  const v: FormValues = {
    id: route.id,
    host: route.match.host ?? '',
    pathPrefix: route.match.pathPrefix,
    upstream: route.upstream,
    preserveHost: route.preserveHost ? 'on' : '',
    factors: factorsText(route.policy.factors),
    allowUsers: route.policy.allowUsers.join(' '),
    allowGroups: route.policy.allowGroups.join(' '),
    deviceBound: route.policy.deviceBound ? 'on' : '',
    aaguidAllowlist: route.policy.aaguidAllowlist.join(' '),
    idleTimeoutSeconds: route.policy.idleTimeoutSeconds === undefined ? '' : String(route.policy.idleTimeoutSeconds),
    absoluteTimeoutSeconds: route.policy.absoluteTimeoutSeconds === undefined ? '' : String(route.policy.absoluteTimeoutSeconds),
    keepAlive: c === undefined || c.keepAlive ? 'on' : '',
  };
  for (const k of CONNECTION_FIELDS) v[k] = c ? String(c[k]) : '';
  for (const k of JSON_FIELDS) v[k] = route[k] ? JSON.stringify(route[k], null, 2) : '';
  return v;
}

function formValues(b: Body): FormValues {
  const names = ['id', 'host', 'pathPrefix', 'upstream', 'preserveHost', 'factors', 'allowUsers', 'allowGroups', 'deviceBound', 'aaguidAllowlist', 'idleTimeoutSeconds', 'absoluteTimeoutSeconds', 'keepAlive', ...CONNECTION_FIELDS];
  const v: FormValues = {};
  for (const n of names) v[n] = optionalField(b, n, 4096) ?? '';
  for (const n of JSON_FIELDS) v[n] = optionalField(b, n, 64 * 1024) ?? '';
  return v;
}

const words = (text: string) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
/** A number when the text is one; otherwise the text itself, for the schema to name. */
const numberOr = (text: string): unknown => (/^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text);

/** The route as the config file would hold it, and errors for JSON fields that are not JSON. */
function routeFrom(v: FormValues): { route: Record<string, unknown>; errors: FieldErrors } {
  const errors: FieldErrors = new Map();
  const policy: Record<string, unknown> = {
    allowUsers: words(v.allowUsers ?? ''),
    allowGroups: words(v.allowGroups ?? ''),
    deviceBound: v.deviceBound === 'on',
    aaguidAllowlist: words(v.aaguidAllowlist ?? ''),
  };
  if (v.factors?.trim()) policy.factors = v.factors.split(/[|\n]/).map((alt) => alt.split(/[+,\s]+/).map((f) => f.trim()).filter(Boolean));
  if (v.idleTimeoutSeconds?.trim()) policy.idleTimeoutSeconds = numberOr(v.idleTimeoutSeconds);
  if (v.absoluteTimeoutSeconds?.trim()) policy.absoluteTimeoutSeconds = numberOr(v.absoluteTimeoutSeconds);
  const connection: Record<string, unknown> = { keepAlive: v.keepAlive === 'on' };
  for (const k of CONNECTION_FIELDS) if (v[k]?.trim()) connection[k] = numberOr(v[k]!);
  const route: Record<string, unknown> = {
    id: (v.id ?? '').trim(),
    match: { ...(v.host?.trim() ? { host: v.host.trim() } : {}), ...(v.pathPrefix?.trim() ? { pathPrefix: v.pathPrefix.trim() } : {}) },
    upstream: (v.upstream ?? '').trim(),
    policy,
    preserveHost: v.preserveHost === 'on',
    connection,
  };
  for (const k of JSON_FIELDS) {
    const text = v[k]?.trim();
    if (!text) continue;
    try {
      route[k] = JSON.parse(text);
    } catch (err) {
      errors.set(k, [`${k}: must be JSON (an object, as in the config file), got an error: ${(err as Error).message}`]);
    }
  }
  return { route, errors };
}

function errorsByField(errors: readonly string[], routeIndex: number): { fields: FieldErrors; general: string[] } {
  const fields: FieldErrors = new Map();
  const general: string[] = [];
  for (const e of errors) {
    const where = errorField(e);
    if (where.route === routeIndex && where.field) {
      // Form fields are named by the option (policy.factors → factors; match.host → host).
      const name = where.field.replace(/^(policy|match|connection)\./, '').replace(/\[\d+\]$/, '');
      fields.set(name, [...(fields.get(name) ?? []), e]);
    } else general.push(e);
  }
  return { fields, general };
}

export function registerRoutes(c: AdminConsole): void {
  const s = c.services;
  c.addNav({ href: ROUTES_PATH, label: 'admin.nav.routes', order: 60 });

  c.page(ROUTES_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const { version, config } = await s.configVersions.effective();
    const current = await s.configVersions.get(version);
    const body = html`
<p class="lead" id="config-version">${t('admin.routes.version')} ${version}${current ? html` · ${current.author} · ${timeTag(current.at, '')}` : ''} · <a href="${VERSIONS_PATH}" id="versions-link">${t('admin.routes.versions')}</a></p>
<p class="hint">${t('admin.routes.propagation')}</p>
<p><a class="button primary" id="new-route" href="${ROUTES_PATH}/new">${t('admin.routes.new')}</a> <a class="button" id="check-link" href="${CHECK_PATH}">${t('admin.routes.check')}</a></p>
<table id="routes"><thead><tr><th scope="col">${t('admin.routes.id')}</th><th scope="col">${t('admin.routes.host')}</th><th scope="col">${t('admin.routes.pathPrefix')}</th><th scope="col">${t('admin.routes.upstream')}</th><th scope="col">${t('admin.routes.factors')}</th><th scope="col">${t('admin.routes.who')}</th></tr></thead>
<tbody>${config.routes.map(
      (r) => html`<tr data-route="${r.id}"><td><a href="${routePath(r.id)}">${r.id}</a></td><td>${r.match.host ?? '*'}</td><td>${r.match.pathPrefix}</td><td>${r.upstream}</td><td>${factorsText(r.policy.factors)}${r.policy.deviceBound ? html` · ${t('admin.routes.deviceBound')}` : ''}</td><td>${whoText(r, t)}</td></tr>`,
    )}</tbody></table>
${config.routes.length === 0 ? html`<p>${t('admin.routes.none')}</p>` : ''}`;
    return c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: t('admin.nav.routes'), body }));
  });

  c.page(`${ROUTES_PATH}/new`, async (req, reply, a) => {
    const { version } = await s.configVersions.effective();
    return c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: req.kanmonT('admin.routes.new'), body: routeForm(req.kanmonT, a, { values: valuesOf(undefined), baseVersion: version }) }));
  }, { sensitive: true });

  c.page(`${ROUTES_PATH}/:id`, async (req, reply, a) => {
    const id = String((req.params as { id: string }).id).slice(0, 64);
    const { version, config } = await s.configVersions.effective();
    const route = config.routes.find((r) => r.id === id);
    if (!route) throw new ServiceError('not-found', 'no such route');
    const t = req.kanmonT;
    const body = html`${routeForm(t, a, { values: valuesOf(route), baseVersion: version, originalId: route.id })}
<section aria-labelledby="delete-h"><h2 id="delete-h">${t('admin.routes.delete')}</h2>
${postForm({ action: `${routePath(route.id)}/delete`, csrf: a.csrf, className: 'inline-action', confirm: t('admin.confirm'), body: html`<input type="hidden" name="_back" value="${routePath(route.id)}"><input type="hidden" name="baseVersion" value="${String(version)}"><button type="submit" class="danger" id="delete-route">${t('admin.routes.delete')}</button>` })}
</section>`;
    return c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: `${t('admin.routes.edit')}: ${route.id}`, body }));
  }, { sensitive: true });

  c.action(
    `${ROUTES_PATH}/save`,
    async (req, reply, a) => {
      const t = req.kanmonT;
      const b = c.kit.bodyOf(req);
      const baseVersion = Number(field(b, 'baseVersion', 12));
      if (!Number.isInteger(baseVersion) || baseVersion < 0) throw new ServiceError('invalid-input', 'baseVersion must be a version number');
      const originalId = optionalField(b, 'originalId', 64);
      const values = formValues(b);
      const note = optionalField(b, 'note', 500);
      const { route, errors: jsonErrors } = routeFrom(values);
      const current = await s.configVersions.current();
      const routes = [...((current?.state.routes ?? []) as Record<string, unknown>[])];
      let index = originalId ? routes.findIndex((r) => r.id === originalId) : -1;
      if (originalId && index < 0) throw new ServiceError('not-found', 'that route was deleted meanwhile');
      const before = index >= 0 ? routes[index] : null;
      if (index >= 0) routes[index] = route;
      else index = routes.push(route) - 1;
      const again = (status: number, fields: FieldErrors, general: readonly string[]) =>
        c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: originalId ? `${t('admin.routes.edit')}: ${originalId}` : t('admin.routes.new'), body: routeForm(t, a, { values, baseVersion, ...(originalId ? { originalId } : {}), fields, general, ...(note ? { note } : {}) }) }), status);
      if (jsonErrors.size > 0) return again(400, jsonErrors, []);
      const result = await s.configVersions.save({ ...(current?.state ?? {}), routes } as ConfigState, { author: a.user.username, baseVersion, context: c.kit.ctxOf(req), ...(note ? { note } : {}) });
      if (!result.ok) {
        const { fields, general } = errorsByField(result.errors, index);
        return again(400, fields, general);
      }
      const saved = (result.version.state.routes as Record<string, unknown>[])[index];
      await c.recordChange(req, a, { type: before ? 'route.edit' : 'route.add', before, after: saved, details: { route: route.id, version: result.version.version } });
      return c.done(reply, `${VERSIONS_PATH}/${result.version.version}`, 'configSaved');
    },
    { sensitive: true },
  );

  c.action(
    `${ROUTES_PATH}/:id/delete`,
    async (req, reply, a) => {
      const id = String((req.params as { id: string }).id).slice(0, 64);
      const baseVersion = Number(field(c.kit.bodyOf(req), 'baseVersion', 12));
      const current = await s.configVersions.current();
      const routes = (current?.state.routes ?? []) as Record<string, unknown>[];
      const before = routes.find((r) => r.id === id);
      if (!current || !before) throw new ServiceError('not-found', 'no such route');
      const result = await s.configVersions.save({ ...current.state, routes: routes.filter((r) => r !== before) }, { author: a.user.username, baseVersion, context: c.kit.ctxOf(req), note: `deleted route ${id}` });
      if (!result.ok) throw new ServiceError('invalid-input', result.errors.join('; '));
      await c.recordChange(req, a, { type: 'route.delete', before, after: null, details: { route: id, version: result.version.version } });
      return c.done(reply, ROUTES_PATH, 'configSaved');
    },
    { sensitive: true },
  );

  c.page(VERSIONS_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const q = req.query as Record<string, unknown>;
    const before = typeof q.before === 'string' && /^\d{1,10}$/.test(q.before) ? Number(q.before) : undefined;
    const list = await s.configVersions.list({ limit: 25, ...(before !== undefined ? { before } : {}) });
    const oldest = list.at(-1)?.version;
    const body = html`<table id="versions"><thead><tr><th scope="col">${t('admin.routes.version')}</th><th scope="col">${t('admin.routes.author')}</th><th scope="col">${t('admin.routes.when')}</th><th scope="col">${t('admin.routes.note')}</th></tr></thead>
<tbody>${list.map((v) => html`<tr data-version="${String(v.version)}"><td><a href="${VERSIONS_PATH}/${String(v.version)}">${String(v.version)}</a></td><td class="author">${v.author}</td><td>${timeTag(v.at, '')}</td><td class="note">${v.note ?? ''}</td></tr>`)}</tbody></table>
${oldest !== undefined && oldest > 1 ? html`<p><a id="versions-older" href="${VERSIONS_PATH}?before=${String(oldest)}">${t('admin.next')}</a></p>` : ''}`;
    return c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: t('admin.routes.versions'), body }));
  });

  c.page(`${VERSIONS_PATH}/:n`, async (req, reply, a) => {
    const t = req.kanmonT;
    const n = versionParam(req);
    const { version, previous, changes } = await s.configVersions.diffWithPrevious(n);
    const currentNumber = await s.configVersions.currentVersion();
    const body = html`<p class="lead" id="version-facts">${t('admin.routes.version')} ${String(version.version)} · ${version.author} · ${timeTag(version.at, '')}${version.note ? html` · <span class="note">${version.note}</span>` : ''}</p>
<h2>${previous ? html`${t('admin.routes.changesSince')} ${String(previous.version)}` : t('admin.routes.firstVersion')}</h2>
${diffTable(changes, t)}
${version.version !== currentNumber
  ? postForm({ action: `${VERSIONS_PATH}/${String(version.version)}/rollback`, csrf: a.csrf, className: 'inline-action', confirm: t('admin.confirm'), body: html`<input type="hidden" name="_back" value="${VERSIONS_PATH}/${String(version.version)}"><input type="hidden" name="baseVersion" value="${String(currentNumber ?? 0)}"><button type="submit" id="rollback">${t('admin.routes.rollback')} ${String(version.version)}</button>` })
  : html`<p class="hint" id="is-current">${t('admin.routes.isCurrent')}</p>`}
<p><a href="${VERSIONS_PATH}">${t('admin.back')}</a></p>`;
    return c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: `${t('admin.routes.version')} ${String(version.version)}`, body }));
  });

  c.action(
    `${VERSIONS_PATH}/:n/rollback`,
    async (req, reply, a) => {
      const n = versionParam(req);
      const baseVersion = Number(field(c.kit.bodyOf(req), 'baseVersion', 12));
      const before = await s.configVersions.currentVersion();
      const result = await s.configVersions.rollback(n, { author: a.user.username, baseVersion, context: c.kit.ctxOf(req) });
      if (!result.ok) throw new ServiceError('invalid-input', `version ${n} is not valid with this node's config file: ${result.errors.join('; ')}`);
      await c.recordChange(req, a, { type: 'config.rollback', before: { version: before ?? null }, after: { version: result.version.version, rollbackOf: n }, details: { changes: result.changes.length } });
      return c.done(reply, `${VERSIONS_PATH}/${result.version.version}`, 'configRolledBack');
    },
    { sensitive: true },
  );

  c.page(CHECK_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    const q = req.query as Record<string, unknown>;
    const text = (name: string, max: number) => (typeof q[name] === 'string' ? (q[name] as string).trim().slice(0, max) : '');
    const user = text('user', 64);
    const url = text('url', 2048);
    const method = text('method', 16) || 'passkey';
    const cert = q.cert === 'on';
    let answer: Html | string = '';
    let status = 200;
    if (user && url) {
      if (!['passkey', 'otp', 'recovery'].includes(method)) throw new ServiceError('invalid-input', 'method must be passkey, otp or recovery');
      const lines: string[] = [];
      try {
        const { config } = await s.configVersions.effective();
        await policyCheckCommand([user, url, '--methods', method, ...(cert ? ['--cert'] : [])], s, config, { out: (l) => lines.push(l) });
        const decision = lines.find((l) => /^\s+(ALLOW|DENY|LOGIN|STEP-UP|CERTIFICATE-REQUIRED)$/.test(l))?.trim() ?? '';
        answer = html`<section aria-labelledby="answer-h" id="check-answer"><h2 id="answer-h">${t('admin.routes.decision')}: <span id="check-decision" class="decision">${decision}</span></h2><pre id="check-why">${lines.join('\n')}</pre></section>`;
      } catch (err) {
        if (!(err instanceof UsageError) && !(err instanceof ServiceError)) throw err;
        status = err instanceof ServiceError && err.code === 'not-found' ? 404 : 400;
        answer = html`<p class="error" id="check-error" role="alert">${err instanceof ServiceError && err.code === 'not-found' ? t('admin.routes.unknownUser') : err.message}</p>`;
      }
    }
    const body = html`<form method="get" action="${CHECK_PATH}" class="card admin-form" id="check-form">
<label for="check-user">${t('admin.users.username')}</label><input id="check-user" name="user" type="text" maxlength="64" required value="${user}">
<label for="check-url">${t('admin.routes.url')}</label><input id="check-url" name="url" type="url" maxlength="2048" required value="${url}" placeholder="https://app.example.jp/path">
<label for="check-method">${t('admin.routes.method')}</label><select id="check-method" name="method">${['passkey', 'otp', 'recovery'].map((m) => html`<option value="${m}"${m === method ? html` selected` : ''}>${m}</option>`)}</select>
<div class="choice"><input id="check-cert" name="cert" type="checkbox"${cert ? html` checked` : ''}><label for="check-cert">${t('admin.routes.withCert')}</label></div>
<button type="submit" class="primary" id="check-submit">${t('admin.routes.check')}</button>
</form>
${answer}`;
    return c.html(reply, c.render(req, a, { section: ROUTES_PATH, title: t('admin.routes.check'), body }), status);
  });
}

function versionParam(req: FastifyRequest): number {
  const raw = String((req.params as { n: string }).n);
  if (!/^\d{1,10}$/.test(raw)) throw new ServiceError('invalid-input', 'a version is a number');
  return Number(raw);
}

function whoText(r: RouteConfig, t: Translate): string {
  if (r.policy.allowUsers.length === 0 && r.policy.allowGroups.length === 0) return t('admin.routes.everyone');
  return [...r.policy.allowUsers, ...r.policy.allowGroups.map((g) => `@${g}`)].join(', ');
}

export function diffTable(changes: readonly DiffLine[], t: Translate): Html {
  if (changes.length === 0) return html`<p id="diff-empty">${t('admin.routes.noChanges')}</p>`;
  return html`<table id="diff" class="diff"><thead><tr><th scope="col">${t('admin.routes.setting')}</th><th scope="col">${t('admin.routes.before')}</th><th scope="col">${t('admin.routes.after')}</th></tr></thead>
<tbody>${changes.map((d) => html`<tr class="${d.kind}" data-path="${d.path}"><td><code>${d.path}</code></td><td class="before"><code>${d.before ?? ''}</code></td><td class="after"><code>${d.after ?? ''}</code></td></tr>`)}</tbody></table>`;
}

function routeForm(t: Translate, a: AdminRequest, o: { values: FormValues; baseVersion: number; originalId?: string; fields?: FieldErrors; general?: readonly string[]; note?: string }): Html {
  const v = o.values;
  const errs = o.fields ?? new Map<string, string[]>();
  const errorsOf = (name: string) => errs.get(name) ?? [];
  const described = (name: string, hint?: boolean) => {
    const ids = [...(hint ? [`${name}-hint`] : []), ...(errorsOf(name).length ? [`${name}-error`] : [])];
    return ids.length ? html` aria-describedby="${ids.join(' ')}"` : '';
  };
  const invalid = (name: string) => (errorsOf(name).length ? html` aria-invalid="true"` : '');
  const errorBlock = (name: string) => (errorsOf(name).length ? html`<p class="field-error" id="${name}-error" role="alert">${errorsOf(name).join(' · ')}</p>` : '');
  const input = (name: string, label: string, o2: { type?: string; hint?: string; max?: number } = {}) =>
    html`<div class="field" data-field="${name}"><label for="${name}">${label}</label><input id="${name}" name="${name}" type="${o2.type ?? 'text'}" maxlength="${String(o2.max ?? 256)}" value="${v[name] ?? ''}"${described(name, !!o2.hint)}${invalid(name)}>${o2.hint ? html`<p class="hint" id="${name}-hint">${o2.hint}</p>` : ''}${errorBlock(name)}</div>`;
  const check = (name: string, label: string) =>
    html`<div class="choice field" data-field="${name}"><input id="${name}" name="${name}" type="checkbox"${v[name] === 'on' ? html` checked` : ''}${described(name)}><label for="${name}">${label}</label>${errorBlock(name)}</div>`;
  const area = (name: string, label: string, hint: string) =>
    html`<div class="field" data-field="${name}"><label for="${name}">${label}</label><textarea id="${name}" name="${name}" rows="5" maxlength="65536" spellcheck="false"${described(name, true)}${invalid(name)}>${v[name] ?? ''}</textarea><p class="hint" id="${name}-hint">${hint}</p>${errorBlock(name)}</div>`;
  const back = o.originalId ? routePath(o.originalId) : `${ROUTES_PATH}/new`;
  return postForm({
    action: `${ROUTES_PATH}/save`,
    csrf: a.csrf,
    id: 'route-form',
    className: 'card admin-form',
    body: html`<input type="hidden" name="_back" value="${back}"><input type="hidden" name="baseVersion" value="${String(o.baseVersion)}">${o.originalId ? html`<input type="hidden" name="originalId" value="${o.originalId}">` : ''}
${o.general && o.general.length ? html`<div class="error" id="form-errors" role="alert"><p>${t('admin.routes.fixErrors')}</p><ul>${o.general.map((e) => html`<li>${e}</li>`)}</ul></div>` : errs.size ? html`<p class="error" id="form-errors" role="alert">${t('admin.routes.fixErrors')}</p>` : ''}
<fieldset><legend>${t('admin.routes.matching')}</legend>
${input('id', t('admin.routes.id'), { hint: t('admin.routes.idHint'), max: 63 })}
${input('host', t('admin.routes.host'), { hint: t('admin.routes.hostHint'), max: 253 })}
${input('pathPrefix', t('admin.routes.pathPrefix'), { max: 1024 })}
${input('upstream', t('admin.routes.upstream'), { hint: t('admin.routes.upstreamHint'), max: 2048 })}
${check('preserveHost', t('admin.routes.preserveHost'))}
</fieldset>
<fieldset><legend>${t('admin.routes.policy')}</legend>
${input('factors', t('admin.routes.factors'), { hint: `${t('admin.routes.factorsHint')} (${FACTORS.join(', ')})`, max: 512 })}
${input('allowUsers', t('admin.routes.allowUsers'), { hint: t('admin.routes.listHint'), max: 4096 })}
${input('allowGroups', t('admin.routes.allowGroups'), { hint: t('admin.routes.listHint'), max: 4096 })}
${check('deviceBound', t('admin.routes.deviceBoundLabel'))}
${input('aaguidAllowlist', t('admin.routes.aaguids'), { hint: t('admin.routes.listHint'), max: 4096 })}
${input('idleTimeoutSeconds', t('admin.routes.idle'), { type: 'text', hint: t('admin.routes.tightenHint'), max: 12 })}
${input('absoluteTimeoutSeconds', t('admin.routes.absolute'), { type: 'text', hint: t('admin.routes.tightenHint'), max: 12 })}
</fieldset>
<fieldset><legend>${t('admin.routes.connection')}</legend>
${check('keepAlive', t('admin.routes.keepAlive'))}
${CONNECTION_FIELDS.map((k) => input(k, t(`admin.routes.conn.${k}`), { max: 16 }))}
</fieldset>
<fieldset><legend>${t('admin.routes.advanced')}</legend>
${area('upstreamTls', t('admin.routes.upstreamTls'), t('admin.routes.upstreamTlsHint'))}
${area('rewrite', t('admin.routes.rewrite'), t('admin.routes.rewriteHint'))}
${area('upstreamAuth', t('admin.routes.upstreamAuth'), t('admin.routes.upstreamAuthHint'))}
</fieldset>
<label for="note">${t('admin.routes.note')}</label><input id="note" name="note" type="text" maxlength="500" value="${o.note ?? ''}">
<button type="submit" class="primary" id="save-route">${t('admin.save')}</button>`,
  });
}
