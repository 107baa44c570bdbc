/**
 * Bodies stream through the forwarder: 50 MiB each way, generated on the fly, with the slow
 * side forcing backpressure. If the forwarder buffered, the process would hold the body;
 * the assertion is deliberately loose (a fraction of the body size), not a tight budget.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { send, startGateway, startUpstream, type Gateway, type Upstream } from './harness.js';

const BODY_BYTES = 50 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);
/** Growth allowed while 50 MiB passes through: well under the body, well above noise. */
const MEMORY_LIMIT = BODY_BYTES * 0.6;

// Sampling live memory needs garbage gone first, or the chunks already freed but not yet
// collected look like buffering; this makes `gc` available without a command-line flag.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

let upstream: Upstream | undefined;
let gateway: Gateway | undefined;
afterEach(async () => {
  await gateway?.close();
  await upstream?.close();
  gateway = upstream = undefined;
});

/** A body of `bytes` bytes made of one reused chunk, produced only as fast as it is read. */
function generated(bytes: number): Readable {
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, CHUNK.length);
      left -= n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

/** A sink that is slower than loopback, so the producer has to wait for it; counts and hashes. */
function slowSink(): { sink: Writable; result: () => { bytes: number; sha256: string } } {
  const hash = createHash('sha256');
  let bytes = 0;
  let calls = 0;
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      hash.update(chunk);
      if (++calls % 8 === 0) setTimeout(done, 1);
      else done();
    },
  });
  return { sink, result: () => ({ bytes, sha256: hash.digest('hex') }) };
}

function expectedSha256(bytes: number): string {
  const hash = createHash('sha256');
  for (let left = bytes; left > 0; left -= CHUNK.length) hash.update(left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left));
  return hash.digest('hex');
}

/** Samples live memory (after a collection) while `work` runs; returns the largest growth over the start. */
async function peakGrowth(work: () => Promise<void>): Promise<number> {
  const live = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  collectGarbage();
  const start = live();
  let peak = start;
  const timer = setInterval(() => {
    collectGarbage();
    // Freed buffer memory is released by a background sweeper; read after it has had a turn.
    setImmediate(() => (peak = Math.max(peak, live())));
  }, 250);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return peak - start;
}

describe('forwarder: streaming', () => {
  it('streams a 50 MiB download to a slow client without holding it in memory', async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY_BYTES });
      generated(BODY_BYTES).pipe(res);
    });
    gateway = await startGateway({ upstream: upstream.url, preserveHost: false });
    const url = `${gateway.url}/big`;
    const { sink, result } = slowSink();
    let status = 0;
    const growth = await peakGrowth(
      () =>
        new Promise<void>((resolve, reject) => {
          http
            .get(url, { agent: false }, (res) => {
              status = res.statusCode ?? 0;
              pipeline(res, sink).then(resolve, reject);
            })
            .on('error', reject);
        }),
    );
    expect(status).toBe(200);
    expect(result()).toEqual({ bytes: BODY_BYTES, sha256: expectedSha256(BODY_BYTES) });
    expect(growth).toBeLessThan(MEMORY_LIMIT);
  });

  it('streams a 50 MiB chunked upload to a slow upstream without holding it in memory', async () => {
    let received: { bytes: number; sha256: string } | undefined;
    upstream = await startUpstream((req, res) => {
      const { sink, result } = slowSink();
      pipeline(req, sink).then(
        () => {
          received = result();
          res.end('stored');
        },
        () => res.destroy(),
      );
    });
    gateway = await startGateway({ upstream: upstream.url, preserveHost: false });
    const url = `${gateway.url}/upload`;
    let replyBody = '';
    const growth = await peakGrowth(async () => {
      const reply = await send(url, { method: 'PUT', headers: ['Content-Type', 'application/octet-stream'], body: generated(BODY_BYTES) });
      expect(reply.status).toBe(200);
      replyBody = reply.body.toString();
    });
    expect(replyBody).toBe('stored');
    expect(received).toEqual({ bytes: BODY_BYTES, sha256: expectedSha256(BODY_BYTES) });
    expect(growth).toBeLessThan(MEMORY_LIMIT);
  });

  it('streams an upload with Content-Length and passes the length on', async () => {
    const size = 5 * 1024 * 1024 + 17;
    let seen: { length?: string; bytes: number } | undefined;
    upstream = await startUpstream((req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        seen = { length: req.headers['content-length'], bytes };
        res.end();
      });
    });
    gateway = await startGateway({ upstream: upstream.url, preserveHost: false });
    const reply = await send(`${gateway.url}/upload`, { method: 'POST', headers: ['Content-Length', String(size)], body: generated(size) });
    expect(reply.status).toBe(200);
    expect(seen).toEqual({ length: String(size), bytes: size });
  });
});
