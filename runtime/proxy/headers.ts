/**
 * Header rules for traffic crossing the gateway, in both directions.
 *
 * Headers travel as flat `[name, value, name, value, …]` lists (the shape of Node's
 * `rawHeaders` and undici's raw headers) so that case, order and repeated headers such as
 * Set-Cookie survive untouched, and so the hot path builds no intermediate objects.
 */

/** What the gateway asserts about the request; the only source of identity for a backend. */
export interface ForwardContext {
  /** The address Kanmon saw on the connection (or the one PROXY protocol v2 carried). */
  readonly clientIp: string;
  /** The Host the client used. */
  readonly publicHost: string;
  /** X-Kanmon-User, -User-Id, -Groups, -Auth, -Jwt, as decided by session and policy. */
  readonly identityHeaders: Readonly<Record<string, string>>;
  readonly requestId: string;
}

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus the de-facto ones: they describe one connection,
 * not the message, so a proxy must not pass them on. `proxy-*` is handled by prefix.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const IDENTITY_PREFIX = 'x-kanmon-';
/** Kanmon is the edge: whatever a client claims about forwarding is spoofed by definition. */
const FORWARDING_PREFIX = 'x-forwarded-';
/**
 * Client-certificate headers that TLS-terminating proxies set for their backends (nginx and
 * Apache ssl-client-* / X-SSL-Client-*, RFC 9440 Client-Cert and Client-Cert-Chain, Envoy's
 * X-Forwarded-Client-Cert, IIS/Azure X-ARR-ClientCert, AWS ALB X-Amzn-Mtls-Clientcert-*).
 * Kanmon reads the certificate only from its own TLS handshake; a client sending these is
 * lying to a backend that might trust them, so they never pass.
 */
const CLIENT_CERT_PREFIXES = ['ssl-client', 'x-ssl-', 'x-client-cert', 'x-client-verify', 'x-client-dn', 'x-client-s-dn', 'x-client-i-dn', 'client-cert', 'x-arr-clientcert', 'x-amzn-mtls-clientcert'];

export interface UpstreamRequestHeaders {
  /** Flat name/value list ready for the upstream request. */
  readonly headers: string[];
  /** Whether the client announced a body (Content-Length > 0 or Transfer-Encoding). */
  readonly hasBody: boolean;
}

export interface UpstreamRequestOptions {
  /** Host header value to send upstream. */
  readonly host: string;
  /** For a WebSocket (or other) upgrade: the Upgrade value to keep, re-announced with Connection: Upgrade. */
  readonly upgrade?: string;
}

/**
 * Builds the headers sent upstream from the client's raw headers:
 * drops hop-by-hop headers (and every header the client's Connection names), every
 * `x-kanmon-*` header, `Forwarded`, `X-Forwarded-*`, `X-Real-IP`, client-certificate headers and `Expect` (the client
 * was already answered 100 Continue by Node), removes Kanmon's own cookies from Cookie, then
 * adds the forwarding headers and the identity headers from the context.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  ctx: ForwardContext,
  opts: UpstreamRequestOptions,
): UpstreamRequestHeaders {
  const listed = connectionListed(rawHeaders);
  const out: string[] = [];
  let hasBody = false;
  let sawLength = false;
  let chunked = false;
  let lengthAt = -1;

  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      // Node refuses conflicting lengths; keep only the first so the upstream sees one.
      if (sawLength) continue;
      sawLength = true;
      if (value.trim() !== '0') hasBody = true;
      lengthAt = out.length;
      out.push(name, value);
      continue;
    }
    if (lower === 'transfer-encoding') {
      chunked = true;
      hasBody = true;
      continue;
    }
    if (isDroppedRequestHeader(lower, listed)) continue;
    if (lower === 'cookie') {
      const kept = withoutKanmonCookies(value);
      if (kept) out.push(name, kept);
      continue;
    }
    out.push(name, value);
  }
  // With Transfer-Encoding present a Content-Length is meaningless (RFC 9112 §6.3) and the body is re-framed.
  if (chunked && lengthAt >= 0) out.splice(lengthAt, 2);

  out.push('host', opts.host);
  if (opts.upgrade !== undefined) out.push('connection', 'Upgrade', 'upgrade', opts.upgrade);
  out.push(
    'x-forwarded-for', ctx.clientIp,
    'x-forwarded-proto', 'https',
    'x-forwarded-host', ctx.publicHost,
    'x-real-ip', ctx.clientIp,
  );
  const identity = ctx.identityHeaders;
  for (const name in identity) out.push(name, identity[name]!);
  return { headers: out, hasBody };
}

function isDroppedRequestHeader(lower: string, listed: Set<string> | undefined): boolean {
  if (HOP_BY_HOP.has(lower)) return true;
  if (listed !== undefined && listed.has(lower)) return true;
  // CGI-style backends (PHP, many nginx setups) read `X-Kanmon_User` as X-Kanmon-User,
  // so the spoofing checks compare names with underscores read as dashes.
  const name = lower.includes('_') ? lower.replace(/_/g, '-') : lower;
  if (name.startsWith(IDENTITY_PREFIX)) return true;
  if (name.startsWith(FORWARDING_PREFIX)) return true;
  if (name.startsWith('proxy-')) return true;
  for (const prefix of CLIENT_CERT_PREFIXES) if (name.startsWith(prefix)) return true;
  return name === 'host' || name === 'forwarded' || name === 'x-real-ip' || name === 'expect';
}

/**
 * Kanmon's own cookies: the session (`__Host-kanmon-session`) and the portal's others
 * (`kanmon-lang`, …). They are Kanmon's alone: a backend has the identity headers and the JWT,
 * and a session cookie that reached a backend (or its logs) could be replayed against Kanmon.
 */
export function isKanmonCookie(name: string): boolean {
  return name.startsWith('__Host-kanmon') || name.startsWith('kanmon-');
}

/** A Cookie header's value without Kanmon's own cookies; '' when none of the client's are left. */
function withoutKanmonCookies(value: string): string {
  // Nearly every request either carries none of Kanmon's cookies or is worth one scan to find out.
  if (!value.includes('kanmon')) return value;
  const kept: string[] = [];
  let removed = false;
  for (const raw of value.split(';')) {
    const pair = raw.trim();
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (isKanmonCookie((eq < 0 ? pair : pair.slice(0, eq)).trim())) removed = true;
    else kept.push(pair);
  }
  // Only a header that lost something is rebuilt: the application's cookies pass byte for byte otherwise.
  return removed ? kept.join('; ') : value;
}

/**
 * Filters an upstream response's raw headers for the client: hop-by-hop headers and those
 * the upstream's Connection names are dropped; everything else, repeats included, passes.
 * Raw values may arrive as Buffers (undici); they are decoded as latin1, byte for byte.
 */
export function downstreamResponseHeaders(rawHeaders: readonly (string | Buffer)[]): string[] {
  const names: string[] = new Array(rawHeaders.length >> 1);
  let listed: Set<string> | undefined;
  for (let i = 0, n = 0; i < rawHeaders.length; i += 2, n++) {
    const name = asText(rawHeaders[i]!);
    names[n] = name;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      listed = addTokens(listed, asText(rawHeaders[i + 1]!));
    }
  }
  const out: string[] = [];
  for (let i = 0, n = 0; i < rawHeaders.length; i += 2, n++) {
    const name = names[n]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-')) continue;
    if (listed !== undefined && listed.has(lower)) continue;
    out.push(name, asText(rawHeaders[i + 1]!));
  }
  return out;
}

/**
 * Headers of an upstream's 101 answer to pass back to the client: the same filter as any
 * response, with Connection and Upgrade restored because they are the handshake itself.
 */
export function downstreamUpgradeHeaders(rawHeaders: readonly (string | Buffer)[], upgrade: string): string[] {
  return [...downstreamResponseHeaders(rawHeaders), 'Connection', 'Upgrade', 'Upgrade', upgrade];
}

/** The lower-cased header names listed in any Connection header (RFC 9110 §7.6.1). */
function connectionListed(rawHeaders: readonly string[]): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') listed = addTokens(listed, rawHeaders[i + 1]!);
  }
  return listed;
}

function addTokens(into: Set<string> | undefined, value: string): Set<string> | undefined {
  // Nearly every message says just "keep-alive" or "close": nothing to collect, no Set to build.
  if (value.length <= 10) {
    const lower = value.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close') return into;
  }
  const set = into ?? new Set<string>();
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t) set.add(t);
  }
  return set;
}

function asText(v: string | Buffer): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}

/** Serialises a status line and flat header list as an HTTP/1.1 response head. */
export function responseHead(statusCode: number, statusMessage: string, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}
