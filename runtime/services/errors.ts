/**
 * Errors services raise for bad input or forbidden actions. HTTP handlers turn them into
 * 4xx answers with a generic text; the CLI prints the message.
 */
export type ServiceErrorCode =
  | 'invalid-input'
  | 'not-found'
  | 'conflict'
  | 'forbidden'
  | 'last-factor'
  | 'token-unusable'
  /** Something outside Kanmon that the action needs (a directory, an upstream) did not answer. */
  | 'unavailable';

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ServiceError';
  }
}
