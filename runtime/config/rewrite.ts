/**
 * A route's `rewrite` section: what Kanmon changes in requests and responses so an
 * application that hard-codes its own host names, paths and cookie domains works behind the
 * gateway unchanged. Validated once at start; regular expressions are compiled here so a bad
 * one is a config error, never a failing request. Free of node I/O so lib/ can import it.
 */
import { asSection, bool, int, oneOf, rejectUnknown, show, str, upstreamProblem, type Section } from './readers.js';

/** Applied in this order to the request target: strip, then add. */
export interface RewritePathConfig {
  /** Removed from the start of the path (at a segment boundary) before forwarding, e.g. "/wiki". */
  readonly stripPrefix?: string;
  /** Put in front of the path before forwarding, e.g. "/app". */
  readonly addPrefix?: string;
}

export type RewriteRequestHeaderRule =
  | { readonly id: string; readonly kind: 'set'; readonly name: string; readonly value: string }
  | { readonly id: string; readonly kind: 'remove'; readonly name: string }
  | { readonly id: string; readonly kind: 'replace'; readonly name: string; readonly pattern: RegexSource; readonly with: string };

export type RewriteResponseHeaderRule =
  | { readonly id: string; readonly kind: 'set'; readonly name: string; readonly value: string }
  | { readonly id: string; readonly kind: 'remove'; readonly name: string };

export type RewriteBodyRule =
  | { readonly id: string; readonly kind: 'literal'; readonly find: string; readonly with: string }
  | { readonly id: string; readonly kind: 'regex'; readonly pattern: RegexSource; readonly with: string };

/**
 * A validated regular expression, kept as text: config is frozen and may be serialised (the
 * CDK stack passes it on), so the runtime compiles its own RegExp (always global).
 */
export interface RegexSource {
  readonly source: string;
  /** From 'i', 'm', 's', 'u'. */
  readonly flags: string;
}

export interface RewriteCookiesConfig {
  /**
   * What a cookie's Domain attribute becomes: "host-only" drops it, so the cookie belongs to
   * the public host the browser used; a domain name (".example.com") replaces it.
   * Cookies without a Domain attribute stay host-only. @default "host-only"
   */
  readonly domain: string;
  /** SameSite value for cookies that carry none. @default "Lax" */
  readonly sameSite: 'Lax' | 'Strict' | 'None';
}

export interface RewriteBodyConfig {
  /** Media types whose bodies are rewritten. @default DEFAULT_REWRITE_CONTENT_TYPES */
  readonly contentTypes: readonly string[];
  /**
   * Largest decoded body held in memory when a rule needs the whole body (any regex rule);
   * a larger body passes unchanged and a warning is logged. @default 8 MiB
   */
  readonly maxBufferBytes: number;
  /** How long the regex rules may run on one body (or one header) before they are abandoned and it passes unchanged. @default 250 */
  readonly regexTimeoutMs: number;
  /** Replacements, applied in the listed order. @default [] */
  readonly replace: readonly RewriteBodyRule[];
}

export interface RewriteConfig {
  /**
   * Other URLs the application knows itself by (e.g. "http://intranet.corp.local"), rewritten
   * to the public URL like the upstream's own. @default []
   */
  readonly internalUrls: readonly string[];
  readonly path: RewritePathConfig;
  readonly requestHeaders: readonly RewriteRequestHeaderRule[];
  readonly responseHeaders: readonly RewriteResponseHeaderRule[];
  /** Rewrite Location, Content-Location and Refresh from internal to public URLs. @default true */
  readonly redirects: boolean;
  /** Rewrite internal absolute URLs in HTML href, src, action, srcset, style url() and meta refresh. @default false */
  readonly htmlUrls: boolean;
  /** Set-Cookie rewriting; `false` turns it off. @default { domain: "host-only", sameSite: "Lax" } */
  readonly cookies: RewriteCookiesConfig | false;
  readonly body: RewriteBodyConfig;
}

export const DEFAULT_REWRITE_CONTENT_TYPES: readonly string[] = [
  'text/html',
  'application/xhtml+xml',
  'text/css',
  'text/javascript',
  'application/javascript',
  'application/x-javascript',
  'application/json',
];

/** Longest regular expression source accepted from config. */
export const MAX_PATTERN_LENGTH = 1000;

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers that frame the message or carry Kanmon's own assertions: no rule may touch them. */
const PROTECTED_REQUEST = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'expect']);
const PROTECTED_RESPONSE = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade', 'trailer', 'keep-alive', 'content-encoding']);
const DOMAIN = /^\.?(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

export function validateRewrite(value: unknown, where: string, errors: string[]): RewriteConfig | undefined {
  if (value === undefined) return undefined;
  const r = asSection(value, where, errors);
  rejectUnknown(r, ['internalUrls', 'path', 'requestHeaders', 'responseHeaders', 'redirects', 'htmlUrls', 'cookies', 'body'], where, errors);

  const internalUrls = urlList(r.internalUrls, where, errors);

  const p = asSection(r.path, `${where}.path`, errors);
  rejectUnknown(p, ['stripPrefix', 'addPrefix'], `${where}.path`, errors);
  const stripPrefix = pathPrefix(p, 'stripPrefix', `${where}.path`, errors);
  const addPrefix = pathPrefix(p, 'addPrefix', `${where}.path`, errors);

  const regexTimeoutMs = int(asSection(r.body, `${where}.body`, []), 'regexTimeoutMs', `${where}.body`, errors, 250, 10, 10_000);
  const requestHeaders = ruleList(r.requestHeaders, `${where}.requestHeaders`, 'requestHeaders', errors, (rule, at, id) => requestHeaderRule(rule, at, id, errors));
  const responseHeaders = ruleList(r.responseHeaders, `${where}.responseHeaders`, 'responseHeaders', errors, (rule, at, id) => responseHeaderRule(rule, at, id, errors));

  const redirects = bool(r, 'redirects', where, errors, true);
  const htmlUrls = bool(r, 'htmlUrls', where, errors, false);

  let cookies: RewriteCookiesConfig | false = { domain: 'host-only', sameSite: 'Lax' };
  if (r.cookies === false) cookies = false;
  else if (r.cookies !== undefined) {
    const c = asSection(r.cookies, `${where}.cookies`, errors);
    rejectUnknown(c, ['domain', 'sameSite'], `${where}.cookies`, errors);
    const domain = str(c, 'domain', `${where}.cookies`, errors, 'host-only', { nonEmpty: true }).toLowerCase();
    if (domain !== 'host-only' && !DOMAIN.test(domain)) {
      errors.push(`${where}.cookies: option 'domain' must be "host-only" or a domain name like ".example.com", got ${show(domain)}`);
    }
    cookies = { domain, sameSite: oneOf(c, 'sameSite', `${where}.cookies`, errors, ['Lax', 'Strict', 'None'] as const, 'Lax') };
  }

  const b = asSection(r.body, `${where}.body`, errors);
  rejectUnknown(b, ['contentTypes', 'maxBufferBytes', 'regexTimeoutMs', 'replace'], `${where}.body`, errors);
  let contentTypes = DEFAULT_REWRITE_CONTENT_TYPES;
  if (b.contentTypes !== undefined) {
    if (!Array.isArray(b.contentTypes) || b.contentTypes.length === 0 || !b.contentTypes.every((t) => typeof t === 'string' && MEDIA_TYPE.test(t.toLowerCase()))) {
      errors.push(`${where}.body: option 'contentTypes' must be a non-empty list of media types like "text/html", got ${show(b.contentTypes)}`);
    } else contentTypes = (b.contentTypes as string[]).map((t) => t.toLowerCase());
  }
  const maxBufferBytes = int(b, 'maxBufferBytes', `${where}.body`, errors, 8 * 1024 * 1024, 1024, 256 * 1024 * 1024);
  const replace = ruleList(b.replace, `${where}.body.replace`, 'body.replace', errors, (rule, at, id) => bodyRule(rule, at, id, errors));

  return {
    internalUrls,
    path: { ...(stripPrefix ? { stripPrefix } : {}), ...(addPrefix ? { addPrefix } : {}) },
    requestHeaders,
    responseHeaders,
    redirects,
    htmlUrls,
    cookies,
    body: { contentTypes, maxBufferBytes, regexTimeoutMs, replace },
  };
}

/**
 * Why a pattern from config is refused, or undefined when it is accepted. Beyond syntax, a
 * quantified group that itself contains a quantifier (`(a+)+`, `(\w*)*`, `(x|y+){2,}`) is
 * refused: those are the shapes that backtrack exponentially on a long non-matching input.
 */
export function regexProblem(source: string, flags: string): string | undefined {
  if (source.length === 0 || source.length > MAX_PATTERN_LENGTH) return `a regular expression of 1-${MAX_PATTERN_LENGTH} characters`;
  if (!/^[imsu]*$/.test(flags) || new Set(flags).size !== flags.length) return "flags from 'i', 'm', 's', 'u', each at most once";
  try {
    new RegExp(source, flags);
  } catch (err) {
    return `a valid regular expression (${(err as Error).message})`;
  }
  if (hasNestedQuantifier(source)) return 'a regular expression without a repeated group that itself repeats, like (a+)+, which can take exponential time';
  return undefined;
}

function hasNestedQuantifier(source: string): boolean {
  // One frame per open group: whether something inside it repeats.
  const stack: boolean[] = [];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') stack.push(false);
    else if (c === ')') {
      const innerRepeats = stack.pop() ?? false;
      const next = source[i + 1];
      const repeated = next === '*' || next === '+' || (next === '{' && /^\{\d+,\d*\}/.test(source.slice(i + 1)) && !/^\{(\d+),\1\}/.test(source.slice(i + 1)));
      if (innerRepeats && repeated) return true;
      if (stack.length && (innerRepeats || repeated)) stack[stack.length - 1] = true;
    } else if ((c === '*' || c === '+' || (c === '{' && /^\{\d+,\d*\}/.test(source.slice(i)))) && stack.length) {
      stack[stack.length - 1] = true;
    }
  }
  return false;
}

function urlList(value: unknown, where: string, errors: string[]): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    errors.push(`${where}: option 'internalUrls' must be a list of http:// or https:// URLs, got ${show(value)}`);
    return [];
  }
  const out: string[] = [];
  value.forEach((v: string, i) => {
    const problem = upstreamProblem(v);
    if (problem) errors.push(`${where}: option 'internalUrls[${i}]' must be an http:// or https:// URL with a host and no query, got ${show(v)}`);
    else out.push(v.replace(/\/+$/, ''));
  });
  return out;
}

function pathPrefix(section: Section, key: string, where: string, errors: string[]): string | undefined {
  const v = section[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\/[^\s?#]*$/.test(v) || v.replace(/\/+$/, '') === '') {
    errors.push(`${where}: option '${key}' must be a path like "/app" (starting with '/', not '/' alone, no spaces, '?' or '#'), got ${show(v)}`);
    return undefined;
  }
  return v.replace(/\/+$/, '');
}

function ruleList<T>(value: unknown, where: string, idPrefix: string, errors: string[], read: (rule: Section, at: string, id: string) => T | undefined): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    errors.push(`${where}: must be a list of rules, got ${show(value)}`);
    return [];
  }
  const out: T[] = [];
  const ids = new Set<string>();
  value.forEach((raw, i) => {
    const at = `${where}[${i}]`;
    const rule = asSection(raw, at, errors);
    const id = rule.id === undefined ? `${idPrefix}[${i}]` : rule.id;
    if (typeof id !== 'string' || !/^[A-Za-z0-9_.:[\]-]{1,64}$/.test(id)) {
      errors.push(`${at}: option 'id' must be 1-64 letters, digits, '-', '_', '.' or ':', got ${show(rule.id)}`);
      return;
    }
    if (ids.has(id)) errors.push(`${at}: option 'id' must be unique in the list, got ${show(id)} twice`);
    ids.add(id);
    const parsed = read(rule, at, id);
    if (parsed !== undefined) out.push(parsed);
  });
  return out;
}

function headerName(value: unknown, key: string, at: string, errors: string[], protectedNames: Set<string>): string | undefined {
  if (typeof value !== 'string' || !HEADER_NAME.test(value)) {
    errors.push(`${at}: option '${key}' must be a header name, got ${show(value)}`);
    return undefined;
  }
  const lower = value.toLowerCase();
  const name = lower.replace(/_/g, '-');
  if (protectedNames.has(lower) || name.startsWith('x-kanmon-') || name.startsWith('proxy-')) {
    errors.push(`${at}: option '${key}' must not name a header that frames the message or carries Kanmon's identity assertions, got ${show(value)}`);
    return undefined;
  }
  return lower;
}

function headerValue(rule: Section, key: string, at: string, errors: string[]): string | undefined {
  const v = rule[key];
  if (typeof v !== 'string' || /[\r\n\0]/.test(v) || /[^\t\x20-\x7e\x80-\xff]/.test(v)) {
    errors.push(`${at}: option '${key}' must be a header value without line breaks or characters beyond Latin-1, got ${show(v)}`);
    return undefined;
  }
  return v;
}

function onlyOneOf(rule: Section, kinds: string[], at: string, errors: string[]): string | undefined {
  const present = kinds.filter((k) => rule[k] !== undefined);
  if (present.length !== 1) {
    errors.push(`${at}: must have exactly one of ${kinds.map((k) => `'${k}'`).join(', ')}, got ${present.length ? present.map((k) => `'${k}'`).join(' and ') : 'none'}`);
    return undefined;
  }
  return present[0];
}

function compile(rule: Section, at: string, errors: string[], key: string): RegexSource | undefined {
  const source = rule[key];
  const flags = rule.flags ?? '';
  if (typeof source !== 'string' || typeof flags !== 'string') {
    errors.push(`${at}: option '${key}' must be a regular expression string (and 'flags' a string), got ${show(source)}`);
    return undefined;
  }
  const problem = regexProblem(source, flags);
  if (problem) {
    errors.push(`${at}: option '${problem.startsWith('flags') ? 'flags' : key}' must be ${problem}, got ${show(problem.startsWith('flags') ? flags : source)}`);
    return undefined;
  }
  return { source, flags };
}

function requestHeaderRule(rule: Section, at: string, id: string, errors: string[]): RewriteRequestHeaderRule | undefined {
  const kind = onlyOneOf(rule, ['set', 'remove', 'replace'], at, errors);
  rejectUnknown(rule, ['id', 'set', 'remove', 'replace', 'value', 'pattern', 'flags', 'with'], at, errors);
  if (!kind) return undefined;
  const name = headerName(rule[kind], kind, at, errors, PROTECTED_REQUEST);
  if (kind === 'set') {
    const value = headerValue(rule, 'value', at, errors);
    return name !== undefined && value !== undefined ? { id, kind, name, value } : undefined;
  }
  if (kind === 'remove') return name !== undefined ? { id, kind, name } : undefined;
  const pattern = compile(rule, at, errors, 'pattern');
  const replacement = headerValue(rule, 'with', at, errors);
  return name !== undefined && pattern && replacement !== undefined ? { id, kind: 'replace', name, pattern, with: replacement } : undefined;
}

function responseHeaderRule(rule: Section, at: string, id: string, errors: string[]): RewriteResponseHeaderRule | undefined {
  const kind = onlyOneOf(rule, ['set', 'remove'], at, errors);
  rejectUnknown(rule, ['id', 'set', 'remove', 'value'], at, errors);
  if (!kind) return undefined;
  const name = headerName(rule[kind], kind, at, errors, PROTECTED_RESPONSE);
  if (kind === 'remove') return name !== undefined ? { id, kind, name } : undefined;
  const value = headerValue(rule, 'value', at, errors);
  return name !== undefined && value !== undefined ? { id, kind: 'set', name, value } : undefined;
}

function bodyRule(rule: Section, at: string, id: string, errors: string[]): RewriteBodyRule | undefined {
  const kind = onlyOneOf(rule, ['literal', 'regex'], at, errors);
  rejectUnknown(rule, ['id', 'literal', 'regex', 'flags', 'with'], at, errors);
  const replacement = rule.with;
  if (typeof replacement !== 'string') errors.push(`${at}: option 'with' must be a string, got ${show(replacement)}`);
  if (!kind || typeof replacement !== 'string') return undefined;
  if (kind === 'literal') {
    const find = rule.literal;
    if (typeof find !== 'string' || find.length === 0 || find.length > 4096) {
      errors.push(`${at}: option 'literal' must be a string of 1-4096 characters, got ${show(find)}`);
      return undefined;
    }
    if (rule.flags !== undefined) errors.push(`${at}: option 'flags' applies only to 'regex' rules, got ${show(rule.flags)}`);
    return { id, kind: 'literal', find, with: replacement };
  }
  const pattern = compile(rule, at, errors, 'regex');
  return pattern ? { id, kind: 'regex', pattern, with: replacement } : undefined;
}
