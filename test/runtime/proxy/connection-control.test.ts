/**
 * Per-route connection control against real upstreams on port 0: connection reuse proven by
 * counting the upstream's TCP connections, the pool size, retries of idempotent requests
 * after connection errors only, and each of the three timeouts.
 */
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../runtime/config/schema.js';
import { closeServer, deadPort, listen, send } from './harness.js';
import { routeGatewaysPerTest, type RouteGateway } from './route-harness.js';

const { cleanups, gateway } = routeGatewaysPerTest();

/** An HTTP upstream that counts the TCP connections it accepts and the requests it serves. */
async function countingUpstream(handler: http.RequestListener = (req, res) => res.end(`${req.method} ${req.url}`)) {
  const stats = { connections: 0, requests: 0 };
  const server = http.createServer((req, res) => {
    stats.requests++;
    handler(req, res);
  });
  server.on('connection', () => stats.connections++);
  const port = await listen(server);
  cleanups.push(() => closeServer(server));
  return { url: `http://127.0.0.1:${port}`, port, stats };
}

/** A raw TCP upstream: `onConnection` decides what each accepted connection gets. */
async function rawUpstream(onConnection: (socket: net.Socket, index: number) => void) {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onConnection(socket, sockets.length);
  });
  const port = await listen(server);
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await closeServer(server);
  });
  return { url: `http://127.0.0.1:${port}`, port, sockets };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

function timeouts(gw: RouteGateway): number {
  return gw.metrics.read('upstreamTimeouts', { Route: 'app' });
}

describe('connection reuse', () => {
  it('with keepAlive on (the default), sequential requests share one upstream connection', async () => {
    const up = await countingUpstream();
    const gw = await gateway({ upstream: up.url });
    expect(gw.route.connection).toMatchObject({ keepAlive: true });
    for (let i = 0; i < 10; i++) expect((await send(`${gw.url}/n/${i}`)).body.toString()).toBe(`GET /n/${i}`);
    expect(up.stats.requests).toBe(10);
    expect(up.stats.connections).toBe(1);
  });

  it('with keepAlive off, every request opens its own upstream connection and asks to close it', async () => {
    const closeAsked: (string | undefined)[] = [];
    const up = await countingUpstream((req, res) => {
      closeAsked.push(req.headers.connection);
      res.end('ok');
    });
    const gw = await gateway({ upstream: up.url, connection: { keepAlive: false } });
    for (let i = 0; i < 10; i++) expect((await send(`${gw.url}/n/${i}`)).status).toBe(200);
    expect(up.stats.requests).toBe(10);
    expect(up.stats.connections).toBe(10);
    expect(closeAsked.every((v) => v === 'close')).toBe(true);
  });

  it('never opens more upstream connections than poolSize, however many requests wait', async () => {
    const up = await countingUpstream((req, res) => setTimeout(() => res.end(req.url), 20));
    const gw = await gateway({ upstream: up.url, connection: { poolSize: 3 } });
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => send(`${gw.url}/p/${i}`)));
    replies.forEach((r, i) => expect(r.body.toString()).toBe(`/p/${i}`));
    expect(up.stats.connections).toBe(3);
  });

  it('validates the connection options, every error at once', () => {
    const r = validateConfig({
      routes: [
        {
          id: 'a',
          upstream: 'http://10.0.0.5:8080',
          connection: { keepAlive: 'yes', poolSize: 0, retries: 9, connectTimeoutMs: 0, responseTimeoutMs: -1, idleTimeoutMs: 1.5, maxRequestBodyBytes: '1G', pipelining: 4 },
        },
      ],
    });
    expect(r.ok ? [] : r.errors).toEqual([
      `routes[0].connection: option 'pipelining' is not known (known: connectTimeoutMs, responseTimeoutMs, idleTimeoutMs, keepAlive, poolSize, retries, maxRequestBodyBytes)`,
      `routes[0].connection: option 'connectTimeoutMs' must be an integer from 1 to 600000, got 0`,
      `routes[0].connection: option 'responseTimeoutMs' must be an integer from 0 to 86400000, got -1`,
      `routes[0].connection: option 'idleTimeoutMs' must be an integer from 0 to 86400000, got 1.5`,
      `routes[0].connection: option 'keepAlive' must be true or false, got "yes"`,
      `routes[0].connection: option 'poolSize' must be an integer from 1 to 4096, got 0`,
      `routes[0].connection: option 'retries' must be an integer from 0 to 5, got 9`,
      `routes[0].connection: option 'maxRequestBodyBytes' must be an integer from 0 to 9007199254740991, got "1G"`,
    ]);
  });
});

describe('retries', () => {
  it('retries an idempotent request without a body after the connection broke before any answer', async () => {
    const up = await rawUpstream((socket, n) => socket.once('data', () => (n === 1 ? socket.destroy() : socket.end(OK))));
    const gw = await gateway({ upstream: up.url });
    const reply = await send(`${gw.url}/`, { method: 'DELETE' });
    expect(reply.status).toBe(200);
    expect(up.sockets).toHaveLength(2);
    expect(gw.metrics.read('upstreamErrors', { Route: 'app' })).toBe(0);
  });

  it('never retries a POST: the application may have acted on it', async () => {
    const up = await rawUpstream((socket) => socket.once('data', () => socket.destroy()));
    const gw = await gateway({ upstream: up.url, connection: { retries: 3 } });
    const reply = await send(`${gw.url}/orders`, { method: 'POST', body: 'qty=1' });
    expect(reply.status).toBe(502);
    expect(up.sockets).toHaveLength(1);
    expect(gw.metrics.read('upstreamErrors', { Route: 'app' })).toBe(1);
  });

  it('never retries a request with a body, even an idempotent PUT, because the body was already sent', async () => {
    const up = await rawUpstream((socket) => socket.once('data', () => socket.destroy()));
    const gw = await gateway({ upstream: up.url, connection: { retries: 3 } });
    expect((await send(`${gw.url}/doc`, { method: 'PUT', body: 'v2' })).status).toBe(502);
    expect(up.sockets).toHaveLength(1);
  });

  it('stops after the configured number of retries', async () => {
    const up = await rawUpstream((socket) => socket.once('data', () => socket.destroy()));
    const gw = await gateway({ upstream: up.url, connection: { retries: 3 } });
    expect((await send(`${gw.url}/`)).status).toBe(502);
    expect(up.sockets).toHaveLength(4);
  });

  it('does not retry at all with retries 0', async () => {
    const up = await rawUpstream((socket, n) => socket.once('data', () => (n === 1 ? socket.destroy() : socket.end(OK))));
    const gw = await gateway({ upstream: up.url, connection: { retries: 0 } });
    expect((await send(`${gw.url}/`)).status).toBe(502);
    expect(up.sockets).toHaveLength(1);
  });

  it('retries a refused connection for a GET, so an upstream coming back is reached', async () => {
    const port = await deadPort();
    const gw = await gateway({ upstream: `http://127.0.0.1:${port}`, connection: { retries: 2 } });
    expect((await send(`${gw.url}/`)).status).toBe(502);
    // Nothing listened, three attempts, one failure reported.
    expect(gw.logs.filter((l) => l.msg === 'upstream error')).toMatchObject([{ kind: 'connect' }]);
  });

  it('never retries after the upstream began to answer, nor after a timeout', async () => {
    // Headers then death mid-body: the client's response is cut, not repeated.
    const midBody = await rawUpstream((socket) =>
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf');
        setTimeout(() => socket.destroy(), 20);
      }),
    );
    const gw1 = await gateway({ upstream: midBody.url, connection: { retries: 3 } });
    await expect(send(`${gw1.url}/`)).rejects.toThrow();
    expect(midBody.sockets).toHaveLength(1);

    const silent = await rawUpstream(() => undefined);
    const gw2 = await gateway({ upstream: silent.url, connection: { retries: 3, responseTimeoutMs: 150 } });
    expect((await send(`${gw2.url}/`)).status).toBe(504);
    expect(silent.sockets).toHaveLength(1);
  });
});

describe('timeouts', () => {
  it('connect timeout: an upstream that accepts TCP but never completes the TLS handshake gives 504', async () => {
    const up = await rawUpstream(() => undefined);
    const gw = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { insecureSkipVerify: true }, connection: { connectTimeoutMs: 150, responseTimeoutMs: 60_000 } });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(504);
    expect(gw.logs.filter((l) => l.msg === 'upstream error')).toMatchObject([{ kind: 'timeout', code: 'UND_ERR_CONNECT_TIMEOUT' }]);
    expect(timeouts(gw)).toBe(1);
  });

  it('response timeout: an upstream that reads the request but sends no head in time gives 504', async () => {
    const up = await rawUpstream(() => undefined);
    const gw = await gateway({ upstream: up.url, connection: { responseTimeoutMs: 150, idleTimeoutMs: 60_000 } });
    const reply = await send(`${gw.url}/report`);
    expect(reply.status).toBe(504);
    expect(up.sockets).toHaveLength(1);
    expect(gw.logs.filter((l) => l.msg === 'upstream error')).toMatchObject([{ kind: 'timeout', code: 'UND_ERR_HEADERS_TIMEOUT' }]);
    expect(timeouts(gw)).toBe(1);
  });

  it('a slow but steady answer within the response timeout is relayed', async () => {
    const up = await countingUpstream((_req, res) => setTimeout(() => res.end('late but fine'), 100));
    const gw = await gateway({ upstream: up.url, connection: { responseTimeoutMs: 2000 } });
    expect((await send(`${gw.url}/`)).body.toString()).toBe('late but fine');
  });

  it('idle timeout: a body that stops flowing is cut after the idle time, while a body that keeps flowing is not', async () => {
    const stalls = await rawUpstream((socket) =>
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst bytes')),
    );
    const gw = await gateway({ upstream: stalls.url, connection: { responseTimeoutMs: 60_000, idleTimeoutMs: 150 } });
    await expect(send(`${gw.url}/`)).rejects.toThrow();
    expect(gw.logs.filter((l) => l.msg === 'upstream error')).toMatchObject([{ kind: 'timeout', code: 'UND_ERR_BODY_TIMEOUT' }]);

    // Chunks every 50 ms for longer than the idle time in total: never idle, so never cut.
    const steady = await countingUpstream((_req, res) => {
      let n = 0;
      const timer = setInterval(() => {
        res.write(`chunk ${n}\n`);
        if (++n === 8) {
          clearInterval(timer);
          res.end();
        }
      }, 50);
    });
    const gw2 = await gateway({ upstream: steady.url, connection: { idleTimeoutMs: 150 } });
    const reply = await send(`${gw2.url}/`);
    expect(reply.body.toString().split('\n').filter(Boolean)).toHaveLength(8);
  });

  it('responseTimeoutMs 0 turns the response timeout off (long polls)', async () => {
    const up = await countingUpstream((_req, res) => setTimeout(() => res.end('done'), 300));
    const gw = await gateway({ upstream: up.url, connection: { responseTimeoutMs: 0, idleTimeoutMs: 0 } });
    expect((await send(`${gw.url}/`)).body.toString()).toBe('done');
  });
});
