/**
 * The listener behind a real PROXY v2 sender: Debian's haproxy in TCP mode with send-proxy-v2,
 * standing in for the NLB. The client connects from 127.0.0.2 so that the address carried in
 * the header differs from the peer the listener sees (haproxy, on 127.0.0.1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProxyV2Header, clientAddressOf, listenWithProxyProtocol, type ProxyRefusalReason } from '../../../runtime/net/index.js';
import { freePort, makeSelfSignedCert, openTcp, requestsOverTls, startTls, waitForClose } from './proxy-test-support.js';

const HAPROXY = '/usr/sbin/haproxy';
const CLIENT_ADDRESS = '127.0.0.2';

describe.skipIf(!existsSync(HAPROXY))('listenWithProxyProtocol behind haproxy send-proxy-v2', () => {
  let cert: { cert: string; key: string };
  let dir: string;
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  let target: HttpsServer;
  let listener: Server;
  let plainPort: number;
  let crcPort: number;
  const seen: Array<{ url: string; client: string }> = [];
  const refusals: Array<{ reason: ProxyRefusalReason; remote: string; detail?: string }> = [];

  beforeAll(async () => {
    cert = makeSelfSignedCert();
    target = createHttpsServer({ ...cert }, (req, res) => {
      seen.push({ url: req.url ?? '', client: clientAddressOf(req) });
      res.end(JSON.stringify({ client: clientAddressOf(req) }));
    });
    listener = await listenWithProxyProtocol(target, {
      port: 0,
      host: '127.0.0.1',
      allowedNetworks: ['127.0.0.1/32'],
      onRefused: (reason, remote, detail) => refusals.push({ reason, remote, ...(detail ? { detail } : {}) }),
    });
    const backendPort = (listener.address() as AddressInfo).port;
    plainPort = await freePort();
    crcPort = await freePort();
    dir = await mkdtemp(join(tmpdir(), 'kanmon-haproxy-'));
    const config = [
      'global',
      '  maxconn 64',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      `frontend plain`,
      `  bind 127.0.0.1:${plainPort}`,
      '  default_backend gateway',
      `frontend with_crc`,
      `  bind 127.0.0.1:${crcPort}`,
      '  default_backend gateway_crc',
      'backend gateway',
      // Health checks go out with a PROXY v2 LOCAL header (haproxy sends PROXY on checks when
      // the server has send-proxy-v2), then TLS and an HTTP request, like the NLB's would.
      '  option httpchk GET /healthz',
      `  server kanmon 127.0.0.1:${backendPort} send-proxy-v2 check check-ssl verify none inter 200ms`,
      'backend gateway_crc',
      `  server kanmon 127.0.0.1:${backendPort} send-proxy-v2 proxy-v2-options crc32c`,
      '',
    ].join('\n');
    await writeFile(join(dir, 'haproxy.cfg'), config);
    haproxy = spawn(HAPROXY, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (c: Buffer) => (haproxyLog += c.toString()));
    haproxy.stderr!.on('data', (c: Buffer) => (haproxyLog += c.toString()));
    await waitUntilAccepting(plainPort, haproxy, () => haproxyLog);
    await waitUntilAccepting(crcPort, haproxy, () => haproxyLog);
  });

  afterAll(async () => {
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy!.once('exit', resolve));
      haproxy.kill('SIGTERM');
      await exited;
    }
    target?.closeAllConnections();
    await new Promise<void>((resolve) => (listener ? listener.close(() => resolve()) : resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('gives the server the client address haproxy put in the header', async () => {
    const tcp = await openTcp(plainPort, CLIENT_ADDRESS);
    const answers = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/one' }, { path: '/two' }]);
    expect(answers.map((a) => JSON.parse(a.body).client)).toEqual([CLIENT_ADDRESS, CLIENT_ADDRESS]);
  });

  it('verifies the CRC32C TLV haproxy adds with proxy-v2-options crc32c', async () => {
    const tcp = await openTcp(crcPort, CLIENT_ADDRESS);
    const [answer] = await requestsOverTls(await startTls(tcp, cert.cert), [{ path: '/crc' }]);
    expect(JSON.parse(answer!.body).client).toBe(CLIENT_ADDRESS);
  });

  it("answers haproxy's health checks, which arrive with a LOCAL header, under the real peer address", async () => {
    // Checks run every 200 ms; wait for one to have reached the server.
    for (let i = 0; i < 100 && !seen.some((s) => s.url === '/healthz'); i++) await new Promise((r) => setTimeout(r, 100));
    const checks = seen.filter((s) => s.url === '/healthz');
    expect(checks.length).toBeGreaterThan(0);
    expect(checks.every((c) => c.client === '127.0.0.1')).toBe(true);
  });

  it('does not believe a PROXY header the client smuggles through haproxy', async () => {
    const tcp = await openTcp(plainPort, CLIENT_ADDRESS);
    tcp.write(buildProxyV2Header({ source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 443 } }));
    // Behind haproxy's own header, the forged one is application data: the TLS handshake fails.
    await expect(startTls(tcp, cert.cert)).rejects.toThrow();
    expect(seen.some((s) => s.client === '10.0.0.1')).toBe(false);
  });

  it('refuses a client that goes around haproxy with a forged header', async () => {
    const before = refusals.length;
    const tcp = await openTcp((listener.address() as AddressInfo).port, CLIENT_ADDRESS);
    const closed = waitForClose(tcp);
    tcp.write(buildProxyV2Header({ source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 443 } }));
    await closed;
    expect(refusals.slice(before)).toEqual([{ reason: 'peer-not-allowed', remote: CLIENT_ADDRESS }]);
  });

  it('has refused nothing haproxy sent', () => {
    expect(refusals.filter((r) => r.remote === '127.0.0.1')).toEqual([]);
  });
});

async function waitUntilAccepting(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited with ${proc.exitCode}: ${log()}`);
    try {
      const s = await openTcp(port);
      s.destroy();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`haproxy did not start listening on ${port}: ${log()}`);
}
