import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamErrorKind } from '../../../runtime/proxy/index.js';
import {
  CONTEXT,
  closeServer,
  deadPort,
  echoHeaders,
  echoed,
  listen,
  names,
  once,
  send,
  startGateway,
  startUpstream,
  values,
  type Gateway,
  type Upstream,
} from './harness.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function upstreamOf(handler: http.RequestListener): Promise<Upstream> {
  const up = await startUpstream(handler);
  cleanups.push(() => up.close());
  return up;
}

async function gatewayTo(upstream: string, extra: Partial<Parameters<typeof startGateway>[0]> = {}): Promise<Gateway> {
  const gw = await startGateway({ upstream, preserveHost: false, ...extra });
  cleanups.push(() => gw.close());
  return gw;
}

describe('forwarder: identity and forwarding headers', () => {
  it('injects the identity headers from the context', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await gatewayTo(up.url);
    const seen = echoed(await send(`${gw.url}/inbox`));
    for (const [name, value] of Object.entries(CONTEXT.identityHeaders)) expect(values(seen, name)).toEqual([value]);
  });

  it('strips client-sent identity headers in every spelling, so only the gateway can assert identity', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await gatewayTo(up.url);
    const seen = echoed(
      await send(`${gw.url}/`, {
        headers: [
          'X-Kanmon-User', 'mallory',
          'x-kanmon-user', 'mallory2',
          'X-KANMON-GROUPS', 'admins',
          'X-Kanmon-Auth', 'passkey+mtls',
          'X-Kanmon-Jwt', 'forged.jwt.value',
          'X-Kanmon-User-Id', 'u-0',
          'X-Kanmon-Not-Yet-Invented', 'x',
          'X_Kanmon_User', 'underscored',
        ],
      }),
    );
    const kanmon = names(seen).filter((n) => n.replace(/_/g, '-').startsWith('x-kanmon-'));
    expect(kanmon.sort()).toEqual(Object.keys(CONTEXT.identityHeaders).map((n) => n.toLowerCase()).sort());
    expect(values(seen, 'x-kanmon-user')).toEqual(['alice']);
    expect(values(seen, 'x-kanmon-groups')).toEqual(['staff,admins']);
    expect(values(seen, 'x-kanmon-jwt')).toEqual([CONTEXT.identityHeaders['X-Kanmon-Jwt']]);
  });

  it('with no identity in the context, passes no x-kanmon-* header at all', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await startGateway({ upstream: up.url, preserveHost: false }, { ...CONTEXT, identityHeaders: {} });
    cleanups.push(() => gw.close());
    const seen = echoed(await send(`${gw.url}/`, { headers: ['X-Kanmon-User', 'mallory'] }));
    expect(names(seen).filter((n) => n.startsWith('x-kanmon-'))).toEqual([]);
  });

  it('replaces a client-sent X-Forwarded-For and drops Forwarded', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await gatewayTo(up.url);
    const seen = echoed(await send(`${gw.url}/`, { headers: ['X-Forwarded-For', '6.6.6.6', 'Forwarded', 'for=6.6.6.6;proto=https'] }));
    expect(values(seen, 'x-forwarded-for')).toEqual([CONTEXT.clientIp]);
    expect(values(seen, 'x-forwarded-proto')).toEqual(['https']);
    expect(values(seen, 'x-forwarded-host')).toEqual([CONTEXT.publicHost]);
    expect(values(seen, 'forwarded')).toEqual([]);
  });

  it("sends the upstream's host:port as Host by default and the client's Host with preserveHost", async () => {
    const up = await upstreamOf(echoHeaders());
    const plain = await gatewayTo(up.url);
    expect(values(echoed(await send(`${plain.url}/`)), 'host')).toEqual([`127.0.0.1:${up.port}`]);
    const preserving = await gatewayTo(up.url, { preserveHost: true });
    expect(values(echoed(await send(`${preserving.url}/`)), 'host')).toEqual([CONTEXT.publicHost]);
  });

  it('passes method, path and query unchanged', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await gatewayTo(up.url);
    const reply = await send(`${gw.url}/a/b%20c?x=1&y=%E9%96%A2`, { method: 'DELETE' });
    expect(JSON.parse(reply.body.toString())).toMatchObject({ method: 'DELETE', url: '/a/b%20c?x=1&y=%E9%96%A2' });
  });

  it('puts request paths under the path an upstream URL carries', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await gatewayTo(`${up.url}/portal/`);
    expect(JSON.parse((await send(`${gw.url}/`)).body.toString()).url).toBe('/portal/');
    expect(JSON.parse((await send(`${gw.url}/mail/inbox?page=2`)).body.toString()).url).toBe('/portal/mail/inbox?page=2');
  });

  it('drops hop-by-hop request headers, including those named by Connection', async () => {
    const up = await upstreamOf(echoHeaders());
    const gw = await gatewayTo(up.url);
    const seen = echoed(
      await send(`${gw.url}/`, {
        headers: ['Connection', 'keep-alive, X-Hop', 'X-Hop', 'secret', 'Keep-Alive', 'timeout=9', 'TE', 'trailers', 'Proxy-Authorization', 'Basic eDp5', 'X-End-To-End', 'kept'],
      }),
    );
    expect(values(seen, 'x-hop')).toEqual([]);
    expect(values(seen, 'keep-alive')).toEqual([]);
    expect(values(seen, 'te')).toEqual([]);
    expect(values(seen, 'proxy-authorization')).toEqual([]);
    expect(values(seen, 'x-end-to-end')).toEqual(['kept']);
  });
});

describe('forwarder: responses', () => {
  it('keeps several Set-Cookie headers as separate headers, in order', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, ['Set-Cookie', 'a=1; Path=/; HttpOnly', 'Set-Cookie', 'b=2; Path=/app', 'Set-Cookie', 'c=3; Max-Age=0', 'Content-Length', '2']);
      res.end('ok');
    });
    const gw = await gatewayTo(up.url);
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(200);
    expect(values(reply.rawHeaders, 'set-cookie')).toEqual(['a=1; Path=/; HttpOnly', 'b=2; Path=/app', 'c=3; Max-Age=0']);
    expect(reply.body.toString()).toBe('ok');
  });

  it('drops hop-by-hop response headers, including those the upstream names in Connection', async () => {
    // A raw upstream, so it can send exactly the headers a misbehaving or chatty backend would.
    const raw = net.createServer((socket) => {
      socket.once('data', () => {
        socket.write(
          'HTTP/1.1 203 Custom Reason\r\n' +
            'Connection: keep-alive, X-Internal-Hop\r\n' +
            'X-Internal-Hop: do-not-forward\r\n' +
            'Keep-Alive: timeout=30\r\n' +
            'Proxy-Authenticate: Basic realm="inner"\r\n' +
            'X-App: kept\r\n' +
            'Content-Length: 5\r\n\r\nhello',
        );
      });
    });
    const port = await listen(raw);
    cleanups.push(() => closeServer(raw));
    const gw = await gatewayTo(`http://127.0.0.1:${port}`);
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(203);
    expect(values(reply.rawHeaders, 'x-internal-hop')).toEqual([]);
    expect(values(reply.rawHeaders, 'proxy-authenticate')).toEqual([]);
    expect(values(reply.rawHeaders, 'keep-alive')).not.toContain('timeout=30');
    expect(values(reply.rawHeaders, 'x-app')).toEqual(['kept']);
    expect(reply.body.toString()).toBe('hello');
  });

  it('relays error statuses from the upstream as they are', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such page');
    });
    const gw = await gatewayTo(up.url);
    const reply = await send(`${gw.url}/missing`);
    expect(reply.status).toBe(404);
    expect(reply.body.toString()).toBe('no such page');
  });

  it('tells onUpstreamResponse the final status and the time to headers, for metrics', async () => {
    const up = await upstreamOf((req, res) => {
      res.writeHead(req.url === '/fail' ? 503 : 200);
      res.end('x');
    });
    const seen: Array<[number, number]> = [];
    const gw = await gatewayTo(up.url, { onUpstreamResponse: (status, ms) => seen.push([status, ms]) });
    await send(`${gw.url}/ok`);
    await send(`${gw.url}/fail`);
    expect(seen.map(([status]) => status)).toEqual([200, 503]);
    for (const [, ms] of seen) expect(ms).toBeGreaterThanOrEqual(0);
  });

  it('answers HEAD without a body and keeps the upstream Content-Length', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-length': 1234 });
      res.end();
    });
    const gw = await gatewayTo(up.url);
    const reply = await send(`${gw.url}/`, { method: 'HEAD' });
    expect(values(reply.rawHeaders, 'content-length')).toEqual(['1234']);
    expect(reply.body.length).toBe(0);
  });

  it('serves many requests over the pooled connections', async () => {
    let connections = 0;
    const up = await upstreamOf((req, res) => res.end(req.url));
    up.server.on('connection', () => connections++);
    const gw = await gatewayTo(up.url, { connections: 4 });
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => send(`${gw.url}/n/${i}`)));
    replies.forEach((r, i) => expect(r.body.toString()).toBe(`/n/${i}`));
    expect(connections).toBeLessThanOrEqual(4);
  });
});

describe('forwarder: upstream failures', () => {
  it('answers 502 with a generic page when the upstream is down, without naming it, and reports a connect error', async () => {
    const port = await deadPort();
    const reported: { kind: UpstreamErrorKind; url?: string }[] = [];
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, { onError: (kind, req) => reported.push({ kind, url: req.url }) });
    const reply = await send(`${gw.url}/mail`);
    expect(reply.status).toBe(502);
    const text = reply.body.toString();
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toContain(String(port));
    expect(text).not.toMatch(/ECONNREFUSED/);
    expect(text).toContain(CONTEXT.requestId);
    expect(reported).toEqual([{ kind: 'connect', url: '/mail' }]);
  });

  it('answers 504 when the upstream accepts but never answers, after the configured timeout', async () => {
    const held: net.Socket[] = [];
    const hung = net.createServer((socket) => held.push(socket)); // accepts and stays silent
    const port = await listen(hung);
    cleanups.push(async () => {
      for (const socket of held) socket.destroy();
      await closeServer(hung);
    });
    const kinds: UpstreamErrorKind[] = [];
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, { timeoutMs: 200, onError: (kind) => kinds.push(kind) });
    const reply = await send(`${gw.url}/slow`);
    expect(reply.status).toBe(504);
    expect(reply.body.toString()).not.toContain(String(port));
    expect(kinds).toEqual(['timeout']);
  });

  it('renders failures with the given error page', async () => {
    const port = await deadPort();
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, {
      errorPage: (status, ctx) => ({ contentType: 'text/html; charset=utf-8', body: `<h1>${status}</h1><p>${ctx.requestId}</p>` }),
    });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(502);
    expect(values(reply.rawHeaders, 'content-type')).toEqual(['text/html; charset=utf-8']);
    expect(reply.body.toString()).toBe(`<h1>502</h1><p>${CONTEXT.requestId}</p>`);
  });

  it('reports a reset and answers 502 when the upstream drops the connection before answering', async () => {
    const rude = net.createServer((socket) => socket.once('data', () => socket.destroy()));
    const port = await listen(rude);
    cleanups.push(() => closeServer(rude));
    const kinds: UpstreamErrorKind[] = [];
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, { onError: (kind) => kinds.push(kind) });
    const reply = await send(`${gw.url}/`, { method: 'POST', body: 'x' });
    expect(reply.status).toBe(502);
    expect(kinds).toEqual(['reset']);
  });

  it('replays a GET once on a fresh connection when the first connection breaks before any answer', async () => {
    let accepted = 0;
    const flaky = net.createServer((socket) => {
      const first = ++accepted === 1;
      socket.once('data', () => {
        if (first) socket.destroy();
        else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      });
    });
    const port = await listen(flaky);
    cleanups.push(() => closeServer(flaky));
    const kinds: UpstreamErrorKind[] = [];
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, { onError: (kind) => kinds.push(kind) });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe('ok');
    expect(kinds).toEqual([]);
    expect(accepted).toBe(2);
  });

  it('cuts the client response short when the upstream dies mid-body', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-length': 1_000_000 });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.destroy(), 20);
    });
    const gw = await gatewayTo(up.url);
    const outcome = await new Promise<string>((resolve) => {
      http.get(`${gw.url}/`, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve('complete'));
        res.on('aborted', () => resolve('aborted'));
        res.on('error', () => resolve('aborted'));
      });
    });
    expect(outcome).toBe('aborted');
  });
});

describe('forwarder: closing', () => {
  it('lets in-flight exchanges finish, but cuts one that outlives the grace period', async () => {
    const held: http.ServerResponse[] = [];
    const up = await upstreamOf((req, res) => {
      if (req.url === '/slow') held.push(res); // never answered
      else setTimeout(() => res.end('done'), 50);
    });
    const gw = await startGateway({ upstream: up.url, preserveHost: false, closeGraceMs: 300 });
    cleanups.push(() => gw.close());
    const quick = send(`${gw.url}/quick`);
    const slow = send(`${gw.url}/slow`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    await gw.forwarder.close();
    expect((await quick).body.toString()).toBe('done');
    const cut = await slow;
    expect(cut === undefined || cut.status === 502).toBe(true);
    for (const res of held) res.destroy();
  });
});

describe('forwarder: client going away', () => {
  it('aborts the upstream request when the client disconnects while waiting for the answer', async () => {
    let arrive!: (req: http.IncomingMessage) => void;
    const arrived = new Promise<http.IncomingMessage>((resolve) => (arrive = resolve));
    const up = await upstreamOf((req) => arrive(req)); // never answers
    const gw = await gatewayTo(up.url);
    const client = http.get(`${gw.url}/wait`, { agent: false });
    client.on('error', () => {});
    const upstreamReq = await arrived;
    const upstreamGone = once(upstreamReq.socket, 'close');
    client.destroy();
    await upstreamGone;
  });

  it('stops the upstream download when the client disconnects mid-body', async () => {
    let written = 0;
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((resolve) => (closed = resolve));
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => {
        res.write(Buffer.alloc(16 * 1024));
        written++;
      }, 5);
      res.on('close', () => {
        clearInterval(timer);
        closed();
      });
    });
    const gw = await gatewayTo(up.url);
    await new Promise<void>((resolve) => {
      const req = http.get(`${gw.url}/stream`, { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
    });
    await upstreamClosed;
    expect(written).toBeGreaterThan(0);
  });
});
