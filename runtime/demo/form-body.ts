import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Reads a urlencoded form body of at most `limit` bytes and hands its fields to `then`. A larger
 * body is answered by `tooLarge` (on a connection marked to close) as soon as it passes the
 * limit, and `then` is never called.
 */
export function readFormBody(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  tooLarge: () => void,
  then: (fields: URLSearchParams) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    if (size > limit) {
      refused = true;
      res.setHeader('connection', 'close');
      tooLarge();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (!refused) then(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
  });
}
