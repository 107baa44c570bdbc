/**
 * A route's `upstreamAuth`: how Kanmon signs in to an upstream that has its own login, so the
 * user never sees it. Three kinds:
 * - `form`: the upstream's own login form, filled in server-side (fields, CSRF token and
 *   hidden fields carried over), its session cookies kept in a server-side jar per Kanmon
 *   session, never in the browser;
 * - `basic`: HTTP Basic authentication injected on every request;
 * - `header`: a fixed API header (a key or token) injected on every request.
 * Credentials come from the upstream-credentials store (sealed), never from config.
 *
 * Free of node I/O: lib/ imports the schema.
 */
import { asSection, bool, oneOf, optStr, rejectUnknown, show, str, type Section } from './readers.js';

/** Whose credentials a route uses: the user's own, the route's shared service account, or the user's with the shared one as fallback. */
export type UpstreamCredentialSource = 'user' | 'shared' | 'user-or-shared';
export const UPSTREAM_CREDENTIAL_SOURCES: readonly UpstreamCredentialSource[] = ['user', 'shared', 'user-or-shared'];

interface UpstreamAuthCommon {
  /** @default "user" for form and basic, "shared" for header */
  readonly credentials: UpstreamCredentialSource;
  /**
   * The name stored credentials are kept under; routes naming the same set share them (a form
   * route and a Basic route of one legacy app). 1-63 of letters, digits, '-' and '_'. @default the route id
   */
  readonly credentialSet: string;
  /**
   * Derives the upstream user name from the Kanmon user, so users enter only a password:
   * `{username}` is the Kanmon user name, `{usernameLocal}` its part before '@'.
   * E.g. "{username}@corp.local". @default none (users enter their upstream user name)
   */
  readonly usernameTemplate?: string;
}

export interface FormLoginConfig extends UpstreamAuthCommon {
  readonly kind: 'form';
  /** The upstream's login page, as a path on the upstream (e.g. "/legacy/login"). Kanmon fetches it, fills in the form and posts it. */
  readonly loginUrl: string;
  /** @default "username" */
  readonly usernameField: string;
  /** @default "password" */
  readonly passwordField: string;
  /** Fixed fields posted with the form (e.g. {"domain": "CORP"}); they override the page's own hidden fields. @default {} */
  readonly extraFields: Readonly<Record<string, string>>;
  /** How to tell that the upstream wants a login. */
  readonly detect: {
    /** A redirect to loginUrl. @default true */
    readonly redirectToLogin: boolean;
    /** These statuses (e.g. [401, 440]). @default [] */
    readonly statuses: readonly number[];
    /**
     * A string that only the upstream's login page contains, for upstreams that answer an
     * expired session with their login page and 200. Only routes with a marker pay for looking
     * at bodies, and only of HTML answers to bodiless requests. @default none
     */
    readonly bodyMarker?: string;
  };
  /** How to tell that the sign-in worked. With neither option: the answer is not the login form again and not a redirect to it. */
  readonly success: {
    /** The upstream sets this cookie on success (e.g. "JSESSIONID"). @default none */
    readonly cookie?: string;
    /** A string the page after sign-in contains. @default none */
    readonly bodyMarker?: string;
  };
  /** The upstream's logout URL (path), requested with the jar when the user signs out of Kanmon. @default none */
  readonly logoutUrl?: string;
  /** @default "GET" */
  readonly logoutMethod: 'GET' | 'POST';
}

export interface BasicAuthConfig extends UpstreamAuthCommon {
  readonly kind: 'basic';
}

export interface HeaderAuthConfig extends UpstreamAuthCommon {
  readonly kind: 'header';
  /** The header to set, e.g. "X-API-Key" or "Authorization". */
  readonly header: string;
  /** Put before the stored secret, e.g. "Bearer ". @default "" */
  readonly valuePrefix: string;
}

export type UpstreamAuthConfig = FormLoginConfig | BasicAuthConfig | HeaderAuthConfig;

const SET_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;
const FIELD_NAME = /^[^\s\u0000-\u001f\u007f]{1,128}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
/** Headers Kanmon itself owns toward the upstream; an API header must not overwrite them. */
const RESERVED_HEADERS = ['host', 'cookie', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'forwarded', 'x-real-ip'];
const TEMPLATE_PLACEHOLDER = /\{([^}]*)\}/g;
const PLACEHOLDERS = ['username', 'usernameLocal'];

/**
 * Validates `routes[i].upstreamAuth`; `routeId` is the default credential set. Returns
 * undefined for an absent key (and after recording errors for a malformed one).
 */
export function validateUpstreamAuth(value: unknown, where: string, errors: string[], routeId: string): UpstreamAuthConfig | undefined {
  if (value === undefined) return undefined;
  const at = `${where}.upstreamAuth`;
  const s = asSection(value, at, errors);
  const kind = oneOf(s, 'kind', at, errors, ['form', 'basic', 'header'] as const, 'form');
  if (s.kind === undefined) errors.push(`${at}: option 'kind' is required ("form", "basic" or "header")`);
  const common = ['kind', 'credentials', 'credentialSet', 'usernameTemplate'];
  const credentials = oneOf(s, 'credentials', at, errors, UPSTREAM_CREDENTIAL_SOURCES, kind === 'header' ? 'shared' : 'user');
  const credentialSet = str(s, 'credentialSet', at, errors, routeId || 'route');
  if (s.credentialSet !== undefined && !SET_NAME.test(credentialSet)) {
    errors.push(`${at}: option 'credentialSet' must be 1-63 letters, digits, '-' or '_', got ${show(s.credentialSet)}`);
  }
  const usernameTemplate = optStr(s, 'usernameTemplate', at, errors);
  if (usernameTemplate !== undefined) {
    if (kind === 'header') errors.push(`${at}: option 'usernameTemplate' has no use with kind "header" (the header carries one secret)`);
    for (const m of usernameTemplate.matchAll(TEMPLATE_PLACEHOLDER)) {
      if (!PLACEHOLDERS.includes(m[1]!)) errors.push(`${at}: option 'usernameTemplate' may use ${PLACEHOLDERS.map((p) => `{${p}}`).join(' and ')}, got {${m[1]}}`);
    }
    if (usernameTemplate.length > 256) errors.push(`${at}: option 'usernameTemplate' must be at most 256 characters, got ${usernameTemplate.length}`);
  }
  const base = { credentials, credentialSet, ...(usernameTemplate !== undefined ? { usernameTemplate } : {}) };

  if (kind === 'basic') {
    rejectUnknown(s, common, at, errors);
    return { kind, ...base };
  }
  if (kind === 'header') {
    rejectUnknown(s, [...common, 'header', 'valuePrefix'], at, errors);
    const header = str(s, 'header', at, errors, undefined, { nonEmpty: true, required: true });
    if (header && (!HEADER_NAME.test(header) || RESERVED_HEADERS.includes(header.toLowerCase()) || /^x-kanmon-/i.test(header) || /^x-forwarded-/i.test(header))) {
      errors.push(`${at}: option 'header' must be a header name other than Host, Cookie, framing, forwarding and X-Kanmon-* headers, got ${show(header)}`);
    }
    const valuePrefix = str(s, 'valuePrefix', at, errors, '');
    if (/[\r\n\u0000]/.test(valuePrefix)) errors.push(`${at}: option 'valuePrefix' must not contain line breaks, got ${show(valuePrefix)}`);
    return { kind, ...base, header, valuePrefix };
  }

  rejectUnknown(s, [...common, 'loginUrl', 'usernameField', 'passwordField', 'extraFields', 'detect', 'success', 'logoutUrl', 'logoutMethod'], at, errors);
  const loginUrl = str(s, 'loginUrl', at, errors, undefined, { nonEmpty: true, required: true });
  if (loginUrl && !isUpstreamPath(loginUrl)) errors.push(`${at}: option 'loginUrl' must be a path on the upstream starting with '/', got ${show(loginUrl)}`);
  const logoutUrl = optStr(s, 'logoutUrl', at, errors);
  if (logoutUrl !== undefined && !isUpstreamPath(logoutUrl)) errors.push(`${at}: option 'logoutUrl' must be a path on the upstream starting with '/', got ${show(logoutUrl)}`);
  const usernameField = field(s, 'usernameField', at, errors, 'username');
  const passwordField = field(s, 'passwordField', at, errors, 'password');
  const extraFields = fixedFields(s.extraFields, at, errors);

  const d = asSection(s.detect, `${at}.detect`, errors);
  rejectUnknown(d, ['redirectToLogin', 'statuses', 'bodyMarker'], `${at}.detect`, errors);
  const statuses = statusList(d, `${at}.detect`, errors);
  const detectMarker = marker(d, 'bodyMarker', `${at}.detect`, errors);
  const redirectToLogin = bool(d, 'redirectToLogin', `${at}.detect`, errors, true);
  if (!redirectToLogin && statuses.length === 0 && detectMarker === undefined) {
    errors.push(`${at}.detect: needs at least one way to see that the upstream wants a login (redirectToLogin, statuses or bodyMarker)`);
  }
  const ok = asSection(s.success, `${at}.success`, errors);
  rejectUnknown(ok, ['cookie', 'bodyMarker'], `${at}.success`, errors);
  const successCookie = optStr(ok, 'cookie', `${at}.success`, errors);
  if (successCookie !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/.test(successCookie)) {
    errors.push(`${at}.success: option 'cookie' must be a cookie name, got ${show(successCookie)}`);
  }
  const successMarker = marker(ok, 'bodyMarker', `${at}.success`, errors);
  const logoutMethod = oneOf(s, 'logoutMethod', at, errors, ['GET', 'POST'] as const, 'GET');
  return {
    kind,
    ...base,
    loginUrl,
    usernameField,
    passwordField,
    extraFields,
    detect: { redirectToLogin, statuses, ...(detectMarker !== undefined ? { bodyMarker: detectMarker } : {}) },
    success: { ...(successCookie !== undefined ? { cookie: successCookie } : {}), ...(successMarker !== undefined ? { bodyMarker: successMarker } : {}) },
    ...(logoutUrl !== undefined ? { logoutUrl } : {}),
    logoutMethod,
  };
}

/** A path (and optional query) on the upstream: no scheme, no host, no fragment. */
function isUpstreamPath(value: string): boolean {
  if (!value.startsWith('/') || value.startsWith('//') || value.includes('#') || /[\s\u0000-\u001f\u007f\\]/.test(value)) return false;
  try {
    return new URL(value, 'http://upstream.invalid').host === 'upstream.invalid';
  } catch {
    return false;
  }
}

function field(s: Section, key: string, at: string, errors: string[], fallback: string): string {
  const v = str(s, key, at, errors, fallback, { nonEmpty: true });
  if (!FIELD_NAME.test(v)) {
    errors.push(`${at}: option '${key}' must be a form field name (1-128 characters, no spaces), got ${show(v)}`);
    return fallback;
  }
  return v;
}

function fixedFields(value: unknown, at: string, errors: string[]): Record<string, string> {
  if (value === undefined) return {};
  if (!value || typeof value !== 'object' || Array.isArray(value) || !Object.entries(value).every(([k, v]) => FIELD_NAME.test(k) && typeof v === 'string' && v.length <= 1024)) {
    errors.push(`${at}: option 'extraFields' must be an object of field names to string values (at most 1024 characters), got ${show(value)}`);
    return {};
  }
  return { ...(value as Record<string, string>) };
}

function statusList(d: Section, at: string, errors: string[]): number[] {
  const v = d.statuses;
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((n) => Number.isInteger(n) && (n as number) >= 300 && (n as number) <= 599)) {
    errors.push(`${at}: option 'statuses' must be a list of HTTP statuses from 300 to 599, e.g. [401, 440], got ${show(v)}`);
    return [];
  }
  return [...new Set(v as number[])];
}

function marker(s: Section, key: string, at: string, errors: string[]): string | undefined {
  const v = optStr(s, key, at, errors);
  if (v !== undefined && v.length > 256) {
    errors.push(`${at}: option '${key}' must be at most 256 characters, got ${v.length}`);
    return undefined;
  }
  return v;
}

/** The upstream user name a template gives for a Kanmon user name. */
export function applyUsernameTemplate(template: string, username: string): string {
  const at = username.indexOf('@');
  const local = at === -1 ? username : username.slice(0, at);
  return template.replace(TEMPLATE_PLACEHOLDER, (whole, name: string) => (name === 'username' ? username : name === 'usernameLocal' ? local : whole));
}

/** The longest upstream user name and secret Kanmon stores. */
export const UPSTREAM_AUTH_LIMITS = { maxUsernameLength: 256, maxSecretLength: 1024 } as const;
