/**
 * Reads and discards what is left of a refused request body before the answer is sent, up to
 * a bound. A client still uploading when the server answers and closes gets a connection reset
 * and, in browsers, never sees the 413 page; reading the rest first lets it read the answer.
 * Past `maxBytes` or `timeoutMs` the drain stops and the connection is closed after the answer
 * (the bound keeps a slow or endless upload from holding the server).
 */
import type { IncomingMessage } from 'node:http';

export function drainRequestBody(req: IncomingMessage, maxBytes: number, timeoutMs: number): Promise<void> {
  if (req.complete || req.destroyed || req.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      req.off('error', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > maxBytes) {
        req.pause();
        done();
      }
    };
    timer = setTimeout(() => {
      req.pause();
      done();
    }, timeoutMs);
    timer.unref();
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.resume();
  });
}
