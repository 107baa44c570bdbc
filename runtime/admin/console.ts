import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PolicyDevice } from '../policy/decide.js';
import type { MessageKey } from '../portal/i18n.js';
import { SERVICE_ERROR_STATUS, type Body, type PortalKit } from '../portal/kit.js';
import { ServiceError } from '../services/errors.js';
import type { ActiveSession } from '../services/sessions.js';
import type { User } from '../store/types.js';
import { adminAccess, adminRoute } from './access.js';
import { CSRF_FIELD, CSRF_HEADER, csrfTokenFor, csrfTokenMatches } from './csrf.js';
import { adminPage, type NavItem } from './layout.js';
import { html, type Html } from '../portal/html.js';
import { messagePage } from '../portal/pages/messages.js';
import type { CheckResult } from '../observability/self-check.js';
import type { NodeHeartbeat } from '../observability/node-heartbeat.js';

export const ADMIN_PREFIX = '/.kanmon/admin';
export const REAUTH_PATH = `${ADMIN_PREFIX}/reauth`;

/** What a console handler gets: the signed-in administrator and their CSRF token. */
export interface AdminRequest {
  readonly active: ActiveSession;
  readonly user: User;
  readonly csrf: string;
}

export interface AdminConsoleDeps {
  /** What the connection's client certificate proves (for `admin.requireMtls`). */
  readonly deviceOf?: (req: FastifyRequest) => Promise<PolicyDevice>;
  /** The node's latest self-check results (store, upstreams, server certificate). */
  readonly health?: () => readonly CheckResult[];
  /** When the server certificate this node serves expires. */
  readonly serverCertificateNotAfter?: () => Date | undefined;
  /** The nodes whose heartbeat is recent. */
  readonly nodes?: () => Promise<readonly NodeHeartbeat[]>;
}

type Handler = (req: FastifyRequest, reply: FastifyReply, a: AdminRequest) => Promise<unknown>;

/** Messages an action may report back on the page it returns to (?done=…). */
export type DoneKey = Extract<MessageKey, `admin.done.${string}`>;

/**
 * The console shell every page module registers through: access (admin role, passkey
 * session, the `admin` policy), CSRF on every POST, a fresh passkey for sensitive actions,
 * audit with before/after, and the page frame with its navigation.
 */
export class AdminConsole {
  readonly nav: NavItem[] = [];
  readonly #route;

  constructor(
    readonly app: FastifyInstance,
    readonly kit: PortalKit,
    readonly deps: AdminConsoleDeps = {},
  ) {
    this.#route = adminRoute(kit.config.admin);
  }

  get services() {
    return this.kit.services;
  }

  get config() {
    return this.kit.config;
  }

  addNav(item: NavItem): void {
    this.nav.push(item);
  }

  /** A GET page. `sensitive` pages (exports) need a fresh passkey assertion first. */
  page(path: string, handler: Handler, opts: { sensitive?: boolean } = {}): void {
    this.app.get(path, async (req, reply) => {
      const a = await this.guard(req, reply);
      if (!a) return reply;
      if (opts.sensitive && !(await this.fresh(req, reply, a, req.url))) return reply;
      return handler(req, reply, a);
    });
  }

  /** A form POST: CSRF checked; `sensitive` ones need a fresh passkey assertion. */
  action(path: string, handler: Handler, opts: { sensitive?: boolean | ((body: Body) => boolean) } = {}): void {
    this.app.post(path, async (req, reply) => {
      const a = await this.guard(req, reply);
      if (!a) return reply;
      const body = this.kit.bodyOf(req);
      if (!(await this.checkCsrf(req, reply, a, body[CSRF_FIELD]))) return reply;
      const sensitive = typeof opts.sensitive === 'function' ? opts.sensitive(body) : opts.sensitive;
      if (sensitive && !(await this.fresh(req, reply, a, backPath(body._back)))) return reply;
      try {
        return await handler(req, reply, a);
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err;
        // A form post gets a console page saying what went wrong, not a JSON answer.
        req.log.info({ code: err.code, detail: err.message }, 'console action refused');
        const status = SERVICE_ERROR_STATUS[err.code];
        const t = req.kanmonT;
        const page = html`<p class="message" id="action-error">${t(`admin.error.${err.code}`)}</p>
<p class="hint">${t('admin.error.detail')}: <code>${err.message.slice(0, 300)}</code></p>
<p><a href="${backPath(body._back)}">${t('admin.back')}</a></p>`;
        return this.html(reply, this.render(req, a, { section: '', title: t('admin.error.title'), body: page }), status);
      }
    });
  }

  /** A JSON POST under /.kanmon/admin/api/: CSRF in a header. */
  api(path: string, handler: Handler): void {
    this.app.post(path, async (req, reply) => {
      const a = await this.guard(req, reply);
      if (!a) return reply;
      if (!(await this.checkCsrf(req, reply, a, req.headers[CSRF_HEADER]))) return reply;
      return handler(req, reply, a);
    });
  }

  /** The signed-in administrator, or undefined after answering (redirect, 401 or 403). */
  async guard(req: FastifyRequest, reply: FastifyReply): Promise<AdminRequest | undefined> {
    const token = this.kit.sessionToken(req);
    const active = await this.kit.sessionOf(req);
    const device = active && this.deps.deviceOf ? await this.deps.deviceOf(req) : {};
    const access = adminAccess(this.#route, active, device, { now: Date.now(), groups: this.config.groups });
    if (access.kind === 'allow' && token && active) return { active, user: active.user, csrf: csrfTokenFor(token) };
    if (access.kind === 'login') {
      if (req.method === 'GET' && !isApi(req)) {
        reply.redirect(`/.kanmon/login?return=${encodeURIComponent(req.url.slice(0, 1024))}`, 302);
        return undefined;
      }
      this.refuse(req, reply, 401, 'signed-out', 'error.forbidden');
      return undefined;
    }
    const decision = access.kind === 'refused' ? access.decision : undefined;
    const reason = !decision ? 'not-admin' : decision.kind === 'step-up' || decision.kind === 'certificate-required' ? `${decision.kind}:${decision.reason}` : decision.kind;
    await this.services.audit.record({
      type: 'admin.access',
      result: 'failure',
      reason,
      context: this.kit.ctxOf(req),
      ...(active ? { userId: active.user.id, username: active.user.username } : {}),
      details: { path: req.url.split('?')[0]!.slice(0, 200), method: req.method },
    });
    const key: MessageKey = !decision ? 'admin.forbidden' : decision.kind === 'certificate-required' ? 'admin.needsCertificate' : 'admin.needsPasskey';
    this.refuse(req, reply, 403, !decision ? 'forbidden' : 'step-up', key);
    return undefined;
  }

  /** A refusal: JSON for the API and fetches, a page for forms and navigation. */
  private refuse(req: FastifyRequest, reply: FastifyReply, status: number, code: string, key: MessageKey): void {
    const json = isApi(req) || String(req.headers['content-type'] ?? '').startsWith('application/json');
    if (req.method === 'GET' || json) {
      this.kit.sendError(reply, req, status, code, key);
      return;
    }
    this.kit.htmlReply(reply, status, messagePage({ ...this.kit.pageBase(req), titleKey: 'error.title', bodyKey: key }));
  }

  private async checkCsrf(req: FastifyRequest, reply: FastifyReply, a: AdminRequest, presented: unknown): Promise<boolean> {
    if (csrfTokenMatches(this.kit.sessionToken(req)!, presented)) return true;
    await this.services.audit.record({
      type: 'admin.csrf',
      result: 'failure',
      reason: presented === undefined ? 'csrf-missing' : 'csrf-mismatch',
      userId: a.user.id,
      username: a.user.username,
      context: this.kit.ctxOf(req),
      details: { path: req.url.split('?')[0]!.slice(0, 200) },
    });
    this.refuse(req, reply, 403, 'csrf', 'admin.csrfFailed');
    return false;
  }

  /** True when the last passkey assertion is fresh; otherwise answers with the re-authentication step. */
  private async fresh(req: FastifyRequest, reply: FastifyReply, a: AdminRequest, back: string): Promise<boolean> {
    if (await this.services.adminReauth.isFresh(a.active.session, this.config.admin.reauthSeconds)) return true;
    await this.services.audit.record({
      type: 'admin.reauth-required',
      result: 'failure',
      reason: 'reauth-required',
      userId: a.user.id,
      username: a.user.username,
      context: this.kit.ctxOf(req),
      details: { path: req.url.split('?')[0]!.slice(0, 200), method: req.method },
    });
    reply.redirect(`${REAUTH_PATH}?return=${encodeURIComponent(back)}`, 303);
    return false;
  }

  /** Renders a console page in the frame. */
  render(req: FastifyRequest, a: AdminRequest, o: { section: string; title: string; body: Html; scripts?: readonly string[] }): string {
    const done = (req.query as Record<string, unknown>).done;
    const notice = typeof done === 'string' && /^[a-zA-Z-]{1,40}$/.test(done) ? (`admin.done.${done}` as MessageKey) : undefined;
    return adminPage({
      ...this.kit.pageBase(req),
      nav: this.nav,
      section: o.section,
      title: o.title,
      body: o.body,
      username: a.user.username,
      csrf: a.csrf,
      ...(notice && this.knownMessage(req, notice) ? { notice } : {}),
      ...(o.scripts ? { scripts: o.scripts } : {}),
    });
  }

  private knownMessage(req: FastifyRequest, key: MessageKey): boolean {
    return req.kanmonT(key) !== key && req.kanmonT(key) !== undefined;
  }

  html(reply: FastifyReply, body: string, status = 200): FastifyReply {
    return this.kit.htmlReply(reply, status, body);
  }

  /** After an action: back to a console page with a notice. */
  done(reply: FastifyReply, path: string, key: string): FastifyReply {
    const sep = path.includes('?') ? '&' : '?';
    return reply.redirect(`${path}${sep}done=${encodeURIComponent(key)}`, 303);
  }

  /**
   * Records a console change with what it was before and after. Services record their own
   * events too; this one names the administrator and keeps both states side by side.
   */
  async recordChange(req: FastifyRequest, a: AdminRequest, o: { type: string; target?: User; before: unknown; after: unknown; details?: Record<string, unknown> }): Promise<void> {
    await this.services.audit.record({
      type: `admin.${o.type}`,
      result: 'success',
      actor: a.user.username,
      context: this.kit.ctxOf(req),
      ...(o.target ? { userId: o.target.id, username: o.target.username } : {}),
      details: { before: o.before ?? null, after: o.after ?? null, ...(o.details ?? {}) },
    });
  }
}

function isApi(req: FastifyRequest): boolean {
  return req.url.startsWith(`${ADMIN_PREFIX}/api/`);
}

/** Where to go back to after re-authenticating: a console path, never anywhere else. */
export function backPath(value: unknown): string {
  if (typeof value !== 'string' || value.length > 1024 || !value.startsWith(`${ADMIN_PREFIX}`) || /[\\\u0000-\u001f\u007f]/.test(value) || value.startsWith('//')) return ADMIN_PREFIX;
  const rest = value.slice(ADMIN_PREFIX.length);
  if (rest !== '' && !rest.startsWith('/') && !rest.startsWith('?')) return ADMIN_PREFIX;
  return value;
}

/** A required text field of a form. */
export function field(body: Body, name: string, max = 256): string {
  const v = body[name];
  if (typeof v !== 'string') throw new ServiceError('invalid-input', `field ${name} is required`);
  if (v.length > max) throw new ServiceError('invalid-input', `field ${name} must be at most ${max} characters`);
  return v;
}

export function optionalField(body: Body, name: string, max = 256): string | undefined {
  const v = body[name];
  if (v === undefined || v === '') return undefined;
  return field(body, name, max);
}

/** One username per line (or separated by commas or spaces), de-duplicated, at most `max`. */
export function usernameList(text: string, max = 5000): string[] {
  const names = [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
  if (names.length === 0) throw new ServiceError('invalid-input', 'give at least one user name');
  if (names.length > max) throw new ServiceError('invalid-input', `at most ${max} users at once`);
  return names;
}
