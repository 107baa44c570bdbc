/**
 * The per-route request body limit. A declared Content-Length is checked before anything
 * is read; a body without one (chunked) is counted as it streams, never held.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';

export class RequestBodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = 'RequestBodyTooLargeError';
  }
}

/** Whether the request declares a Content-Length above `limit` (Node has already refused malformed ones). */
export function declaredLengthExceeds(req: IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > limit;
}

/** Passes bytes through until more than `limit` have gone by, then fails the stream. */
export class RequestBodyLimit extends Transform {
  private seen = 0;
  exceeded = false;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      this.exceeded = true;
      done(new RequestBodyTooLargeError(this.limit));
      return;
    }
    done(null, chunk);
  }
}
