import { Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Constructor validation helpers. Every message names the option, says what was expected and
 * shows what arrived, in the same "where: option 'x' must be …, got …" shape as the runtime's
 * config validator, so operators read one style of error everywhere.
 */

const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const EMAIL = /^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/;

/** Thrown by every Kanmon construct when a prop is invalid. */
export class KanmonPropsError extends Error {
  constructor(scope: IConstruct, message: string) {
    super(`${scope.node.path}: ${message}`);
    this.name = 'KanmonPropsError';
  }
}

export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string' && Token.isUnresolved(value)) return 'a deploy-time token';
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function isHostName(value: string): boolean {
  return HOST_NAME.test(value);
}

export function isEmail(value: string): boolean {
  return EMAIL.test(value);
}

export function requireLiteral(scope: IConstruct, option: string, value: string): void {
  if (Token.isUnresolved(value)) {
    throw new KanmonPropsError(scope, `option '${option}' must be a literal string known at synth time, got ${show(value)}`);
  }
}

export function requireInteger(scope: IConstruct, option: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KanmonPropsError(scope, `option '${option}' must be an integer from ${min} to ${max}, got ${show(value)}`);
  }
}

export function isCidr(value: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  return !!m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}
