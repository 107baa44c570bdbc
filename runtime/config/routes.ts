/**
 * The `routes` section: matching, upstream, policy and per-route forwarding options.
 */
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
    rejectUnknown(r, ['id', 'match', 'upstream', 'policy', 'preserveHost'], where, errors);
    const id = str(r, 'id', where, errors, undefined, { nonEmpty: true, required: true });
    if (id && !ROUTE_ID.test(id)) errors.push(`${where}: option 'id' must be 1-63 letters, digits, '-' or '_', got ${show(id)}`);
    if (id && seen.has(id)) errors.push(`${where}: option 'id' must be unique, got ${show(id)} twice`);
    seen.add(id);

    const m = asSection(r.match, `${where}.match`, errors);
    rejectUnknown(m, ['host', 'pathPrefix'], `${where}.match`, errors);
    const host = optStr(m, 'host', `${where}.match`, errors)?.toLowerCase();
    if (host !== undefined && !HOST_NAME.test(host)) errors.push(`${where}.match: option 'host' must be a host name, got ${show(host)}`);
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
    return { id, match: { ...(host ? { host } : {}), pathPrefix }, upstream, policy, preserveHost };
  });
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

