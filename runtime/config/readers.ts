/**
 * Small typed readers for config validation: each records an error phrased as
 * "section: option 'x' must be …, got …" and returns a usable fallback, so one pass finds
 * every problem. Shared by every section's validator; free of I/O so lib/ can import it.
 */
import { parseCidr } from '../net/cidr.js';

export const ROUTE_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/i;
export const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
export const GROUP_OR_USER = /^[^\s,]{1,128}$/;

export type Section = Record<string, unknown>;

export function asSection(value: unknown, where: string, errors: string[]): Section {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    errors.push(`${where}: must be an object, got ${show(value)}`);
    return {};
  }
  return value as Section;
}

export function rejectUnknown(section: Section, known: string[], where: string, errors: string[]): void {
  for (const key of Object.keys(section)) {
    if (!known.includes(key)) errors.push(`${where}: option '${key}' is not known (known: ${known.join(', ')})`);
  }
}

export function str(
  section: Section,
  key: string,
  where: string,
  errors: string[],
  fallback: string | undefined,
  opts: { nonEmpty?: boolean; required?: boolean } = {},
): string {
  const v = section[key];
  if (v === undefined) {
    if (opts.required || fallback === undefined) {
      errors.push(`${where}: option '${key}' is required`);
      return '';
    }
    return fallback;
  }
  if (typeof v !== 'string' || (opts.nonEmpty && v.trim() === '')) {
    errors.push(`${where}: option '${key}' must be a ${opts.nonEmpty ? 'non-empty ' : ''}string, got ${show(v)}`);
    return fallback ?? '';
  }
  return v;
}

export function optStr(section: Section, key: string, where: string, errors: string[]): string | undefined {
  const v = section[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.trim() === '') {
    errors.push(`${where}: option '${key}' must be a non-empty string, got ${show(v)}`);
    return undefined;
  }
  return v;
}

/**
 * A name field of a certificate subject: 1-64 characters (RFC 5280 Appendix A.1 upper bounds
 * ub-common-name, ub-organization-name, ub-organizational-unit-name), no control characters.
 */
export function dnString(section: Section, key: string, where: string, errors: string[], fallback?: string): string | undefined {
  const v = section[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || v.trim() === '' || v.length > 64 || /[\u0000-\u001f\u007f]/.test(v)) {
    errors.push(`${where}: option '${key}' must be 1-64 characters without control characters, got ${show(v)}`);
    return fallback;
  }
  return v.trim();
}

export function int(section: Section, key: string, where: string, errors: string[], fallback: number, min: number, max: number): number {
  const v = section[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    errors.push(`${where}: option '${key}' must be an integer from ${min} to ${max}, got ${show(v)}`);
    return fallback;
  }
  return v;
}

export function bool(section: Section, key: string, where: string, errors: string[], fallback: boolean): boolean {
  const v = section[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') {
    errors.push(`${where}: option '${key}' must be true or false, got ${show(v)}`);
    return fallback;
  }
  return v;
}

export function oneOf<T extends string>(section: Section, key: string, where: string, errors: string[], allowed: readonly T[], fallback: T): T {
  const v = section[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    errors.push(`${where}: option '${key}' must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${show(v)}`);
    return fallback;
  }
  return v as T;
}

export function strList(section: Section, key: string, where: string, errors: string[], fallback: string[], pattern?: RegExp): string[] {
  const v = section[key];
  if (v === undefined) return fallback;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && (!pattern || pattern.test(x)))) {
    errors.push(`${where}: option '${key}' must be a list of ${pattern ? 'names without spaces or commas' : 'strings'}, got ${show(v)}`);
    return fallback;
  }
  return v as string[];
}

export function origin(section: Section, key: string, where: string, errors: string[], fallback: string): string {
  const v = str(section, key, where, errors, fallback, { nonEmpty: true });
  if (!isOrigin(v)) {
    errors.push(`${where}: option '${key}' must be an https origin like https://gate.example.com[:port], got ${show(v)}`);
    return fallback;
  }
  return v;
}

export function isOrigin(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === 'https:' && u.origin === value;
  } catch {
    return false;
  }
}

/** The same parser the PROXY listener uses, so what validates here also works at start-up. */
export function isCidr(value: string): boolean {
  try {
    parseCidr(value);
    return true;
  } catch {
    return false;
  }
}

export function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

export function upstreamProblem(value: string): string | undefined {
  const expected = "an http:// or https:// URL with a host and no query, or 'demo'";
  try {
    const u = new URL(value);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return expected;
    if (!u.hostname || u.search || u.hash || u.username || u.password) return expected;
    return undefined;
  } catch {
    return expected;
  }
}

export function safeHostname(value: string): string {
  try {
    return new URL(value).hostname;
  } catch {
    return 'localhost';
  }
}

export function joinPath(dir: string, file: string): string {
  return dir.endsWith('/') ? `${dir}${file}` : `${dir}/${file}`;
}

export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
