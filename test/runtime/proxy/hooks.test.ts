/**
 * The forwarder's side of the contracts in runtime/proxy/hooks.ts, with a RouteRewriter and
 * ExchangeHooks written here against a real upstream: where each is applied, in which order,
 * and what intercepting or inspecting a response does to the exchange.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { Transform } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createForwarder, type ExchangeHooks, type ForwarderOptions, type RouteRewriter } from '../../../runtime/proxy/index.js';
import { CONTEXT, closeServer, echoed, listen, send, values } from './harness.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function upstream(handler: http.RequestListener) {
  const server = http.createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  const port = await listen(server);
  cleanups.push(() => closeServer(server));
  return { url: `http://127.0.0.1:${port}`, server, connections: () => connections };
}

/** A gateway whose forwarder has `opts` and passes each request the hooks `hooksFor` returns. */
async function gateway(opts: ForwarderOptions, hooksFor: (req: IncomingMessage, res: ServerResponse) => ExchangeHooks | undefined = () => undefined) {
  const forwarder = createForwarder(opts);
  const server = http.createServer((req, res) => forwarder.forward(req, res, CONTEXT, hooksFor(req, res)));
  server.on('upgrade', (req, socket, head) => forwarder.upgrade(req, socket, head, CONTEXT, hooksFor(req, undefined as unknown as ServerResponse)));
  const port = await listen(server);
  cleanups.push(async () => {
    server.closeAllConnections();
    await forwarder.close();
    await closeServer(server);
  });
  return { url: `http://127.0.0.1:${port}`, port, forwarder };
}

function echo(req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Upper-cases the body; used as a rewriter's body transform. */
function upperCase(): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      done(null, chunk.toString('latin1').toUpperCase());
    },
  });
}

interface SeenHead {
  status: number;
  headers: string[];
  request: { method: string; target: string; publicOrigin?: string; requestId?: string };
}

/** A rewriter that strips /app, adds a request header, and upper-cases text bodies. */
function testRewriter(seen: SeenHead[] = []): RouteRewriter {
  return {
    requestTarget: (target) => (target.startsWith('/app/') ? target.slice(4) : target),
    requestHeaders: (headers) => [...headers, 'X-Rewritten', 'yes', 'Cookie', 'from-rewriter=1'],
    responseHead(status, headers, request) {
      seen.push({ status, headers, request });
      const kept: string[] = [];
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!.toLowerCase();
        if (name !== 'content-length' && name !== 'server') kept.push(headers[i]!, headers[i + 1]!);
      }
      const isText = headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-type' && headers[i + 1]!.startsWith('text/'));
      return isText ? { headers: [...kept, 'X-Body-Rewritten', '1'], body: upperCase() } : { headers: [...headers, 'X-Body-Rewritten', '0'] };
    },
  };
}

describe('forwarder with a RouteRewriter', () => {
  it('rewrites the request target before the upstream base path and adds request headers after the gateway rules', async () => {
    const up = await upstream(echo);
    const gw = await gateway({ upstream: `${up.url}/base`, preserveHost: false, rewriter: testRewriter() });
    const reply = await send(`${gw.url}/app/page?x=1`, { headers: ['X-Kanmon-User', 'mallory'] });
    const seen = JSON.parse(reply.body.toString()) as { url: string };
    expect(seen.url).toBe('/base/page?x=1');
    const headers = echoed(reply);
    expect(values(headers, 'x-rewritten')).toEqual(['yes']);
    // The gateway's own rules ran first: the spoofed identity is gone, the real one is there.
    expect(values(headers, 'x-kanmon-user')).toEqual(['alice']);
  });

  it('passes the response head through the rewriter with the request it answers, and pipes the body through its transform', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': 25, server: 'intranet/1.0' });
      res.end('<p>hello from upstream</p>'.slice(0, 25));
    });
    const seen: SeenHead[] = [];
    const gw = await gateway({ upstream: up.url, preserveHost: false, rewriter: testRewriter(seen) });
    const reply = await send(`${gw.url}/app/index.html`, { method: 'GET' });
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe('<P>HELLO FROM UPSTREAM</P'.slice(0, 25));
    expect(values(reply.rawHeaders, 'x-body-rewritten')).toEqual(['1']);
    expect(values(reply.rawHeaders, 'content-length')).toEqual([]);
    expect(values(reply.rawHeaders, 'server')).toEqual([]);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.request).toEqual({ method: 'GET', target: '/app/index.html', publicOrigin: `https://${CONTEXT.publicHost}`, requestId: CONTEXT.requestId });
  });

  it('streams a large rewritten body with backpressure', async () => {
    const size = 8 * 1024 * 1024;
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const block = Buffer.alloc(64 * 1024, 0x61);
      let left = size;
      const pump = () => {
        while (left > 0) {
          left -= block.length;
          if (!res.write(block)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const gw = await gateway({ upstream: up.url, preserveHost: false, rewriter: testRewriter() });
    const reply = await send(`${gw.url}/big.txt`);
    expect(reply.body.length).toBe(size);
    expect(reply.body.every((b) => b === 0x41)).toBe(true);
  });

  it('cuts the response when the body transform fails, instead of ending it as if complete', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part one ');
      setTimeout(() => res.end('part two'), 30);
    });
    const failing: RouteRewriter = {
      requestTarget: (t) => t,
      requestHeaders: (h) => h,
      responseHead: (_s, headers) => ({
        headers: headers.filter((_, i, a) => (i % 2 === 0 ? a[i]!.toLowerCase() !== 'content-length' : a[i - 1]!.toLowerCase() !== 'content-length')),
        body: new Transform({
          transform(chunk: Buffer, _enc, done) {
            if (chunk.toString().includes('two')) done(new Error('rule r1 failed'));
            else done(null, chunk);
          },
        }),
      }),
    };
    const gw = await gateway({ upstream: up.url, preserveHost: false, rewriter: failing });
    await expect(send(`${gw.url}/`)).rejects.toThrow();
  });
});

describe('forwarder with ExchangeHooks', () => {
  it('sets the hooks\' upstream headers last, replacing the client\'s and the rewriter\'s of the same name', async () => {
    const up = await upstream(echo);
    const gw = await gateway({ upstream: up.url, preserveHost: false, rewriter: testRewriter() }, () => ({ upstreamHeaders: ['Cookie', 'JSESSIONID=from-jar', 'Authorization', 'Basic YTpi'] }));
    const reply = await send(`${gw.url}/`, { headers: ['Cookie', 'browser=1', 'Authorization', 'Bearer client'] });
    const headers = echoed(reply);
    expect(values(headers, 'cookie')).toEqual(['JSESSIONID=from-jar']);
    expect(values(headers, 'authorization')).toEqual(['Basic YTpi']);
  });

  it('lets inspectResponse replace the response headers (Set-Cookie taken into a jar) before the client sees them', async () => {
    const up = await upstream((_req, res) => {
      res.setHeader('set-cookie', ['JSESSIONID=secret; Path=/', 'pref=1']);
      res.end('page');
    });
    const inspected: { status: number; headers: string[] }[] = [];
    const gw = await gateway({ upstream: up.url, preserveHost: false }, () => ({
      inspectResponse: (status, headers) => {
        inspected.push({ status, headers });
        return { kind: 'pass', headers: headers.filter((_, i, a) => (i % 2 === 0 ? a[i]!.toLowerCase() !== 'set-cookie' : a[i - 1]!.toLowerCase() !== 'set-cookie')) };
      },
    }));
    const reply = await send(`${gw.url}/`);
    expect(reply.body.toString()).toBe('page');
    expect(values(reply.rawHeaders, 'set-cookie')).toEqual([]);
    expect(values(inspected[0]!.headers, 'set-cookie')).toEqual(['JSESSIONID=secret; Path=/', 'pref=1']);
  });

  it('on intercept, discards the upstream answer, keeps the connection, and lets the hook answer the client (here by forwarding again)', async () => {
    let loggedIn = false;
    const up = await upstream((req, res) => {
      if (req.url === '/login') {
        loggedIn = true;
        return void res.end('logged in');
      }
      if (!loggedIn) {
        res.writeHead(302, { location: '/login', 'content-type': 'text/html', 'content-length': 2000 });
        return void res.end('x'.repeat(2000));
      }
      res.end(`content of ${req.url}`);
    });
    const forwardedAgain: string[] = [];
    const gw = await gateway({ upstream: up.url, preserveHost: false }, (req, res) => ({
      inspectResponse: (status, headers) => {
        if (status !== 302 || values(headers, 'location')[0] !== '/login') return { kind: 'pass' };
        return {
          kind: 'intercept',
          onIntercept: () => {
            // Sign in upstream (a request of our own), then forward the original request again.
            http.get(`${up.url}/login`, { agent: false }, (r) => {
              r.resume();
              r.on('end', () => {
                forwardedAgain.push(req.url!);
                gw.forwarder.forward(req, res, CONTEXT);
              });
            });
          },
        };
      },
    }));
    const reply = await send(`${gw.url}/docs/1`);
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe('content of /docs/1');
    expect(forwardedAgain).toEqual(['/docs/1']);
    // The drained 302 left its pooled connection reusable: the re-forward used it.
    expect(up.connections()).toBe(2); // one pooled connection + the sign-in's own
  });

  it('inspect-body: holds the head, decides on the collected body, and relays head and body unchanged on pass', async () => {
    const up = await upstream((req, res) => {
      const body = req.url === '/login-page' ? '<form id="legacy-login">…</form>' : '<p>normal page</p>';
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    const decided: string[] = [];
    const gw = await gateway({ upstream: up.url, preserveHost: false }, (_req, res) => ({
      inspectResponse: () => ({
        kind: 'inspect-body',
        maxBytes: 1024,
        decide: (body) => {
          decided.push(body.toString());
          if (!body.includes('legacy-login')) return { kind: 'pass' };
          return { kind: 'intercept', onIntercept: () => res.writeHead(409, { 'content-length': 11 }).end('intercepted') };
        },
      }),
    }));
    const normal = await send(`${gw.url}/normal`);
    expect(normal.status).toBe(200);
    expect(normal.body.toString()).toBe('<p>normal page</p>');
    expect(values(normal.rawHeaders, 'content-length')).toEqual([String(Buffer.byteLength('<p>normal page</p>'))]);
    const login = await send(`${gw.url}/login-page`);
    expect(login.status).toBe(409);
    expect(login.body.toString()).toBe('intercepted');
    expect(decided).toHaveLength(2);
  });

  it('inspect-body: a body larger than maxBytes is not decided on, but relayed whole', async () => {
    const big = 'y'.repeat(300_000);
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(big);
    });
    let decisions = 0;
    const gw = await gateway({ upstream: up.url, preserveHost: false }, () => ({
      inspectResponse: () => ({
        kind: 'inspect-body',
        maxBytes: 4096,
        decide: () => {
          decisions++;
          return { kind: 'pass' };
        },
      }),
    }));
    const reply = await send(`${gw.url}/`);
    expect(reply.body.toString()).toBe(big);
    expect(decisions).toBe(0);
  });

  it('applies the rewriter and the hooks\' headers to a WebSocket handshake too', async () => {
    const handshakes: IncomingMessage[] = [];
    const server = http.createServer();
    server.on('upgrade', (req, socket) => {
      handshakes.push(req);
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    });
    const port = await listen(server);
    cleanups.push(() => closeServer(server));
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}`, preserveHost: false, rewriter: testRewriter() }, () => ({ upstreamHeaders: ['Cookie', 'JSESSIONID=from-jar'] }));
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(gw.port, '127.0.0.1', () =>
        socket.write('GET /app/socket HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: browser=1\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
      );
      socket.on('data', () => undefined);
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
    expect(handshakes).toHaveLength(1);
    expect(handshakes[0]!.url).toBe('/socket');
    expect(handshakes[0]!.headers['x-rewritten']).toBe('yes');
    expect(handshakes[0]!.headers.cookie).toBe('JSESSIONID=from-jar');
  });
});
