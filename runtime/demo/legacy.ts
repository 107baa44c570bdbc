/**
 * The demo groupware's legacy area, under /legacy/: an old-style application with its own
 * login that knows nothing of Kanmon, the reference case for upstream sign-in.
 *
 * - /legacy/login: a cookie login form with a CSRF token bound to a pre-login cookie; a wrong
 *   password shows the form again (as most legacy apps do, with 200).
 * - everything else under /legacy/ needs its session cookie and redirects to the login page
 *   without it; /legacy/ shows who is signed in and how many pages this session has served.
 * - /legacy/notes: a form post inside the session.
 * - /legacy/logout: ends the session.
 * - /legacy/basic/: HTTP Basic authentication instead.
 *
 * Every user name is accepted with the demo password (`legacy-demo` unless set otherwise).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFormBody } from './form-body.js';

export const LEGACY_DEMO_PASSWORD = 'legacy-demo';
const SESSION_COOKIE = 'LEGACYSESSID';
const PRE_COOKIE = 'legacy_pre';
const BODY_LIMIT = 16 * 1024;
const MAX_SESSIONS = 10_000;

export interface LegacyAreaOptions {
  /** The password every user name signs in with. @default "legacy-demo" */
  readonly password?: string;
}

/** What tests (and the curious) can read about the legacy area. */
export interface LegacyStats {
  /** Successful form sign-ins so far. */
  readonly signIns: number;
  /** Refused form sign-ins (wrong password) so far. */
  readonly refusedSignIns: number;
  /** Form posts refused for a missing or wrong CSRF token. */
  readonly csrfRefusals: number;
  /** Sessions ended by /legacy/logout. */
  readonly logouts: number;
}

interface LegacySession {
  readonly username: string;
  views: number;
  readonly notes: string[];
}

export class LegacyArea {
  readonly #password: string;
  readonly #sessions = new Map<string, LegacySession>();
  /** Pre-login cookie → CSRF token of the form it was shown with. */
  readonly #pending = new Map<string, string>();
  readonly #stats = { signIns: 0, refusedSignIns: 0, csrfRefusals: 0, logouts: 0 };

  constructor(opts: LegacyAreaOptions = {}) {
    this.#password = opts.password ?? LEGACY_DEMO_PASSWORD;
  }

  /** Ends every session, as a restart of a legacy app (or its session timeout) would. */
  endAllSessions(): void {
    this.#sessions.clear();
  }

  get stats(): LegacyStats {
    return { ...this.#stats };
  }

  /** Answers a request under /legacy; returns false for paths outside it. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path !== '/legacy' && !path.startsWith('/legacy/')) return false;
    const method = req.method ?? 'GET';
    if (path === '/legacy') return redirect(res, '/legacy/'), true;
    if (path === '/legacy/login') {
      if (method === 'POST') this.#signIn(req, res);
      else this.#loginPage(req, res, undefined);
      return true;
    }
    if (path === '/legacy/logout') {
      const sid = cookieOf(req, SESSION_COOKIE);
      if (sid && this.#sessions.delete(sid)) this.#stats.logouts++;
      drain(req);
      res.setHeader('set-cookie', `${SESSION_COOKIE}=; Path=/legacy; HttpOnly; Max-Age=0`);
      return redirect(res, '/legacy/login'), true;
    }
    if (path === '/legacy/basic' || path.startsWith('/legacy/basic/')) return this.#basic(req, res), true;

    const sid = cookieOf(req, SESSION_COOKIE);
    const session = sid ? this.#sessions.get(sid) : undefined;
    if (!session) {
      drain(req);
      return redirect(res, `/legacy/login?next=${encodeURIComponent(req.url ?? '/legacy/')}`), true;
    }
    session.views++;
    if (path === '/legacy/') {
      page(
        res,
        'Legacy app',
        `<p>Signed in to the legacy app as <strong id="legacy-user">${esc(session.username)}</strong> / レガシーアプリにサインイン中</p>
<p>Session <code id="legacy-session">${esc(sid!.slice(0, 8))}</code>; pages served in this session: <span id="legacy-views">${session.views}</span></p>
<ul>
  <li><a href="notes">Notes</a> — a form post inside the session</li>
  <li><a href="basic/">HTTP Basic page</a></li>
  <li><a id="legacy-logout" href="logout">Sign out of the legacy app</a></li>
</ul>`,
      );
      return true;
    }
    if (path === '/legacy/notes') {
      if (method === 'POST') {
        readForm(req, res, (fields) => {
          const text = (fields.get('note') ?? '').slice(0, 500);
          if (text) session.notes.push(text);
          this.#notesPage(res, session);
        });
      } else this.#notesPage(res, session);
      return true;
    }
    drain(req);
    send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n');
    return true;
  }

  #loginPage(req: IncomingMessage, res: ServerResponse, error: string | undefined, status = 200): void {
    drain(req);
    let pre = cookieOf(req, PRE_COOKIE);
    if (!pre || !this.#pending.has(pre)) {
      pre = randomBytes(16).toString('hex');
      res.setHeader('set-cookie', `${PRE_COOKIE}=${pre}; Path=/legacy; HttpOnly`);
    }
    const token = randomBytes(16).toString('hex');
    bounded(this.#pending, pre, token);
    const next = safeNext(new URL(req.url ?? '/', 'http://legacy.invalid').searchParams.get('next'));
    page(
      res,
      'Legacy app sign-in',
      `${error ? `<p class="warn" id="legacy-error">${esc(error)}</p>` : ''}
<form method="post" action="/legacy/login">
  <input type="hidden" name="csrf_token" value="${token}">
  <input type="hidden" name="next" value="${esc(next)}">
  <label>User name / ユーザー名 <input name="username" autocomplete="username"></label>
  <label>Password / パスワード <input type="password" name="password" autocomplete="current-password"></label>
  <button type="submit" name="action" value="login">Sign in / サインイン</button>
</form>`,
      status,
    );
  }

  #signIn(req: IncomingMessage, res: ServerResponse): void {
    readForm(req, res, (fields) => {
      const pre = cookieOf(req, PRE_COOKIE);
      const expected = pre ? this.#pending.get(pre) : undefined;
      if (!expected || !same(fields.get('csrf_token') ?? '', expected)) {
        this.#stats.csrfRefusals++;
        return send(res, 403, 'text/plain; charset=utf-8', 'Forbidden: the form token is missing or wrong\n');
      }
      this.#pending.delete(pre!);
      const username = (fields.get('username') ?? '').trim().slice(0, 128);
      if (!username || !same(fields.get('password') ?? '', this.#password)) {
        this.#stats.refusedSignIns++;
        return this.#loginPage(req, res, 'Wrong user name or password. / ユーザー名またはパスワードが違います。');
      }
      this.#stats.signIns++;
      const sid = randomBytes(24).toString('hex');
      bounded(this.#sessions, sid, { username, views: 0, notes: [] });
      res.setHeader('set-cookie', `${SESSION_COOKIE}=${sid}; Path=/legacy; HttpOnly`);
      redirect(res, safeNext(fields.get('next') ?? null), 303);
    });
  }

  #basic(req: IncomingMessage, res: ServerResponse): void {
    drain(req);
    const header = req.headers.authorization ?? '';
    const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header);
    const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const username = colon > 0 ? decoded.slice(0, colon) : '';
    if (!username || !same(decoded.slice(colon + 1), this.#password)) {
      res.setHeader('www-authenticate', 'Basic realm="Legacy demo", charset="UTF-8"');
      return send(res, 401, 'text/plain; charset=utf-8', 'Unauthorized\n');
    }
    page(res, 'Legacy Basic page', `<p>HTTP Basic user: <strong id="basic-user">${esc(username)}</strong></p>`);
  }

  #notesPage(res: ServerResponse, session: LegacySession): void {
    page(
      res,
      'Legacy notes',
      `<ol id="legacy-notes">${session.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ol>
<form method="post" action="notes">
  <label>Note / メモ <input name="note" maxlength="500"></label>
  <button type="submit">Add / 追加</button>
</form>
<p><a href="./">Back</a></p>`,
    );
  }
}

function safeNext(next: string | null): string {
  return next && next.startsWith('/legacy/') && !next.includes('\\') && !/[\u0000-\u001f]/.test(next) ? next : '/legacy/';
}

function readForm(req: IncomingMessage, res: ServerResponse, then: (fields: URLSearchParams) => void): void {
  readFormBody(req, res, BODY_LIMIT, () => send(res, 413, 'text/plain; charset=utf-8', 'Form too large\n'), then);
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function bounded<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MAX_SESSIONS) map.delete(map.keys().next().value!);
  map.set(key, value);
}

function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}

function redirect(res: ServerResponse, location: string, status = 302): void {
  res.writeHead(status, { location, 'content-length': 0, 'cache-control': 'no-store' });
  res.end();
}

function send(res: ServerResponse, status: number, type: string, text: string): void {
  if (res.headersSent) return;
  const body = Buffer.from(text);
  res.writeHead(status, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function page(res: ServerResponse, title: string, body: string, status = 200): void {
  send(
    res,
    status,
    'text/html; charset=utf-8',
    `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)} — Demo groupware</title><link rel="stylesheet" href="/style.css"></head>
<body>
<header><a href="/legacy/">Legacy area / レガシー領域</a></header>
<main>
<h1>${esc(title)}</h1>
${body}
</main>
</body>
</html>
`,
  );
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
