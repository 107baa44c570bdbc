import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { UpstreamErrorKind } from '../../../runtime/proxy/index.js';
import { CONTEXT, closeServer, deadPort, listen, names, once, send, startGateway, values, type Gateway } from './harness.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

let certDir: string;
let cert: Buffer;
let key: Buffer;
beforeAll(() => {
  // A throwaway certificate for an https upstream, made the way an operator would.
  certDir = mkdtempSync(join(tmpdir(), 'kanmon-ws-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  cert = readFileSync(join(certDir, 'cert.pem'));
  key = readFileSync(join(certDir, 'key.pem'));
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

interface EchoUpstream {
  readonly url: string;
  readonly handshakes: IncomingMessage[];
  readonly sockets: WebSocketServer;
}

/** A WebSocket echo server at /echo over http or https; other paths refuse the upgrade with 404. */
async function echoUpstream(tls = false): Promise<EchoUpstream> {
  const server = tls
    ? https.createServer({ cert, key }, (_req, res) => res.end('plain https ok'))
    : http.createServer((_req, res) => res.end('plain ok'));
  const sockets = new WebSocketServer({ noServer: true });
  const handshakes: IncomingMessage[] = [];
  sockets.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  server.on('upgrade', (req, socket, head) => {
    if (req.url !== '/echo') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found');
      return;
    }
    handshakes.push(req);
    sockets.handleUpgrade(req, socket, head, (ws) => sockets.emit('connection', ws, req));
  });
  const port = await listen(server);
  cleanups.push(async () => {
    for (const c of sockets.clients) c.terminate();
    sockets.close();
    await closeServer(server);
  });
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, handshakes, sockets };
}

async function gatewayTo(upstream: string, extra: Partial<Parameters<typeof startGateway>[0]> = {}): Promise<Gateway> {
  const gw = await startGateway({ upstream, preserveHost: false, ...extra });
  cleanups.push(() => gw.close());
  return gw;
}

function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
  });
}

function roundTrip(ws: WebSocket, data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => {
    ws.once('message', (reply: Buffer, isBinary: boolean) => resolve({ data: reply, isBinary }));
    ws.send(data);
  });
}

const wsUrl = (gw: Gateway, path = '/echo') => `ws://127.0.0.1:${gw.port}${path}`;

describe('forwarder: WebSocket upgrades', () => {
  it('relays a WebSocket echo through the forwarder, text and binary', async () => {
    const up = await echoUpstream();
    const gw = await gatewayTo(up.url);
    const ws = await connect(wsUrl(gw));
    const text = await roundTrip(ws, 'こんにちは, gateway');
    expect(text.isBinary).toBe(false);
    expect(text.data.toString()).toBe('こんにちは, gateway');
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    const binary = await roundTrip(ws, bytes);
    expect(binary.isBinary).toBe(true);
    expect(binary.data).toEqual(bytes);
    const big = Buffer.alloc(512 * 1024, 7);
    expect((await roundTrip(ws, big)).data.equals(big)).toBe(true);
    ws.close();
  });

  it('applies the request header rules to the handshake: identity injected, spoofed identity and XFF replaced', async () => {
    const up = await echoUpstream();
    const gw = await gatewayTo(up.url);
    const ws = await connect(wsUrl(gw), { 'X-Kanmon-User': 'mallory', 'x-kanmon-groups': 'admins', 'X-Forwarded-For': '6.6.6.6' });
    const seen = up.handshakes[0]!.rawHeaders;
    expect(values(seen, 'x-kanmon-user')).toEqual(['alice']);
    expect(values(seen, 'x-kanmon-groups')).toEqual(['staff,admins']);
    expect(values(seen, 'x-forwarded-for')).toEqual([CONTEXT.clientIp]);
    expect(values(seen, 'host')).toEqual([new URL(up.url).host]);
    expect(values(seen, 'upgrade')).toEqual(['websocket']);
    expect(names(seen)).toContain('sec-websocket-key');
    ws.close();
  });

  it('reaches an https upstream over TLS, for upgrades and plain requests alike', async () => {
    const up = await echoUpstream(true);
    const gw = await gatewayTo(up.url, { tls: { ca: cert } });
    const ws = await connect(wsUrl(gw));
    expect((await roundTrip(ws, 'over tls')).data.toString()).toBe('over tls');
    ws.close();
    const reply = await send(`${gw.url}/`);
    expect(reply.body.toString()).toBe('plain https ok');
  });

  it('refuses an https upstream whose certificate is not trusted, as a 502', async () => {
    const up = await echoUpstream(true);
    const kinds: UpstreamErrorKind[] = [];
    const gw = await gatewayTo(up.url, { onError: (kind) => kinds.push(kind) });
    await expect(connect(wsUrl(gw))).rejects.toMatchObject({ status: 502 });
    expect((await send(`${gw.url}/`)).status).toBe(502);
    expect(kinds).toEqual(['connect', 'connect']);
  });

  it('answers the handshake with 502 when the upstream is down, and reports it', async () => {
    const port = await deadPort();
    const kinds: UpstreamErrorKind[] = [];
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, { onError: (kind) => kinds.push(kind) });
    await expect(connect(wsUrl(gw))).rejects.toMatchObject({ status: 502 });
    expect(kinds).toEqual(['connect']);
  });

  it('answers the handshake with 504 when the upstream accepts but never answers', async () => {
    const held: net.Socket[] = [];
    const hung = net.createServer((socket) => held.push(socket));
    const port = await listen(hung);
    cleanups.push(async () => {
      for (const socket of held) socket.destroy();
      await closeServer(hung);
    });
    const kinds: UpstreamErrorKind[] = [];
    const gw = await gatewayTo(`http://127.0.0.1:${port}`, { timeoutMs: 200, onError: (kind) => kinds.push(kind) });
    await expect(connect(wsUrl(gw))).rejects.toMatchObject({ status: 504 });
    expect(kinds).toEqual(['timeout']);
  });

  it("relays the upstream's refusal of the upgrade", async () => {
    const up = await echoUpstream();
    const gw = await gatewayTo(up.url);
    await expect(connect(wsUrl(gw, '/elsewhere'))).rejects.toMatchObject({ status: 404 });
  });

  it('closes the upstream side when the client goes, and the client side when the upstream goes', async () => {
    const up = await echoUpstream();
    const gw = await gatewayTo(up.url);

    const first = await connect(wsUrl(gw));
    const upstreamSide = [...up.sockets.clients][0]!;
    const upstreamClosed = once(upstreamSide, 'close');
    first.terminate();
    await upstreamClosed;

    const second = await connect(wsUrl(gw));
    const clientClosed = once(second, 'close');
    for (const c of up.sockets.clients) c.terminate();
    await clientClosed;
  });

  it('cuts open tunnels when the forwarder closes', async () => {
    const up = await echoUpstream();
    const gw = await gatewayTo(up.url);
    const ws = await connect(wsUrl(gw));
    const closed = once(ws, 'close');
    await gw.forwarder.close();
    await closed;
  });
});
