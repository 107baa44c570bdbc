import type { RouteConfig } from '../config/schema.js';

/**
 * Route lookup by host and path prefix. Built once from config (and rebuilt on reload);
 * routes with a host win over host-less ones, then the longest prefix wins.
 * A prefix matches at segment boundaries: "/app" matches "/app" and "/app/x", not "/apple".
 */
export class RouteTable<T extends { readonly route: RouteConfig }> {
  private readonly byHost = new Map<string, T[]>();
  private readonly anyHost: T[] = [];

  constructor(entries: readonly T[]) {
    for (const e of entries) {
      const host = e.route.match.host;
      if (host) {
        const list = this.byHost.get(host) ?? [];
        list.push(e);
        this.byHost.set(host, list);
      } else {
        this.anyHost.push(e);
      }
    }
    const longestFirst = (a: T, b: T) => b.route.match.pathPrefix.length - a.route.match.pathPrefix.length;
    for (const list of this.byHost.values()) list.sort(longestFirst);
    this.anyHost.sort(longestFirst);
  }

  /** `host` is the Host header (port and case are ignored); `path` may include a query. */
  match(host: string | undefined, path: string): T | undefined {
    const name = hostName(host);
    const q = path.indexOf('?');
    const p = q === -1 ? path : path.slice(0, q);
    const specific = name ? this.byHost.get(name) : undefined;
    return (specific && find(specific, p)) || find(this.anyHost, p);
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
  return h.toLowerCase();
}
