import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildProxyV2Header,
  clientAddressOf,
  listenWithProxyProtocol,
  proxiedConnectionOf,
  type ProxyListenerOptions,
  type ProxyRefusalReason,
} from '../../../runtime/net/index.js';
import { makeSelfSignedCert, openTcp, requestsOverTls, startTls, waitForClose, writeByteByByte } from './proxy-test-support.js';

let cert: { cert: string; key: string };
beforeAll(() => {
  cert = makeSelfSignedCert();
});

interface Refusal {
  readonly reason: ProxyRefusalReason;
  readonly remote: string;
  readonly detail?: string;
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!().catch(() => undefined);
});

/** What the application sees of a request: the address it would log, and the raw peer. */
function describeRequest(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        client: clientAddressOf(req),
        peer: req.socket.remoteAddress,
        proxied: proxiedConnectionOf(req.socket) ?? null,
        url: req.url,
        bodyBytes: body.length,
        bodyLast: body.length ? body[body.length - 1] : null,
      }),
    );
  });
}

async function startGateway(
  kind: 'https' | 'http',
  opts: Partial<ProxyListenerOptions> = {},
): Promise<{ port: number; target: Server; listener: NetServer; refusals: Refusal[]; nextRefusal: () => Promise<Refusal>; close: () => Promise<void> }> {
  const target: Server = kind === 'https' ? createHttpsServer({ ...cert }, describeRequest) : createHttpServer(describeRequest);
  const refusals: Refusal[] = [];
  const waiters: Array<(r: Refusal) => void> = [];
  const listener = await listenWithProxyProtocol(target, {
    port: 0,
    host: '127.0.0.1',
    allowedNetworks: ['127.0.0.1/32'],
    headerTimeoutMs: 300,
    onRefused: (reason, remote, detail) => {
      const r: Refusal = { reason, remote, ...(detail ? { detail } : {}) };
      refusals.push(r);
      waiters.shift()?.(r);
    },
    ...opts,
  });
  const close = async () => {
    target.closeAllConnections();
    await new Promise<void>((resolve) => (listener.listening ? listener.close(() => resolve()) : resolve()));
  };
  closers.push(close);
  return {
    port: (listener.address() as AddressInfo).port,
    target,
    listener,
    refusals,
    nextRefusal: () => (refusals.length > waiters.length ? Promise.resolve(refusals[waiters.length]!) : new Promise((r) => waiters.push(r))),
    close,
  };
}

const v4Header = (address = '203.0.113.7', port = 51234) =>
  buildProxyV2Header({ source: { address, port }, destination: { address: '198.51.100.10', port: 443 } });

describe('listenWithProxyProtocol behind TLS', () => {
  it('hands the client address from the PROXY header to the https server', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    tcp.write(v4Header());
    const tls = await startTls(tcp, cert.cert);
    const [answer] = await requestsOverTls(tls, [{ path: '/hello' }]);
    const seen = JSON.parse(answer!.body);
    expect(seen.client).toBe('203.0.113.7');
    expect(seen.proxied).toEqual({ source: { address: '203.0.113.7', port: 51234 }, destination: { address: '198.51.100.10', port: 443 } });
    // The socket itself still says who really connected: the load balancer.
    expect(seen.peer).toMatch(/127\.0\.0\.1$/);
    expect(gw.refusals).toEqual([]);
  });

  it('keeps the connection alive across requests, including a large streamed body', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    tcp.write(v4Header('192.0.2.44'));
    const tls = await startTls(tcp, cert.cert);
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    big[big.length - 1] = 42;
    const answers = await requestsOverTls(tls, [{ path: '/1' }, { path: '/2', method: 'POST', body: big }, { path: '/3' }]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    const bodies = answers.map((a) => JSON.parse(a.body));
    expect(bodies.map((b) => b.url)).toEqual(['/1', '/2', '/3']);
    expect(bodies.every((b) => b.client === '192.0.2.44')).toBe(true);
    expect(bodies[1].bodyBytes).toBe(big.length);
    expect(bodies[1].bodyLast).toBe(42);
  });

  it('carries an IPv6 client address', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    tcp.write(buildProxyV2Header({ source: { address: '2001:db8:0:0:0:0:0:1', port: 40000 }, destination: { address: '2001:db8::443', port: 443 } }));
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/' }]);
    expect(JSON.parse(answer!.body).client).toBe('2001:db8::1');
  });

  it('shows an IPv4-mapped IPv6 client as IPv4', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    tcp.write(buildProxyV2Header({ source: { address: '::ffff:203.0.113.9', port: 1 }, destination: { address: '::ffff:198.51.100.1', port: 443 } }));
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/' }]);
    expect(JSON.parse(answer!.body).client).toBe('203.0.113.9');
  });

  it('uses the real peer address for a LOCAL command (a load balancer health check)', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    tcp.write(buildProxyV2Header({ command: 'LOCAL' }));
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/' }]);
    const seen = JSON.parse(answer!.body);
    expect(seen.client).toBe('127.0.0.1');
    expect(seen.proxied).toBeNull();
  });

  it('accepts a header split across TCP segments, one byte at a time', async () => {
    const gw = await startGateway('https', { headerTimeoutMs: 5000 });
    const tcp = await openTcp(gw.port);
    await writeByteByByte(tcp, v4Header('198.18.0.5'));
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/' }]);
    expect(JSON.parse(answer!.body).client).toBe('198.18.0.5');
  });

  it('accepts the header and the ClientHello in one segment', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    // Cork so that the header and the first TLS record leave in one write.
    tcp.cork();
    tcp.write(v4Header('198.18.0.6'));
    const tlsPromise = startTls(tcp, cert.cert);
    process.nextTick(() => tcp.uncork());
    const [answer] = await requestsOverTls(await tlsPromise, [{ path: '/' }]);
    expect(JSON.parse(answer!.body).client).toBe('198.18.0.6');
  });

  it('honours TLVs and a correct CRC32C checksum', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    tcp.write(
      buildProxyV2Header({
        source: { address: '203.0.113.50', port: 5 },
        destination: { address: '203.0.113.1', port: 443 },
        tlvs: [{ type: 0xea, value: Buffer.from('\x01vpce-0123456789abcdef0') }, { type: 0x04, value: Buffer.alloc(20) }],
        crc32c: true,
      }),
    );
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/' }]);
    expect(JSON.parse(answer!.body).client).toBe('203.0.113.50');
  });
});

describe('listenWithProxyProtocol behind plain HTTP', () => {
  it('hands over the bytes that followed the header, and keeps the connection alive', async () => {
    const gw = await startGateway('http');
    const tcp = await openTcp(gw.port);
    const received = waitForClose(tcp);
    tcp.write(
      Buffer.concat([
        v4Header('203.0.113.77'),
        Buffer.from('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ]),
    );
    const text = (await received).toString('utf8');
    expect(text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
    expect(text).toContain('"url":"/a"');
    expect(text).toContain('"url":"/b"');
    expect(text.match(/"client":"203\.0\.113\.77"/g)).toHaveLength(2);
  });
});

describe('listenWithProxyProtocol refusals', () => {
  it('refuses a valid PROXY header from a peer outside the allowed networks (spoofing)', async () => {
    const gw = await startGateway('https', { allowedNetworks: ['10.0.0.0/8'] });
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    tcp.write(v4Header('10.1.2.3'));
    expect(await gw.nextRefusal()).toEqual({ reason: 'peer-not-allowed', remote: '127.0.0.1' });
    expect((await closed).length).toBe(0);
  });

  it('refuses a connection without a PROXY header (a direct TLS ClientHello)', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    await expect(startTls(tcp, cert.cert)).rejects.toThrow();
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'invalid-header', detail: 'no PROXY protocol v2 signature' });
    await closed;
  });

  it('refuses a PROXY v1 text header', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    tcp.write('PROXY TCP4 203.0.113.7 198.51.100.10 51234 443\r\n');
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'invalid-header', detail: expect.stringContaining('v1') });
    expect((await closed).length).toBe(0);
  });

  it('refuses garbage', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    tcp.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect((await gw.nextRefusal()).reason).toBe('invalid-header');
    expect((await closed).length).toBe(0);
  });

  it('refuses a truncated header followed by silence once the header timeout passes', async () => {
    const gw = await startGateway('https', { headerTimeoutMs: 200 });
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    tcp.write(v4Header().subarray(0, 20));
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'header-timeout', detail: '20 bytes received' });
    await closed;
  });

  it('refuses a connection that sends nothing at all once the header timeout passes', async () => {
    const gw = await startGateway('https', { headerTimeoutMs: 200 });
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'header-timeout', detail: '0 bytes received' });
    await closed;
  });

  it('refuses an oversized length on its first 16 bytes, without waiting for the rest', async () => {
    const gw = await startGateway('https', { headerTimeoutMs: 60_000 });
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    const header = v4Header();
    header.writeUInt16BE(0xfff0, 14);
    tcp.write(header.subarray(0, 16));
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'invalid-header', detail: expect.stringContaining('exceeds the 1024-byte limit') });
    await closed;
  });

  it('refuses a TLV whose length runs past the header', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    const header = buildProxyV2Header({
      source: { address: '203.0.113.7', port: 1 },
      destination: { address: '203.0.113.8', port: 443 },
      tlvs: [{ type: 0x04, value: Buffer.alloc(8) }],
    });
    header.writeUInt16BE(200, header.length - 10); // the NOOP TLV now claims 200 bytes
    tcp.write(header);
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'invalid-header', detail: expect.stringContaining('runs past the end') });
    await closed;
  });

  it('refuses a header whose CRC32C does not match', async () => {
    const gw = await startGateway('https');
    const tcp = await openTcp(gw.port);
    const closed = waitForClose(tcp);
    const header = buildProxyV2Header({ source: { address: '203.0.113.7', port: 1 }, destination: { address: '203.0.113.8', port: 443 }, crc32c: true });
    header[16] = 198; // change the source address after the checksum was computed
    tcp.write(header);
    expect(await gw.nextRefusal()).toMatchObject({ reason: 'invalid-header', detail: 'PP2_TYPE_CRC32C checksum mismatch' });
    await closed;
  });

  it('survives a throwing onRefused callback', async () => {
    const gw = await startGateway('https', {
      onRefused: () => {
        throw new Error('logger broke');
      },
    });
    const bad = await openTcp(gw.port);
    const closed = waitForClose(bad);
    bad.write('nonsense');
    await closed;
    const tcp = await openTcp(gw.port);
    tcp.write(v4Header('203.0.113.99'));
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/' }]);
    expect(JSON.parse(answer!.body).client).toBe('203.0.113.99');
  });
});

describe('listenWithProxyProtocol lifecycle', () => {
  it("keeps the target's headersTimeout in force (a slow client gets 408)", async () => {
    const target = createHttpServer({ headersTimeout: 300, requestTimeout: 400, connectionsCheckingInterval: 50 }, describeRequest);
    const listener = await listenWithProxyProtocol(target, { port: 0, host: '127.0.0.1', allowedNetworks: ['127.0.0.1/32'] });
    closers.push(async () => {
      target.closeAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    });
    const tcp = await openTcp((listener.address() as AddressInfo).port);
    const received = waitForClose(tcp);
    tcp.write(Buffer.concat([v4Header(), Buffer.from('GET /slow HTTP/1.1\r\nHost: x\r\n')])); // headers never finish
    expect((await received).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes in order: stop accepting, the target closes idle connections, then the close callback runs', async () => {
    const gw = await startGateway('http');
    const tcp = await openTcp(gw.port);
    const received = waitForClose(tcp);
    tcp.write(Buffer.concat([v4Header(), Buffer.from('GET /keep HTTP/1.1\r\nHost: x\r\n\r\n')]));
    await new Promise<void>((resolve) => tcp.once('data', () => resolve()));
    let closed = false;
    const done = new Promise<void>((resolve) =>
      gw.listener.close(() => {
        closed = true;
        resolve();
      }),
    );
    await expect(openTcp(gw.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(closed).toBe(false); // the kept-alive connection is still open
    gw.target.closeIdleConnections();
    await done;
    expect((await received).toString('latin1')).toContain('"url":"/keep"');
  });

  it('stops accepting after close()', async () => {
    const gw = await startGateway('https');
    await gw.close();
    await expect(openTcp(gw.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('refuses to start with an invalid or empty network list', async () => {
    const target = createHttpServer();
    await expect(listenWithProxyProtocol(target, { port: 0, host: '127.0.0.1', allowedNetworks: ['10.0.0.0/33', 'x'] })).rejects.toThrow(
      /\[0\].*\[1\]/,
    );
    await expect(listenWithProxyProtocol(target, { port: 0, host: '127.0.0.1', allowedNetworks: [] })).rejects.toThrow(/allowedNetworks/);
  });

  it('rejects when the port is taken', async () => {
    const gw = await startGateway('https');
    await expect(
      listenWithProxyProtocol(createHttpServer(), { port: gw.port, host: '127.0.0.1', allowedNetworks: ['127.0.0.1/32'] }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
