/**
 * Settings that may change while Kanmon runs: session timeouts, lockout thresholds, TOTP
 * tolerance, certificate expiry notices, administrators' mail recipients and certificate defaults. Each save is a config version
 * (the same history, diff and rollback as routes). Listener-level settings (ports, TLS source,
 * store, secrets, WebAuthn) stay in the config file and are shown here read-only.
 */
import { LIVE_SETTINGS, errorField, type ConfigState, type LiveSection } from '../../config/live.js';
import { html, type Html } from '../../portal/html.js';
import type { MessageKey, Translate } from '../../portal/i18n.js';
import { ServiceError } from '../../services/errors.js';
import { ADMIN_PREFIX, field, optionalField, type AdminConsole } from '../console.js';
import { postForm } from '../layout.js';
import { VERSIONS_PATH } from './routes.js';

export const SETTINGS_PATH = `${ADMIN_PREFIX}/settings`;

type Values = Record<string, string>;

function fieldName(section: string, option: string): string {
  return `${section}.${option}`;
}

function valueText(option: string, value: unknown): string {
  if (option === 'adminRecipients') return Array.isArray(value) ? value.join('\n') : String(value ?? '');
  return Array.isArray(value) ? value.join(', ') : String(value ?? '');
}

/** Longest text accepted for the recipients field: 50 addresses of 254 characters, one a line. */
const RECIPIENTS_FIELD_MAX = 50 * 256;

/** Form text back to config values: numbers where they look like numbers, lists for certificateExpiryDays. */
function stateFromForm(values: Values, current: ConfigState, mailConfigured: boolean): ConfigState {
  const next: Record<string, unknown> = { ...current };
  for (const section of Object.keys(LIVE_SETTINGS) as LiveSection[]) {
    const out: Record<string, unknown> = { ...((current[section] as Record<string, unknown> | undefined) ?? {}) };
    for (const option of LIVE_SETTINGS[section]) {
      const text = (values[fieldName(section, option)] ?? '').trim();
      // Without notifications.mail the list is read-only here: what is stored stays.
      if (option === 'adminRecipients' && !mailConfigured) continue;
      // One address a line (commas also separate); each line is validated whole, so "a@b.c\r\nBcc: …" is refused, never sent.
      if (option === 'adminRecipients') out[option] = text.split(/\r\n|[\r\n,]/).map((a) => a.trim()).filter(Boolean);
      else if (option === 'certificateExpiryDays') out[option] = text.split(/[\s,]+/).filter(Boolean).map((d) => (/^\d+$/.test(d) ? Number(d) : d));
      else if (option === 'keyType') out[option] = text;
      else out[option] = /^-?\d+$/.test(text) ? Number(text) : text;
    }
    next[section] = out;
  }
  return next as unknown as ConfigState;
}

export function registerSettings(c: AdminConsole): void {
  const s = c.services;
  c.addNav({ href: SETTINGS_PATH, label: 'admin.nav.settings', order: 70 });

  const render = async (o: { values?: Values; errors?: Map<string, string[]>; general?: string[]; baseVersion?: number }) => {
    const { version, config } = await s.configVersions.effective();
    const values: Values = o.values ?? {};
    if (!o.values) {
      for (const section of Object.keys(LIVE_SETTINGS) as LiveSection[]) {
        for (const option of LIVE_SETTINGS[section]) values[fieldName(section, option)] = valueText(option, (config[section] as unknown as Record<string, unknown>)[option]);
      }
    }
    return { version: o.baseVersion ?? version, config, values, errors: o.errors ?? new Map<string, string[]>(), general: o.general ?? [] };
  };

  const page = (t: Translate, csrf: string, r: Awaited<ReturnType<typeof render>>): Html => {
    const input = (section: LiveSection, option: string) => {
      const name = fieldName(section, option);
      const errs = r.errors.get(name) ?? [];
      const id = name.replace('.', '-');
      const label = t(`admin.settings.${name}` as MessageKey);
      const mailOff = option === 'adminRecipients' && !r.config.notifications.mail;
      const control =
        option === 'adminRecipients'
          ? html`<textarea id="${id}" name="${name}" rows="4" cols="40" maxlength="${String(RECIPIENTS_FIELD_MAX)}" aria-describedby="${id}-hint${errs.length ? html` ${id}-error` : ''}"${mailOff ? html` readonly` : ''}${errs.length ? html` aria-invalid="true"` : ''}>${r.values[name] ?? ''}</textarea><p class="hint" id="${id}-hint">${mailOff ? t('admin.settings.mailNotConfigured') : t('admin.settings.adminRecipientsHint')}</p>`
          : option === 'keyType'
          ? html`<select id="${id}" name="${name}">${['ec-p256', 'rsa-2048'].map((k) => html`<option value="${k}"${r.values[name] === k ? html` selected` : ''}>${k}</option>`)}</select>`
          : html`<input id="${id}" name="${name}" type="text" maxlength="64" value="${r.values[name] ?? ''}"${errs.length ? html` aria-invalid="true" aria-describedby="${id}-error"` : ''}>`;
      return html`<div class="field" data-field="${name}"><label for="${id}">${label}</label>${control}${errs.length ? html`<p class="field-error" id="${id}-error" role="alert">${errs.join(' · ')}</p>` : ''}</div>`;
    };
    const notify = r.config.notifications;
    return html`<p class="hint">${t('admin.settings.intro')} <a href="${VERSIONS_PATH}">${t('admin.routes.versions')}</a></p>
${postForm({
  action: SETTINGS_PATH,
  csrf,
  id: 'settings-form',
  className: 'card admin-form',
  body: html`<input type="hidden" name="_back" value="${SETTINGS_PATH}"><input type="hidden" name="baseVersion" value="${String(r.version)}">
${r.errors.size || r.general.length ? html`<div class="error" id="form-errors" role="alert"><p>${t('admin.routes.fixErrors')}</p>${r.general.length ? html`<ul>${r.general.map((e) => html`<li>${e}</li>`)}</ul>` : ''}</div>` : ''}
${(Object.keys(LIVE_SETTINGS) as LiveSection[]).map((section) => html`<fieldset><legend>${t(`admin.settings.section.${section}` as MessageKey)}</legend>${LIVE_SETTINGS[section].map((option) => input(section, option))}</fieldset>`)}
<p class="hint">${t('admin.settings.recipients')}: ${notify.kind === 'sns' ? html`<code id="recipients">SNS ${notify.topicArn}</code>` : html`<span id="recipients">${t('admin.settings.recipientsLog')}</span>`}</p>
<button type="submit" class="primary" id="save-settings">${t('admin.save')}</button>`,
})}
<section aria-labelledby="file-only-h"><h2 id="file-only-h">${t('admin.settings.fileOnly')}</h2>
<p class="hint">${t('admin.settings.fileOnlyHint')}</p>
<dl class="facts" id="file-only">
<dt>server.port</dt><dd>${String(r.config.server.port)}</dd>
<dt>server.httpPort / healthPort</dt><dd>${String(r.config.server.httpPort)} / ${String(r.config.server.healthPort)}</dd>
<dt>tls.source</dt><dd>${r.config.tls.source}</dd>
<dt>store.kind</dt><dd>${r.config.store.kind}</dd>
<dt>secrets.provider</dt><dd>${r.config.secrets.provider}</dd>
<dt>webauthn.rpId</dt><dd>${r.config.webauthn.rpId}</dd>
<dt>session.cacheSeconds</dt><dd>${String(r.config.session.cacheSeconds)}</dd>
<dt>notifications.kind</dt><dd>${notify.kind}</dd>
</dl></section>`;
  };

  c.page(SETTINGS_PATH, async (req, reply, a) => {
    const t = req.kanmonT;
    return c.html(reply, c.render(req, a, { section: SETTINGS_PATH, title: t('admin.nav.settings'), body: page(t, a.csrf, await render({})) }));
  });

  c.action(
    SETTINGS_PATH,
    async (req, reply, a) => {
      const t = req.kanmonT;
      const b = c.kit.bodyOf(req);
      const baseVersion = Number(field(b, 'baseVersion', 12));
      if (!Number.isInteger(baseVersion) || baseVersion < 0) throw new ServiceError('invalid-input', 'baseVersion must be a version number');
      const values: Values = {};
      for (const section of Object.keys(LIVE_SETTINGS) as LiveSection[]) {
        for (const option of LIVE_SETTINGS[section]) values[fieldName(section, option)] = optionalField(b, fieldName(section, option), option === 'adminRecipients' ? RECIPIENTS_FIELD_MAX : 256) ?? '';
      }
      const current = await s.configVersions.current();
      if (!current) throw new ServiceError('unavailable', 'no configuration is stored yet');
      const { config: effective } = await s.configVersions.effective();
      const next = stateFromForm(values, current.state, effective.notifications.mail !== undefined);
      const result = await s.configVersions.save(next, { author: a.user.username, baseVersion, context: c.kit.ctxOf(req), note: 'settings' });
      if (!result.ok) {
        const errors = new Map<string, string[]>();
        const general: string[] = [];
        for (const e of result.errors) {
          const where = errorField(e);
          if (where.field && where.route === undefined && values[where.field] !== undefined) errors.set(where.field, [...(errors.get(where.field) ?? []), e]);
          else general.push(e);
        }
        return c.html(reply, c.render(req, a, { section: SETTINGS_PATH, title: t('admin.nav.settings'), body: page(t, a.csrf, await render({ values, errors, general, baseVersion })) }), 400);
      }
      const before: Record<string, unknown> = {};
      const after: Record<string, unknown> = {};
      for (const d of result.changes) {
        before[d.path] = d.before ?? null;
        after[d.path] = d.after ?? null;
      }
      await c.recordChange(req, a, { type: 'settings.save', before, after, details: { version: result.version.version } });
      return c.done(reply, SETTINGS_PATH, 'configSaved');
    },
    { sensitive: true },
  );
}
