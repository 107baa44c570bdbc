/**
 * The `routes` section: matching, upstream, policy and per-route forwarding options.
 */
import { validateRewrite, type RewriteConfig } from './rewrite.js';
import { validateUpstreamAuth, type UpstreamAuthConfig } from './upstream-auth.js';
import { GROUP_OR_USER, HOST_NAME, ROUTE_ID, asSection, bool, int, optStr, rejectUnknown, show, str, strList, upstreamProblem } from './readers.js';

/** A factor a route may demand. `mtls` is a valid client certificate from Kanmon's CA, seen in this connection's TLS handshake. */
export type Factor = 'passkey' | 'otp' | 'recovery' | 'mtls';
export const FACTORS: readonly Factor[] = ['passkey', 'otp', 'recovery', 'mtls'];

export interface RoutePolicyConfig {
  /** Alternatives of factor combinations, e.g. [["passkey"], ["otp","mtls"]]. @default [["passkey"]] */
  readonly factors: readonly (readonly Factor[])[];
  /** Usernames allowed; empty with empty groups means every signed-in user. @default [] */
  readonly allowUsers: readonly string[];
  /** Groups allowed. @default [] */
  readonly allowGroups: readonly string[];
  /** Passkeys must be device-bound (backup-eligible flag 0): a security key, not a synced passkey. @default false */
  readonly deviceBound: boolean;
  /**
   * Only these authenticator models (AAGUIDs), proven by a verified attestation; registration
   * for this route requests `direct` attestation. @default [] (any model)
   */
  readonly aaguidAllowlist: readonly string[];
  /** Tightens session.idleTimeoutSeconds for this route. @default the global value */
  readonly idleTimeoutSeconds?: number;
  /** Tightens session.absoluteTimeoutSeconds for this route (since sign-in). @default the global value */
  readonly absoluteTimeoutSeconds?: number;
}

export interface RouteConfig {
  /** Stable identifier; the JWT audience. */
  readonly id: string;
  readonly match: {
    /** Exact host name; absent matches every host. */
    readonly host?: string;
    /** Path prefix. @default "/" */
    readonly pathPrefix: string;
  };
  /** `http(s)://host:port` or the literal `demo` for the bundled demo groupware. */
  readonly upstream: string;
  readonly policy: RoutePolicyConfig;
  /** Send the client's Host header upstream instead of the upstream's own. @default false */
  readonly preserveHost: boolean;
  /** How an https upstream is verified and what Kanmon presents to it; absent for http upstreams without settings. */
  readonly upstreamTls?: RouteUpstreamTlsConfig;
  /**
   * Timeouts, connection reuse, retries and the request body limit toward the upstream.
   * Always filled by the parser; optional only so routes built in code (the admin console's)
   * need not spell it out. @default CONNECTION_DEFAULTS
   */
  readonly connection?: RouteConnectionConfig;
  /** Kanmon signs in to the upstream for the user: its login form, HTTP Basic or an API header (runtime/upstream-auth). @default none */
  readonly upstreamAuth?: UpstreamAuthConfig;
  /** Path, header, redirect, cookie and body rewriting (runtime/rewrite). @default none: requests and responses pass untouched */
  readonly rewrite?: RewriteConfig;
}

/** TLS toward an https upstream. Files are read at start-up; the config holds only their paths. */
export interface RouteUpstreamTlsConfig {
  /** PEM file with the CA certificates that may sign the upstream's certificate (an internal CA). @default the system's trusted CAs */
  readonly caFile?: string;
  /** Name sent as SNI and checked against the upstream's certificate. @default the upstream URL's host name */
  readonly servername?: string;
  /** PEM client certificate Kanmon presents to the upstream (with clientKeyFile). @default none */
  readonly clientCertFile?: string;
  /** PEM private key for clientCertFile. @default none */
  readonly clientKeyFile?: string;
  /** Accept any upstream certificate. Unsafe; logs a warning at every start. @default false */
  readonly insecureSkipVerify: boolean;
}

export interface RouteConnectionConfig {
  /** How long opening a connection (TCP and TLS) may take; then 504. @default 10000 */
  readonly connectTimeoutMs: number;
  /** How long the upstream may take to send the response headers; then 504. 0: no limit. @default 60000 */
  readonly responseTimeoutMs: number;
  /** How long the response body may stay silent; then the response is cut. 0: no limit. @default 60000 */
  readonly idleTimeoutMs: number;
  /** Reuse connections (a keep-alive pool) or open a new connection per request. @default true */
  readonly keepAlive: boolean;
  /** Most connections open to this upstream at once. @default 128 */
  readonly poolSize: number;
  /** Retries of an idempotent request without a body after a connection error (never after the upstream answered or timed out). @default 1 */
  readonly retries: number;
  /** Largest request body accepted, in bytes; larger ones get 413. 0: no limit. @default 104857600 (100 MiB) */
  readonly maxRequestBodyBytes: number;
}

export const CONNECTION_DEFAULTS: RouteConnectionConfig = Object.freeze({
  connectTimeoutMs: 10_000,
  responseTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  keepAlive: true,
  poolSize: 128,
  retries: 1,
  maxRequestBodyBytes: 100 * 1024 * 1024,
});

/** `*.example.com`: any host name ending in `.example.com` (one or more labels), not example.com itself. */
export function isWildcardHost(host: string): boolean {
  return host.startsWith('*.');
}

/** Whether a route names 'mtls' in any of its factor alternatives. */
export function routeUsesMtls(route: RouteConfig): boolean {
  return route.policy.factors.some((alternative) => alternative.includes('mtls'));
}

export function validateRoutes(value: unknown, errors: string[]): RouteConfig[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    errors.push(`routes: must be a list of routes, got ${show(value)}`);
    return [];
  }
  const seen = new Set<string>();
  const seenMatch = new Set<string>();
  return value.map((raw, i): RouteConfig => {
    const where = `routes[${i}]`;
    const r = asSection(raw, where, errors);
    rejectUnknown(r, ['id', 'match', 'upstream', 'policy', 'preserveHost', 'upstreamTls', 'connection', 'upstreamAuth', 'rewrite'], where, errors);
    const id = str(r, 'id', where, errors, undefined, { nonEmpty: true, required: true });
    if (id && !ROUTE_ID.test(id)) errors.push(`${where}: option 'id' must be 1-63 letters, digits, '-' or '_', got ${show(id)}`);
    if (id && seen.has(id)) errors.push(`${where}: option 'id' must be unique, got ${show(id)} twice`);
    seen.add(id);

    const m = asSection(r.match, `${where}.match`, errors);
    rejectUnknown(m, ['host', 'pathPrefix'], `${where}.match`, errors);
    const host = optStr(m, 'host', `${where}.match`, errors)?.toLowerCase();
    if (host !== undefined && !(isWildcardHost(host) ? HOST_NAME.test(host.slice(2)) && host.slice(2).includes('.') : HOST_NAME.test(host))) {
      errors.push(`${where}.match: option 'host' must be a host name or a wildcard like *.example.com, got ${show(host)}`);
    }
    const pathPrefix = str(m, 'pathPrefix', `${where}.match`, errors, '/', { nonEmpty: true });
    if (!pathPrefix.startsWith('/')) errors.push(`${where}.match: option 'pathPrefix' must start with '/', got ${show(pathPrefix)}`);
    if (pathPrefix.startsWith('/.kanmon')) errors.push(`${where}.match: option 'pathPrefix' must not be under the reserved /.kanmon/ prefix, got ${show(pathPrefix)}`);
    const matchKey = `${host ?? '*'} ${pathPrefix}`;
    if (seenMatch.has(matchKey)) errors.push(`${where}.match: another route already matches host ${show(host ?? '*')} and pathPrefix ${show(pathPrefix)}`);
    seenMatch.add(matchKey);

    const upstream = str(r, 'upstream', where, errors, undefined, { nonEmpty: true, required: true });
    if (upstream && upstream !== 'demo') {
      const problem = upstreamProblem(upstream);
      if (problem) errors.push(`${where}: option 'upstream' must be ${problem}, got ${show(upstream)}`);
    }

    const p = asSection(r.policy, `${where}.policy`, errors);
    rejectUnknown(p, ['factors', 'allowUsers', 'allowGroups', 'deviceBound', 'aaguidAllowlist', 'idleTimeoutSeconds', 'absoluteTimeoutSeconds'], `${where}.policy`, errors);
    const aaguidAllowlist = strList(p, 'aaguidAllowlist', `${where}.policy`, errors, []).map((a) => a.toLowerCase());
    aaguidAllowlist.forEach((a, j) => {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(a)) {
        errors.push(`${where}.policy: option 'aaguidAllowlist[${j}]' must be an AAGUID like cb69481e-8ff7-4039-93ec-0a2729a154a8, got ${show(a)}`);
      }
    });
    const idle = p.idleTimeoutSeconds === undefined ? undefined : int(p, 'idleTimeoutSeconds', `${where}.policy`, errors, 1800, 60, 7 * 86400);
    const absolute = p.absoluteTimeoutSeconds === undefined ? undefined : int(p, 'absoluteTimeoutSeconds', `${where}.policy`, errors, 43200, 60, 30 * 86400);
    const policy: RoutePolicyConfig = {
      factors: factorAlternatives(p.factors, `${where}.policy`, errors),
      allowUsers: strList(p, 'allowUsers', `${where}.policy`, errors, [], GROUP_OR_USER),
      allowGroups: strList(p, 'allowGroups', `${where}.policy`, errors, [], GROUP_OR_USER),
      deviceBound: bool(p, 'deviceBound', `${where}.policy`, errors, false) || aaguidAllowlist.length > 0,
      aaguidAllowlist,
      ...(idle !== undefined ? { idleTimeoutSeconds: idle } : {}),
      ...(absolute !== undefined ? { absoluteTimeoutSeconds: absolute } : {}),
    };
    const preserveHost = bool(r, 'preserveHost', where, errors, false);
    const upstreamTls = readUpstreamTls(r.upstreamTls, upstream, where, errors);
    const connection = readConnection(r.connection, `${where}.connection`, errors);
    const upstreamAuth = validateUpstreamAuth(r.upstreamAuth, where, errors, id);
    const rewrite = validateRewrite(r.rewrite, `${where}.rewrite`, errors);
    return { id, match: { ...(host ? { host } : {}), pathPrefix }, upstream, policy, preserveHost, ...(upstreamTls ? { upstreamTls } : {}), connection, ...(upstreamAuth ? { upstreamAuth } : {}), ...(rewrite ? { rewrite } : {}) };
  });
}

function readUpstreamTls(value: unknown, upstream: string, where: string, errors: string[]): RouteUpstreamTlsConfig | undefined {
  if (value === undefined) return undefined;
  const at = `${where}.upstreamTls`;
  const t = asSection(value, at, errors);
  rejectUnknown(t, ['caFile', 'servername', 'clientCertFile', 'clientKeyFile', 'insecureSkipVerify'], at, errors);
  if (upstream && !upstream.startsWith('https:')) errors.push(`${where}: option 'upstreamTls' applies only to an https:// upstream, got upstream ${show(upstream)}`);
  const caFile = optStr(t, 'caFile', at, errors);
  const servername = optStr(t, 'servername', at, errors)?.toLowerCase();
  if (servername !== undefined && !HOST_NAME.test(servername)) errors.push(`${at}: option 'servername' must be a host name, got ${show(servername)}`);
  const clientCertFile = optStr(t, 'clientCertFile', at, errors);
  const clientKeyFile = optStr(t, 'clientKeyFile', at, errors);
  if ((clientCertFile === undefined) !== (clientKeyFile === undefined)) {
    errors.push(`${at}: options 'clientCertFile' and 'clientKeyFile' must be set together, got ${clientCertFile === undefined ? 'only clientKeyFile' : 'only clientCertFile'}`);
  }
  const insecureSkipVerify = bool(t, 'insecureSkipVerify', at, errors, false);
  if (insecureSkipVerify && caFile !== undefined) errors.push(`${at}: option 'insecureSkipVerify' must not be combined with 'caFile' (it would ignore it), got true`);
  return {
    ...(caFile !== undefined ? { caFile } : {}),
    ...(servername !== undefined ? { servername } : {}),
    ...(clientCertFile !== undefined && clientKeyFile !== undefined ? { clientCertFile, clientKeyFile } : {}),
    insecureSkipVerify,
  };
}

function readConnection(value: unknown, where: string, errors: string[]): RouteConnectionConfig {
  const c = asSection(value, where, errors);
  rejectUnknown(c, Object.keys(CONNECTION_DEFAULTS), where, errors);
  const d = CONNECTION_DEFAULTS;
  return {
    connectTimeoutMs: int(c, 'connectTimeoutMs', where, errors, d.connectTimeoutMs, 1, 600_000),
    responseTimeoutMs: int(c, 'responseTimeoutMs', where, errors, d.responseTimeoutMs, 0, 86_400_000),
    idleTimeoutMs: int(c, 'idleTimeoutMs', where, errors, d.idleTimeoutMs, 0, 86_400_000),
    keepAlive: bool(c, 'keepAlive', where, errors, d.keepAlive),
    poolSize: int(c, 'poolSize', where, errors, d.poolSize, 1, 4096),
    retries: int(c, 'retries', where, errors, d.retries, 0, 5),
    maxRequestBodyBytes: int(c, 'maxRequestBodyBytes', where, errors, d.maxRequestBodyBytes, 0, Number.MAX_SAFE_INTEGER),
  };
}

function factorAlternatives(value: unknown, where: string, errors: string[]): Factor[][] {
  if (value === undefined) return [['passkey']];
  const bad = () => errors.push(`${where}: option 'factors' must be a non-empty list of non-empty factor lists from ${FACTORS.join(', ')}, e.g. [["passkey"],["otp","mtls"]], got ${show(value)}`);
  if (!Array.isArray(value) || value.length === 0) {
    bad();
    return [['passkey']];
  }
  const out: Factor[][] = [];
  for (const alt of value) {
    if (!Array.isArray(alt) || alt.length === 0 || !alt.every((f) => (FACTORS as readonly unknown[]).includes(f))) {
      bad();
      return [['passkey']];
    }
    out.push([...new Set(alt as Factor[])]);
  }
  return out;
}

