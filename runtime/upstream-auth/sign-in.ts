/**
 * Signing in to an upstream's own login form, server-side, the way a browser would: fetch the
 * login page with the jar, read its form (CSRF token and hidden fields included), post it with
 * the user's upstream credentials, keep every cookie the upstream sets, and tell from the answer
 * whether it worked. Also the upstream logout at Kanmon sign-out.
 *
 * Credentials are only ever posted to the upstream's own origin: a form whose action points
 * elsewhere is refused, never followed.
 */
import { Pool, type Dispatcher } from 'undici';
import type { FormLoginConfig } from '../config/upstream-auth.js';
import { applySetCookies, jarCookiesFor, type JarCookie } from './cookie-jar.js';
import { findLoginForm, showsLoginForm } from './login-form.js';

/** Largest login page or answer read; a login page is small, and a larger one is not read past this. */
export const SIGN_IN_PAGE_LIMIT = 512 * 1024;
const MAX_REDIRECTS = 3;
/** How long the upstream logout at Kanmon sign-out may take: a slow upstream must not hold the user's sign-out. */
export const SIGN_OUT_TIMEOUT_MS = 5000;

/** How Kanmon reaches one route's upstream for its own sign-in requests. */
export interface SignInClient {
  /** `http(s)://host:port` of the upstream. */
  readonly origin: string;
  readonly dispatcher: Dispatcher;
  /** Host header to send (the public host when the route preserves Host); undefined: the upstream's own. */
  readonly hostHeader?: string;
  /** Extra headers for every sign-in request (forwarding and identity headers), flat list. */
  readonly extraHeaders: readonly string[];
}

export interface SignInClientOptions {
  readonly upstream: string;
  /** TLS connect options for an https upstream (ca, servername, cert, key, rejectUnauthorized). */
  readonly tls?: Readonly<Record<string, unknown>>;
  readonly connectTimeoutMs?: number;
  readonly responseTimeoutMs?: number;
}

/** A small pool of its own, so sign-ins never wait behind the route's proxied traffic. */
export function createSignInDispatcher(opts: SignInClientOptions): Dispatcher {
  const u = new URL(opts.upstream);
  return new Pool(u.origin, {
    connections: 8,
    headersTimeout: opts.responseTimeoutMs || 30_000,
    bodyTimeout: opts.responseTimeoutMs || 30_000,
    connect: { timeout: opts.connectTimeoutMs ?? 10_000, ...(u.protocol === 'https:' ? opts.tls : {}) },
  });
}

export type SignInOutcome =
  /** Signed in: the jar holds the upstream's session. */
  | { readonly kind: 'signed-in'; readonly jar: JarCookie[] }
  /** The upstream refused the credentials. */
  | { readonly kind: 'rejected'; readonly jar: JarCookie[]; readonly detail: string }
  /** The upstream could not be signed in to for another reason (down, no usable form, an answer Kanmon cannot read). */
  | { readonly kind: 'failed'; readonly jar: JarCookie[]; readonly detail: string };

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The path (and query) that was requested. */
  readonly path: string;
}

/** Signs in with a username and password; `jar` is the current jar (its cookies go along). */
export async function signInWithForm(
  client: SignInClient,
  config: FormLoginConfig,
  credentials: { readonly username: string; readonly password: string },
  jar: readonly JarCookie[],
  now: () => number,
): Promise<SignInOutcome> {
  let cookies = [...jar];
  const send = async (method: 'GET' | 'POST', path: string, body?: string, referer?: string): Promise<Answer> => {
    const answer = await exchange(client, method, path, cookies, now(), body, referer);
    cookies = applySetCookies(cookies, setCookiesOf(answer.headers), path, now());
    return answer;
  };
  try {
    // 1. The login page, following redirects on the upstream's own origin (many apps bounce once to set a cookie).
    let page = await send('GET', config.loginUrl);
    for (let i = 0; i < MAX_REDIRECTS && isRedirect(page.status); i++) {
      const next = sameOriginPath(client.origin, page.path, page.headers.location);
      if (!next) return { kind: 'failed', jar: cookies, detail: 'the login page redirects to another host' };
      page = await send('GET', next);
    }
    if (page.status >= 500) return { kind: 'failed', jar: cookies, detail: `the login page answered ${page.status}` };

    // 2. The form: its action on the same origin, its fields, then ours.
    const form = findLoginForm(page.body, config.passwordField);
    const action = form ? sameOriginPath(client.origin, page.path, form.action || page.path) : page.path;
    if (!action) return { kind: 'failed', jar: cookies, detail: 'the login form posts to another host; credentials are not sent there' };
    const fields = new Map<string, string>();
    const extra: Array<[string, string]> = [];
    for (const [name, value] of form?.fields ?? []) {
      if (!fields.has(name)) fields.set(name, value);
      else extra.push([name, value]);
    }
    for (const [name, value] of Object.entries(config.extraFields)) fields.set(name, value);
    fields.set(config.usernameField, credentials.username);
    fields.set(config.passwordField, credentials.password);
    const body = new URLSearchParams([...fields, ...extra]).toString();

    // 3. Post it and judge the answer.
    const posted = await send('POST', action, body, page.path);
    return await judge(client, config, posted, () => cookies, send);
  } catch (err) {
    return { kind: 'failed', jar: cookies, detail: `the upstream could not be reached: ${(err as Error).message}` };
  }
}

async function judge(
  client: SignInClient,
  config: FormLoginConfig,
  posted: Answer,
  jarNow: () => JarCookie[],
  send: (method: 'GET' | 'POST', path: string) => Promise<Answer>,
): Promise<SignInOutcome> {
  if (posted.status >= 500) return { kind: 'failed', jar: jarNow(), detail: `the login form answered ${posted.status}` };
  if (isRedirect(posted.status) && redirectsToLogin(client.origin, posted.path, posted.headers.location, config.loginUrl)) {
    return { kind: 'rejected', jar: jarNow(), detail: 'the upstream sent the login page again' };
  }
  if (config.detect.statuses.includes(posted.status) || posted.status === 401 || posted.status === 403) {
    return { kind: 'rejected', jar: jarNow(), detail: `the login form answered ${posted.status}` };
  }
  // The page after sign-in, where the upstream sends the browser on its own origin: only
  // needed to look for a success marker (redirects elsewhere are not followed).
  let landing = posted;
  if (config.success.bodyMarker !== undefined) {
    for (let i = 0; i < MAX_REDIRECTS && isRedirect(landing.status); i++) {
      const next = sameOriginPath(client.origin, landing.path, landing.headers.location);
      if (!next) break;
      landing = await send('GET', next);
    }
  }
  if (config.success.cookie !== undefined && !jarNow().some((c) => c.name === config.success.cookie)) {
    return { kind: 'rejected', jar: jarNow(), detail: `the upstream did not set the ${config.success.cookie} cookie` };
  }
  if (config.success.bodyMarker !== undefined) {
    return landing.body.includes(config.success.bodyMarker)
      ? { kind: 'signed-in', jar: jarNow() }
      : { kind: 'rejected', jar: jarNow(), detail: 'the page after sign-in does not show the success marker' };
  }
  if (config.success.cookie !== undefined) return { kind: 'signed-in', jar: jarNow() };
  if (!isRedirect(landing.status) && (showsLoginForm(landing.body, config.passwordField) || (config.detect.bodyMarker !== undefined && landing.body.includes(config.detect.bodyMarker)))) {
    return { kind: 'rejected', jar: jarNow(), detail: 'the upstream showed its login form again' };
  }
  return { kind: 'signed-in', jar: jarNow() };
}

/** Requests the upstream's logout URL with the jar; the answer does not matter. */
export async function signOutOfUpstream(client: SignInClient, config: FormLoginConfig, jar: readonly JarCookie[], now: number): Promise<number | undefined> {
  if (!config.logoutUrl) return undefined;
  try {
    const answer = await exchange(client, config.logoutMethod, config.logoutUrl, jar, now, config.logoutMethod === 'POST' ? '' : undefined, undefined, SIGN_OUT_TIMEOUT_MS);
    return answer.status;
  } catch {
    return undefined;
  }
}

async function exchange(client: SignInClient, method: 'GET' | 'POST', path: string, jar: readonly JarCookie[], now: number, body?: string, referer?: string, timeoutMs?: number): Promise<Answer> {
  const headers: string[] = [...client.extraHeaders];
  if (client.hostHeader) headers.push('host', client.hostHeader);
  headers.push('accept', 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8', 'accept-encoding', 'identity', 'user-agent', 'Kanmon upstream sign-in');
  const cookie = jarCookiesFor(jar, path, now);
  if (cookie.length > 0) headers.push('cookie', cookie.join('; '));
  if (body !== undefined) headers.push('content-type', 'application/x-www-form-urlencoded');
  if (referer !== undefined) headers.push('referer', new URL(referer, client.origin).href, 'origin', client.origin);
  const res = await client.dispatcher.request({
    origin: client.origin,
    path,
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(timeoutMs !== undefined ? { headersTimeout: timeoutMs, bodyTimeout: timeoutMs } : {}),
  });
  let text = '';
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > SIGN_IN_PAGE_LIMIT) {
      res.body.destroy();
      break;
    }
    text += chunk.toString('utf8');
  }
  return { status: res.statusCode, headers: res.headers as Answer['headers'], body: text, path };
}

function setCookiesOf(headers: Answer['headers']): string[] {
  const v = headers['set-cookie'];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** The path and query of `location` (resolved against `fromPath`) when it stays on the upstream's origin. */
export function sameOriginPath(origin: string, fromPath: string, location: string | string[] | undefined): string | undefined {
  if (typeof location !== 'string') return undefined;
  try {
    const u = new URL(location, new URL(fromPath, origin));
    if (u.origin !== new URL(origin).origin) return undefined;
    return `${u.pathname}${u.search}`;
  } catch {
    return undefined;
  }
}

/**
 * Whether a redirect goes to the login page. Compared by path alone: the upstream may name
 * itself by an internal host name Kanmon does not know, and the login path is what matters.
 */
export function redirectsToLogin(origin: string, fromPath: string, location: string | string[] | undefined, loginUrl: string): boolean {
  if (typeof location !== 'string') return false;
  try {
    const base = new URL(fromPath, origin);
    return new URL(location, base).pathname === new URL(loginUrl, base).pathname;
  } catch {
    return false;
  }
}
