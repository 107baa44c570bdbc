import { isWildcardHost, type RouteConfig } from '../config/routes.js';

/**
 * Route lookup by host and path prefix. Built once from config (and rebuilt on reload).
 *
 * Hosts are tried from the most to the least specific: the exact host name, then wildcards
 * (`*.example.com` matches any name below example.com) with the longest suffix first, then
 * routes without a host. Within each, the longest path prefix wins. A host's routes that
 * cover no prefix of the path fall through to the next, less specific, host.
 * A prefix matches at segment boundaries: "/app" matches "/app" and "/app/x", not "/apple".
 */
export class RouteTable<T extends { readonly route: RouteConfig }> {
  private readonly byHost = new Map<string, T[]>();
  /** Keyed by the suffix with its leading dot (".example.com"). */
  private readonly byWildcard = new Map<string, T[]>();
  private readonly anyHost: T[] = [];

  constructor(entries: readonly T[]) {
    for (const e of entries) {
      const host = e.route.match.host;
      if (!host) {
        this.anyHost.push(e);
        continue;
      }
      const [map, key] = isWildcardHost(host) ? [this.byWildcard, host.slice(1)] : [this.byHost, host];
      const list = map.get(key) ?? [];
      list.push(e);
      map.set(key, list);
    }
    const longestFirst = (a: T, b: T) => b.route.match.pathPrefix.length - a.route.match.pathPrefix.length;
    for (const list of this.byHost.values()) list.sort(longestFirst);
    for (const list of this.byWildcard.values()) list.sort(longestFirst);
    this.anyHost.sort(longestFirst);
  }

  /** `host` is the Host header (port and case are ignored); `path` may include a query. */
  match(host: string | undefined, path: string): T | undefined {
    const name = hostName(host);
    const q = path.indexOf('?');
    const p = q === -1 ? path : path.slice(0, q);
    const specific = name ? this.byHost.get(name) : undefined;
    const exact = specific && find(specific, p);
    if (exact) return exact;
    // Configurations without wildcards pay nothing for them.
    if (name && this.byWildcard.size > 0) {
      // Each dot starts a candidate suffix, the longest (most specific) first.
      for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
        const list = this.byWildcard.get(name.slice(dot));
        const hit = list && find(list, p);
        if (hit) return hit;
      }
    }
    return find(this.anyHost, p);
  }
}

function find<T extends { readonly route: RouteConfig }>(list: readonly T[], path: string): T | undefined {
  for (const e of list) if (prefixMatches(e.route.match.pathPrefix, path)) return e;
  return undefined;
}

export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/' || path === prefix) return true;
  if (!path.startsWith(prefix)) return false;
  return prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47; /* '/' */
}

function hostName(host: string | undefined): string | undefined {
  if (!host) return undefined;
  let h = host;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  // A fully qualified name with its root dot ("app.example.com.") names the same host.
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}
