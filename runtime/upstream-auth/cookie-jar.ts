/**
 * The server-side cookie jar for one upstream and one Kanmon session: what the upstream sets
 * with Set-Cookie is kept here and sent back on later requests; the browser never sees it.
 *
 * A jar talks to one upstream origin, so cookies are host-only (Domain is not needed to pick
 * them); Path and expiry are honoured as RFC 6265 §5.1.4 and §5.3 describe.
 */
import { isKanmonCookie } from '../proxy/headers.js';

export interface JarCookie {
  readonly name: string;
  readonly value: string;
  readonly path: string;
  /** Epoch ms; absent for a session cookie (lives as long as the jar). */
  readonly expiresAt?: number;
}

/** Bounds, so a hostile upstream cannot grow a jar past what a document holds. */
export const JAR_LIMITS = { maxCookies: 64, maxCookieBytes: 4096 } as const;

/** RFC 6265 §4.1.1 cookie-name is an RFC 7230 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Applies Set-Cookie header values (as received for `requestPath`) to a jar; returns the new jar. */
export function applySetCookies(jar: readonly JarCookie[], setCookies: readonly string[], requestPath: string, now: number): JarCookie[] {
  let out = jar.filter((c) => c.expiresAt === undefined || c.expiresAt > now);
  for (const header of setCookies) {
    const parsed = parseSetCookie(header, requestPath, now);
    if (!parsed) continue;
    out = out.filter((c) => !(c.name === parsed.name && c.path === parsed.path));
    // Max-Age=0 or a past Expires deletes (RFC 6265 §5.3 step 11); nothing is added then.
    if (parsed.expiresAt === undefined || parsed.expiresAt > now) out.push(parsed);
  }
  // Oldest go first when an upstream sets more than a jar holds.
  return out.length > JAR_LIMITS.maxCookies ? out.slice(out.length - JAR_LIMITS.maxCookies) : out;
}

export function parseSetCookie(header: string, requestPath: string, now: number): JarCookie | undefined {
  if (header.length > JAR_LIMITS.maxCookieBytes) return undefined;
  const parts = header.split(';');
  const pair = parts[0]!;
  const eq = pair.indexOf('=');
  if (eq <= 0) return undefined;
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  if (!TOKEN.test(name) || /[\u0000-\u001f\u007f;]/.test(value)) return undefined;
  let path: string | undefined;
  let maxAge: number | undefined;
  let expires: number | undefined;
  for (const attr of parts.slice(1)) {
    const i = attr.indexOf('=');
    const key = (i === -1 ? attr : attr.slice(0, i)).trim().toLowerCase();
    const v = i === -1 ? '' : attr.slice(i + 1).trim();
    if (key === 'path' && v.startsWith('/')) path = v;
    else if (key === 'max-age' && /^-?\d{1,12}$/.test(v)) maxAge = Number(v);
    else if (key === 'expires') {
      const t = Date.parse(v);
      if (Number.isFinite(t)) expires = t;
    }
  }
  // Max-Age wins over Expires (RFC 6265 §5.3 step 3).
  const expiresAt = maxAge !== undefined ? (maxAge <= 0 ? now - 1 : now + maxAge * 1000) : expires;
  return { name, value, path: path ?? defaultPath(requestPath), ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

/** RFC 6265 §5.1.4: the directory of the request path. */
function defaultPath(requestPath: string): string {
  const path = requestPath.split('?')[0]!;
  if (!path.startsWith('/')) return '/';
  const last = path.lastIndexOf('/');
  return last <= 0 ? '/' : path.slice(0, last);
}

/** RFC 6265 §5.1.4 path-match. */
export function pathMatches(requestPath: string, cookiePath: string): boolean {
  const path = requestPath.split('?')[0]!;
  if (path === cookiePath) return true;
  if (!path.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || path[cookiePath.length] === '/';
}

/** The jar's cookies for a request path, longest path first (RFC 6265 §5.4 step 2), as `name=value` pairs. */
export function jarCookiesFor(jar: readonly JarCookie[], requestPath: string, now: number): string[] {
  return jar
    .filter((c) => (c.expiresAt === undefined || c.expiresAt > now) && pathMatches(requestPath, c.path))
    .sort((a, b) => b.path.length - a.path.length)
    .map((c) => `${c.name}=${c.value}`);
}


/**
 * The Cookie header toward the upstream: the browser's own cookies for the app (those its
 * scripts set), without Kanmon's, then the jar's; a jar cookie wins over a browser cookie of
 * the same name, so a browser cannot plant a session id. Undefined when there is nothing to send.
 */
export function upstreamCookieHeader(clientCookie: string | string[] | undefined, jar: readonly JarCookie[], requestPath: string, now: number): string | undefined {
  const fromJar = jarCookiesFor(jar, requestPath, now);
  const jarNames = new Set(fromJar.map((p) => p.slice(0, p.indexOf('='))));
  const out: string[] = [];
  const text = Array.isArray(clientCookie) ? clientCookie.join('; ') : (clientCookie ?? '');
  for (const raw of text.split(';')) {
    const pair = raw.trim();
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    if (isKanmonCookie(name) || jarNames.has(name)) continue;
    out.push(pair);
  }
  out.push(...fromJar);
  return out.length > 0 ? out.join('; ') : undefined;
}

/** Set-Cookie values of a flat header list, and the list without them. */
export function takeSetCookies(headers: readonly string[]): { setCookies: string[]; rest: string[] } | undefined {
  let setCookies: string[] | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length === 10 && headers[i]!.toLowerCase() === 'set-cookie') (setCookies ??= []).push(headers[i + 1]!);
  }
  if (!setCookies) return undefined;
  const rest: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!(headers[i]!.length === 10 && headers[i]!.toLowerCase() === 'set-cookie')) rest.push(headers[i]!, headers[i + 1]!);
  }
  return { setCookies, rest };
}
