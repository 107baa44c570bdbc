/**
 * The only places login may send the user back to: a path on this same origin. Anything
 * else (absolute URLs, protocol-relative `//host`, backslash tricks, control characters,
 * over-long values) becomes "/", so `return` can never be an open redirect.
 */
export function safeReturnPath(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return '/';
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return '/';
  // Browsers treat "\" as "/" and strip tab/newline inside URLs, so either could smuggle "//".
  if (/[\\\u0000-\u001f\u007f]/.test(value)) return '/';
  const base = 'https://kanmon.invalid';
  let url: URL;
  try {
    url = new URL(value, base);
  } catch {
    return '/';
  }
  if (url.origin !== base) return '/';
  return `${url.pathname}${url.search}${url.hash}`;
}
