/**
 * The two directions of a route's URL space: the request target the client sent becomes the
 * upstream's (strip, then add a prefix), and the URLs the upstream writes (its own origin, any
 * listed internal URL, or a root-relative path under the added prefix) become public ones.
 */
import type { RewritePathConfig } from '../config/rewrite.js';

export interface UrlMapping {
  /** Client target (path and query) → upstream target. */
  toUpstream(target: string): string;
  /** A root-relative path the upstream wrote → the public path, or undefined when it lies outside the mapped prefix. */
  publicPath(path: string): string | undefined;
  /**
   * An internal URL → the public one, given the public origin; undefined when the URL is not
   * internal (relative, or another site). Root-relative URLs are mapped only when path rules exist.
   */
  publicUrl(url: string, publicOrigin: string): string | undefined;
  /** Whether root-relative paths need mapping at all (a path rule or an upstream base path exists). */
  readonly mapsPaths: boolean;
}

interface InternalBase {
  /** Lower-cased `scheme://host[:port]` forms that name this base (with and without the default port). */
  readonly origins: readonly string[];
  /** Scheme-relative forms, `//host[:port]`. */
  readonly schemeRelative: readonly string[];
  /** The path under which the upstream's URL space starts ('' for the root). */
  readonly basePath: string;
}

export function createUrlMapping(upstreamUrl: string, internalUrls: readonly string[], path: RewritePathConfig): UrlMapping {
  const strip = path.stripPrefix ?? '';
  const add = path.addPrefix ?? '';
  const bases = [upstreamUrl, ...internalUrls].flatMap((u) => {
    const base = internalBase(u);
    return base ? [base] : [];
  });
  const upstreamBase = bases[0]?.basePath ?? '';
  const mapsPaths = strip !== '' || add !== '' || upstreamBase !== '';

  function toUpstream(target: string): string {
    if (!strip && !add) return target;
    let path = target;
    if (strip && hasPrefix(path, strip)) {
      path = path.slice(strip.length);
      if (path === '' || path[0] === '?' || path[0] === '#') path = `/${path}`;
    }
    if (add) path = add + path;
    return path;
  }

  function publicPathUnder(path: string, internalPrefix: string): string | undefined {
    if (!internalPrefix) return strip ? strip + path : path;
    if (!hasPrefix(path, internalPrefix)) return undefined;
    const rest = path.slice(internalPrefix.length);
    if (rest === '' || rest[0] === '?' || rest[0] === '#') return (strip || '/') + rest;
    return strip + rest;
  }

  function publicPath(path: string): string | undefined {
    return publicPathUnder(path, upstreamBase + add);
  }

  function publicUrl(url: string, publicOrigin: string): string | undefined {
    const lower = url.slice(0, 300).toLowerCase();
    for (const base of bases) {
      for (const origin of base.origins) {
        if (lower.startsWith(origin) && isBoundary(url, origin.length)) {
          const rest = url.slice(origin.length);
          const mapped = publicPathUnder(rest === '' ? '/' : rest, base.basePath + add);
          return mapped === undefined ? undefined : publicOrigin + mapped;
        }
      }
      for (const origin of base.schemeRelative) {
        if (lower.startsWith(origin) && isBoundary(url, origin.length)) {
          const rest = url.slice(origin.length);
          const mapped = publicPathUnder(rest === '' ? '/' : rest, base.basePath + add);
          return mapped === undefined ? undefined : publicOrigin.slice(publicOrigin.indexOf('//')) + mapped;
        }
      }
    }
    if (mapsPaths && url[0] === '/' && url[1] !== '/' && url[1] !== '\\') {
      const mapped = publicPath(url);
      return mapped === undefined || mapped === url ? undefined : mapped;
    }
    return undefined;
  }

  return { toUpstream, publicPath, publicUrl, mapsPaths };
}

/** `prefix` starts `path` and ends at a segment boundary. */
function hasPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  const next = path.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */ || next === 35; /* # */
}

function isBoundary(url: string, at: number): boolean {
  const next = url[at];
  return next === undefined || next === '/' || next === '?' || next === '#';
}

function internalBase(url: string): InternalBase | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const scheme = u.protocol;
  const host = u.hostname.toLowerCase();
  const defaultPort = scheme === 'https:' ? '443' : '80';
  const port = u.port || defaultPort;
  const hosts = port === defaultPort ? [host, `${host}:${port}`] : [`${host}:${port}`];
  return {
    origins: hosts.map((h) => `${scheme}//${h}`),
    schemeRelative: hosts.map((h) => `//${h}`),
    basePath: u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, ''),
  };
}
