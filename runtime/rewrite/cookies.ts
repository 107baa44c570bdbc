/**
 * Set-Cookie from an upstream, made right for the public host: the Domain attribute
 * rewritten (an internal `.corp.local` means nothing to the browser, which would drop the
 * cookie), the Path mapped through the route's path rules, Secure always (Kanmon serves
 * only HTTPS), and SameSite set when the upstream gave none (RFC 6265bis §5.6).
 */
import type { RewriteCookiesConfig } from '../config/rewrite.js';

export function rewriteSetCookie(value: string, cookies: RewriteCookiesConfig, publicPath: (path: string) => string | undefined): string {
  const parts = value.split(';');
  const pair = parts[0]!;
  const cookieName = pair.slice(0, Math.max(0, pair.indexOf('='))).trim();
  // __Host- cookies must have no Domain and Path=/ (RFC 6265bis §4.1.3.2): never give them either.
  const hostPrefixed = cookieName.startsWith('__Host-');
  const out = [pair];
  let secure = false;
  let sameSite = false;
  for (let i = 1; i < parts.length; i++) {
    const attr = parts[i]!;
    const eq = attr.indexOf('=');
    const name = (eq < 0 ? attr : attr.slice(0, eq)).trim().toLowerCase();
    const attrValue = eq < 0 ? '' : attr.slice(eq + 1).trim();
    if (name === 'domain') {
      if (cookies.domain !== 'host-only' && !hostPrefixed) out.push(` Domain=${cookies.domain}`);
      continue;
    }
    if (name === 'path' && !hostPrefixed && attrValue.startsWith('/')) {
      const mapped = publicPath(attrValue);
      out.push(` Path=${mapped ?? attrValue}`);
      continue;
    }
    if (name === 'secure') secure = true;
    if (name === 'samesite' && attrValue !== '') sameSite = true;
    if (name === '') continue;
    out.push(attr);
  }
  if (!secure) out.push(' Secure');
  if (!sameSite) out.push(` SameSite=${cookies.sameSite}`);
  return out.join(';');
}
