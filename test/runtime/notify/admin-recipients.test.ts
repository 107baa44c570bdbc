/**
 * notifications.adminRecipients: administrator notifications mailed through a real SMTP
 * receiver to the listed addresses, a saved change of the list applying without a restart,
 * and the console's settings page accepting and refusing lists (header injection, too many,
 * malformed, oversized), audited with before and after; read-only when mail is not configured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../runtime/config/schema.js';
import { KanmonHarness, type HttpAnswer } from '../../support/kanmon-harness.js';
import { softAuthenticatorFor } from '../../support/kanmon-harness.js';
import type { SoftAuthenticator } from '../../support/soft-authenticator.js';
import { mailHeader, mailText, SmtpReceiver } from './smtp-receiver.js';

const A = '/.kanmon/admin';
const FIELD = 'notifications.adminRecipients';

function form(fields: Record<string, string>): { raw: string; contentType: string } {
  return { raw: new URLSearchParams(fields).toString(), contentType: 'application/x-www-form-urlencoded' };
}

function unescapeHtml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x27;/g, "'").replace(/&amp;/g, '&');
}

/** Every field of the settings form as the page shows it (inputs, selects, textareas, hidden fields). */
function settingsForm(page: HttpAnswer): Record<string, string> {
  const start = page.text.indexOf('id="settings-form"');
  expect(start, 'the settings form').toBeGreaterThan(0);
  const html = page.text.slice(start, page.text.indexOf('</form>', start));
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input\b[^>]*>/g)) {
    const name = /\bname="([^"]+)"/.exec(m[0])?.[1];
    if (name) fields[name] = unescapeHtml(/\bvalue="([^"]*)"/.exec(m[0])?.[1] ?? '');
  }
  for (const m of html.matchAll(/<select\b[^>]*name="([^"]+)"[^>]*>([\s\S]*?)<\/select>/g)) fields[m[1]!] = /<option value="([^"]*)" selected/.exec(m[2]!)?.[1] ?? '';
  for (const m of html.matchAll(/<textarea\b[^>]*name="([^"]+)"[^>]*>([\s\S]*?)<\/textarea>/g)) fields[m[1]!] = unescapeHtml(m[2]!);
  return fields;
}

describe('notifications.adminRecipients (config)', () => {
  it('accepts up to 50 plain addresses and refuses injection, lists and malformed entries with one clear error', () => {
    const ok = validateConfig({ notifications: { adminRecipients: ['ops@example.test', 'ops@example.test', 'sec@example.test'] } });
    expect(ok.ok && ok.config.notifications.adminRecipients).toEqual(['ops@example.test', 'sec@example.test']);
    const none = validateConfig({});
    expect(none.ok && none.config.notifications.adminRecipients).toEqual([]);
    for (const bad of [['a@b.c\r\nBcc: x@y.z'], ['Ops <ops@example.test>'], ['a@b.c, x@y.z'], ['not-an-address'], [42], 'ops@example.test', Array.from({ length: 51 }, (_, i) => `u${i}@example.test`), [`${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.test`]]) {
      const r = validateConfig({ notifications: { adminRecipients: bad } });
      expect(r.ok, JSON.stringify(bad)).toBe(false);
      if (!r.ok) expect(r.errors.join('\n')).toMatch(/^notifications: option 'adminRecipients' must be a list of at most 50 plain e-mail addresses/m);
    }
  });
});

describe('administrator notifications by mail', () => {
  let relay: SmtpReceiver;
  let h: KanmonHarness;
  let adminCookie: string;
  let csrf: string;
  let key: SoftAuthenticator;

  beforeAll(async () => {
    relay = await SmtpReceiver.start();
    h = await KanmonHarness.start({
      notifications: { kind: 'log', mail: { host: '127.0.0.1', port: relay.port, security: 'none', from: 'Kanmon <kanmon@example.test>' }, adminRecipients: ['ops@example.test', 'sec@example.test'] },
    });
    // Enrolling the first administrator is itself an administrator notification (admin.created).
    key = softAuthenticatorFor(h);
    ({ cookie: adminCookie } = await h.enrollAdmin(key));
    await relay.waitFor(2);
    csrf = /name="_csrf" value="([^"]+)"/.exec((await h.get(`${A}/settings`, { cookie: adminCookie })).text)![1]!;
    await reauthenticate();
  });

  afterAll(async () => {
    await h?.close();
    await relay?.close();
  });

  async function reauthenticate(): Promise<void> {
    const options = await h.post(`${A}/api/reauth/options`, {}, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } });
    expect(options.status).toBe(200);
    const res = await h.post(`${A}/api/reauth/verify`, { response: key.authenticate(options.json()), returnTo: `${A}/settings` }, { cookie: adminCookie, headers: { 'x-kanmon-csrf': csrf } });
    expect(res.status).toBe(200);
  }

  /** A saved version reaches this node's live config within the propagation bound: probe until a notification goes to exactly `to`. */
  async function untilMailedTo(to: string[]): Promise<void> {
    const until = Date.now() + 10_000;
    for (;;) {
      relay.messages.length = 0;
      await h.app.notifier.notify({ event: 'test.probe', severity: 'info', subject: 'probe', message: 'probe' });
      const got = relay.messages.map((m) => m.to[0]!).sort();
      if (JSON.stringify(got) === JSON.stringify([...to].sort())) return;
      if (Date.now() > until) throw new Error(`notifications still go to ${got.join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('mails every administrator notification to each listed recipient, one message each, besides the log', async () => {
    const created = relay.messages.filter((m) => mailHeader(m.raw, 'Subject')?.includes('new administrator admin'));
    expect(created.map((m) => m.to).sort()).toEqual([['ops@example.test'], ['sec@example.test']]);
    for (const m of created) {
      expect(m.from).toBe('kanmon@example.test');
      expect(mailHeader(m.raw, 'Subject')).toBe('[Kanmon] Kanmon: new administrator admin');
      expect(mailText(m.raw)).toMatch(/Event:\s+admin\.created/);
      // Recipients do not see each other.
      expect(m.raw).not.toMatch(/sec@example\.test[\s\S]*ops@example\.test|ops@example\.test[\s\S]*sec@example\.test/);
    }
    // A lockout notification goes the same way.
    relay.messages.length = 0;
    await h.app.notifier.notify({ event: 'login.lockout', severity: 'warning', subject: 'Kanmon: sign-in locked for user bob', message: 'locked' });
    expect((await relay.waitFor(2)).map((m) => m.to[0]).sort()).toEqual(['ops@example.test', 'sec@example.test']);
  });

  it('applies a saved change of the list to the next notification, without a restart', async () => {
    const current = (await h.app.services.configVersions.current())!;
    const saved = await h.app.services.configVersions.save(
      { ...current.state, notifications: { ...(current.state.notifications ?? {}), adminRecipients: ['oncall@example.test'] } },
      { author: 'test', baseVersion: current.version },
    );
    expect(saved.ok).toBe(true);
    await untilMailedTo(['oncall@example.test']);
    relay.messages.length = 0;
    // A real administrator notification (audited, then notified): only the new list gets it.
    await h.app.services.users.addUser({ username: 'second-admin', isAdmin: true, actor: 'test' });
    const mails = await relay.waitFor(1);
    await h.app.notifier.notify({ event: 'selfcheck.store.failing', severity: 'critical', subject: 'Kanmon: the store is unreachable', message: 'store down' });
    await relay.waitFor(2);
    expect(relay.messages.map((m) => m.to[0])).toEqual(['oncall@example.test', 'oncall@example.test']);
    expect(mailHeader(mails[0]!.raw, 'Subject')).toBe('[Kanmon] Kanmon: new administrator second-admin');
    expect(mailHeader(relay.messages[1]!.raw, 'Subject')).toBe('[Kanmon] Kanmon: the store is unreachable');
  });

  it('edits the list on the settings page, audited with before and after', async () => {
    const page = await h.get(`${A}/settings`, { cookie: adminCookie });
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<textarea id="notifications-adminRecipients" name="notifications.adminRecipients"[^>]*>oncall@example.test<\/textarea>/);
    expect(page.text).not.toMatch(/<textarea id="notifications-adminRecipients"[^>]*readonly/);
    const fields = settingsForm(page);
    const res = await h.post(`${A}/settings`, undefined, { cookie: adminCookie, ...form({ ...fields, _csrf: csrf, [FIELD]: ' ops@example.test \r\nsec@example.test\r\n\r\n' }) });
    expect(res.status, res.text.slice(0, 300)).toBe(303);
    expect(res.headers.location).toBe(`${A}/settings?done=configSaved`);
    expect((await h.app.services.configVersions.effective()).config.notifications.adminRecipients).toEqual(['ops@example.test', 'sec@example.test']);
    const events = await h.app.services.audit.tail({ limit: 20 });
    const change = events.find((e) => e.type.endsWith('settings.save'))!;
    expect(change.actor).toBe('admin');
    expect(change.details).toMatchObject({ before: { [FIELD]: '["oncall@example.test"]' }, after: { [FIELD]: '["ops@example.test","sec@example.test"]' } });
    await untilMailedTo(['ops@example.test', 'sec@example.test']);
  });

  it('refuses header injection, too many and malformed addresses beside the field, and changes nothing', async () => {
    const before = await h.app.services.configVersions.currentVersion();
    const fields = settingsForm(await h.get(`${A}/settings`, { cookie: adminCookie }));
    const hostile = [
      'a@b.c\r\nBcc: x@y.z',
      'a@b.c\nBcc:x@y.z',
      'Ops <ops@example.test>',
      'ops@example.test; rm -rf /',
      '<script>alert(1)</script>@example.test',
      'ops@exa mple.test',
      'ops@example.test\u0000',
      Array.from({ length: 51 }, (_, i) => `u${i}@example.test`).join('\n'),
    ];
    for (const value of hostile) {
      const res = await h.post(`${A}/settings`, undefined, { cookie: adminCookie, ...form({ ...fields, _csrf: csrf, [FIELD]: value }) });
      expect(res.status, JSON.stringify(value)).toBe(400);
      expect(res.text).toMatch(/<p class="field-error" id="notifications-adminRecipients-error" role="alert">notifications: option &#39;adminRecipients&#39;|<p class="field-error" id="notifications-adminRecipients-error" role="alert">notifications: option 'adminRecipients'/);
      expect(res.text).toMatch(/<textarea id="notifications-adminRecipients"[^>]*aria-invalid="true"/);
      expect(res.text).not.toContain('<script>alert(1)');
    }
    // Longer than any 50 addresses could be: refused before it is parsed.
    const huge = await h.post(`${A}/settings`, undefined, { cookie: adminCookie, ...form({ ...fields, _csrf: csrf, [FIELD]: 'a'.repeat(20_000) }) });
    expect(huge.status).toBe(400);
    // The field twice, a harmless value first: the value used is validated like any other.
    const doubled = await h.post(`${A}/settings`, undefined, { cookie: adminCookie, raw: `${new URLSearchParams({ ...fields, _csrf: csrf }).toString()}&${encodeURIComponent(FIELD)}=${encodeURIComponent('a@b.c\r\nBcc: x@y.z')}`, contentType: 'application/x-www-form-urlencoded' });
    expect(doubled.status).toBe(400);
    expect(await h.app.services.configVersions.currentVersion()).toBe(before);
    expect((await h.app.services.configVersions.effective()).config.notifications.adminRecipients).toEqual(['ops@example.test', 'sec@example.test']);
  });

  it('accepts exactly 50 addresses', async () => {
    const fields = settingsForm(await h.get(`${A}/settings`, { cookie: adminCookie }));
    const fifty = Array.from({ length: 50 }, (_, i) => `u${i}@example.test`);
    const res = await h.post(`${A}/settings`, undefined, { cookie: adminCookie, ...form({ ...fields, _csrf: csrf, [FIELD]: fifty.join('\n') }) });
    expect(res.status).toBe(303);
    expect((await h.app.services.configVersions.effective()).config.notifications.adminRecipients).toEqual(fifty);
  });
});

describe('settings page without notifications.mail', () => {
  let h: KanmonHarness;

  afterAll(async () => {
    await h?.close();
  });

  it('says mail is not configured, shows the list read-only and keeps it on save', async () => {
    h = await KanmonHarness.start({ notifications: { kind: 'log', adminRecipients: ['ops@example.test'] } });
    const key = softAuthenticatorFor(h);
    const { cookie } = await h.enrollAdmin(key);
    const page = await h.get(`${A}/settings`, { cookie });
    const options = await h.post(`${A}/api/reauth/options`, {}, { cookie, headers: { 'x-kanmon-csrf': settingsForm(page)._csrf! } });
    expect((await h.post(`${A}/api/reauth/verify`, { response: key.authenticate(options.json()), returnTo: `${A}/settings` }, { cookie, headers: { 'x-kanmon-csrf': settingsForm(page)._csrf! } })).status).toBe(200);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<textarea id="notifications-adminRecipients"[^>]*readonly[^>]*>ops@example.test<\/textarea>/);
    expect(page.text).toContain('Mail is not configured');
    const ja = await h.get(`${A}/settings`, { cookie, headers: { 'accept-language': 'ja' } });
    expect(ja.text).toContain('メールが設定されていない');
    const fields = settingsForm(page);
    const csrf = fields._csrf!;
    const res = await h.post(`${A}/settings`, undefined, { cookie, ...form({ ...fields, _csrf: csrf, [FIELD]: 'attacker@example.test', 'session.idleTimeoutSeconds': '901' }) });
    expect(res.status, res.text.slice(0, 300)).toBe(303);
    const { config } = await h.app.services.configVersions.effective();
    expect(config.session.idleTimeoutSeconds).toBe(901);
    expect(config.notifications.adminRecipients).toEqual(['ops@example.test']);
  });
});
