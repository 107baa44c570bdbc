/**
 * Reads one cookie from a Cookie header without building a map of all of them: this runs
 * on every proxied request. Malformed pairs are skipped, never thrown on.
 */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(';', start);
    if (end === -1) end = text.length;
    const eq = text.indexOf('=', start);
    if (eq !== -1 && eq < end) {
      const key = text.slice(start, eq).trim();
      if (key === name) return text.slice(eq + 1, end).trim();
    }
    start = end + 1;
  }
  return undefined;
}
