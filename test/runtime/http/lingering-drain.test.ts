/**
 * The bounded drain before a 413: an upload that is still arriving is read to its end so the
 * client gets the answer; an endless or slow one is cut at the byte or time bound.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drainRequestBody } from '../../../runtime/http/lingering-drain.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function start(maxBytes: number, timeoutMs: number, seen: number[]): Promise<number> {
  server = createServer((req: IncomingMessage, res) => {
    let count = 0;
    req.on('data', (c: Buffer) => (count += c.length));
    void drainRequestBody(req, maxBytes, timeoutMs).then(() => {
      seen.push(count);
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' });
      res.end('too large');
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return (server!.address() as AddressInfo).port;
}

function upload(port: number, chunks: number, chunkSize: number, delayMs = 0): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'content-length': String(chunks * chunkSize) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode! }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    let sent = 0;
    const next = () => {
      if (sent === chunks) return req.end();
      sent++;
      const ok = req.write(Buffer.alloc(chunkSize, 0x61));
      if (delayMs) setTimeout(next, delayMs);
      else if (ok) setImmediate(next);
      else req.once('drain', next);
    };
    next();
  });
}

describe('drainRequestBody', () => {
  it('reads an upload within the bound to its end, so the client reads the 413', async () => {
    const seen: number[] = [];
    const port = await start(8 * 1024 * 1024, 5000, seen);
    expect(await upload(port, 64, 64 * 1024)).toEqual({ status: 413 });
    expect(seen).toEqual([64 * 64 * 1024]);
  });

  it('stops reading past the byte bound', async () => {
    const seen: number[] = [];
    const port = await start(256 * 1024, 5000, seen);
    await upload(port, 256, 64 * 1024);
    expect(seen[0]).toBeGreaterThan(256 * 1024);
    expect(seen[0]).toBeLessThan(4 * 1024 * 1024);
  });

  it('stops waiting for a slow upload at the time bound', async () => {
    const seen: number[] = [];
    const port = await start(8 * 1024 * 1024, 200, seen);
    // 50 chunks 100 ms apart would take 5 s; the drain gives up after 0.2 s.
    await upload(port, 50, 1024, 100);
    expect(seen[0]).toBeLessThan(50 * 1024);
  });

  it('returns at once for a request already read', async () => {
    const seen: number[] = [];
    const port = await start(1024, 5000, seen);
    expect(await upload(port, 0, 1)).toEqual({ status: 413 });
    expect(seen).toEqual([0]);
  });
});
