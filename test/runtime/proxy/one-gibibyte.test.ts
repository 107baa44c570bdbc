/**
 * 1 GiB up and 1 GiB down through a route's forwarder (built from config, body limit and
 * counting included), generated on the fly and only counted and hashed at the far end. If
 * anything on the path buffered, the process would hold a sizeable part of a gibibyte; the
 * bounds below are a small fraction of it.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, listen } from './harness.js';
import { startRouteGateway, type RouteGateway } from './route-harness.js';

const GIB = 1024 * 1024 * 1024;
/** Live memory (heap and buffers) may grow by this much while 1 GiB passes: 1/16 of the body. */
const LIVE_LIMIT = 64 * 1024 * 1024;
/** Resident set growth allowed: allocator slack included, still a quarter of the body. */
const RSS_LIMIT = 256 * 1024 * 1024;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A patterned 64 KiB block, so a reordering or a lost chunk changes the hash. */
const BLOCK = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 31 + 7) & 0xff));

function generated(bytes: number): Readable {
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, BLOCK.length);
      left -= n;
      this.push(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n));
    },
  });
}

function counter(): { sink: Writable; result: () => { bytes: number; sha256: string } } {
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      hash.update(chunk);
      done();
    },
  });
  return { sink, result: () => ({ bytes, sha256: hash.digest('hex') }) };
}

let expected: string | undefined;
function expectedSha256(): string {
  if (!expected) {
    const hash = createHash('sha256');
    for (let left = GIB; left > 0; left -= BLOCK.length) hash.update(BLOCK);
    expected = hash.digest('hex');
  }
  return expected;
}

/** Largest growth of live memory and of RSS over the start, sampled while `work` runs. */
async function peakGrowth(work: () => Promise<void>): Promise<{ live: number; rss: number }> {
  const live = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  collectGarbage();
  const start = { live: live(), rss: process.memoryUsage().rss };
  const peak = { ...start };
  const timer = setInterval(() => {
    collectGarbage();
    setImmediate(() => {
      peak.live = Math.max(peak.live, live());
      peak.rss = Math.max(peak.rss, process.memoryUsage().rss);
    });
  }, 250);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return { live: peak.live - start.live, rss: peak.rss - start.rss };
}

async function gatewayTo(handler: http.RequestListener): Promise<RouteGateway> {
  const server = http.createServer(handler);
  const port = await listen(server);
  cleanups.push(() => closeServer(server));
  const gw = await startRouteGateway({ upstream: `http://127.0.0.1:${port}`, connection: { maxRequestBodyBytes: 2 * GIB } });
  cleanups.push(() => gw.close());
  return gw;
}

describe('1 GiB through the proxy', () => {
  it('uploads 1 GiB (chunked, counted against the route limit as it streams) with flat memory', { timeout: 180_000 }, async () => {
    let received: { bytes: number; sha256: string } | undefined;
    const gw = await gatewayTo((req, res) => {
      const { sink, result } = counter();
      pipeline(req, sink).then(
        () => {
          received = result();
          res.end('stored');
        },
        () => res.destroy(),
      );
    });
    let status = 0;
    const growth = await peakGrowth(
      () =>
        new Promise<void>((resolve, reject) => {
          const req = http.request(`${gw.url}/upload`, { method: 'PUT', agent: false, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
            status = res.statusCode ?? 0;
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          generated(GIB).pipe(req);
        }),
    );
    expect(status).toBe(200);
    expect(received).toEqual({ bytes: GIB, sha256: expectedSha256() });
    expect(growth.live).toBeLessThan(LIVE_LIMIT);
    expect(growth.rss).toBeLessThan(RSS_LIMIT);
  });

  it('uploads 1 GiB with a declared Content-Length with flat memory', { timeout: 180_000 }, async () => {
    let received: { bytes: number; length?: string } | undefined;
    const gw = await gatewayTo((req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        received = { bytes, length: req.headers['content-length'] };
        res.end('stored');
      });
    });
    const growth = await peakGrowth(
      () =>
        new Promise<void>((resolve, reject) => {
          const req = http.request(`${gw.url}/upload`, { method: 'POST', agent: false, headers: { 'content-length': GIB } }, (res) => {
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          generated(GIB).pipe(req);
        }),
    );
    expect(received).toEqual({ bytes: GIB, length: String(GIB) });
    expect(growth.live).toBeLessThan(LIVE_LIMIT);
    expect(growth.rss).toBeLessThan(RSS_LIMIT);
  });

  it('downloads 1 GiB with flat memory', { timeout: 180_000 }, async () => {
    const gw = await gatewayTo((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': GIB });
      generated(GIB).pipe(res);
    });
    const { sink, result } = counter();
    let status = 0;
    const growth = await peakGrowth(
      () =>
        new Promise<void>((resolve, reject) => {
          http
            .get(`${gw.url}/big.iso`, { agent: false }, (res) => {
              status = res.statusCode ?? 0;
              pipeline(res, sink).then(resolve, reject);
            })
            .on('error', reject);
        }),
    );
    expect(status).toBe(200);
    expect(result()).toEqual({ bytes: GIB, sha256: expectedSha256() });
    expect(growth.live).toBeLessThan(LIVE_LIMIT);
    expect(growth.rss).toBeLessThan(RSS_LIMIT);
  });
});
