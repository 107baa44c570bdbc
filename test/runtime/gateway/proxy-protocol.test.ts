import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProxyV2Header } from '../../../runtime/net/index.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';

/** One HTTPS request over a TCP connection that starts with the given PROXY v2 header. */
function requestThroughProxyHeader(port: number, ca: Buffer, header: Buffer | undefined, path: string, cookie?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host: '127.0.0.1', port }, () => {
      if (header) raw.write(header);
      const tls = tlsConnect({ socket: raw, servername: 'localhost', ca }, () => {
        tls.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n${cookie ? `Cookie: ${cookie}\r\n` : ''}\r\n`);
      });
      let text = '';
      tls.on('data', (d) => (text += d.toString()));
      tls.on('end', () => resolve(text));
      tls.on('error', reject);
    });
    raw.on('error', reject);
    raw.on('close', () => resolve(''));
  });
}

describe('behind a load balancer with PROXY protocol v2', () => {
  let h: KanmonHarness;
  let cookie: string;
  let ca: Buffer;

  beforeAll(async () => {
    h = await KanmonHarness.start({ server: { proxyProtocol: { enabled: true, allowedNetworks: ['127.0.0.0/8'] } } });
    ca = readFileSync(h.app.devCaCertPath!);
    cookie = await h.sessionCookie(await h.app.services.users.addUser({ username: 'alice' }));
  });
  afterAll(async () => h?.close());

  it('uses the address the header carries for X-Forwarded-For', async () => {
    const header = buildProxyV2Header({ source: { address: '203.0.113.9', port: 51000 }, destination: { address: '10.0.0.5', port: 443 } });
    const answer = await requestThroughProxyHeader(h.app.port, ca, header, '/headers', cookie);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string> };
    expect(body.headers['x-forwarded-for']).toBe('203.0.113.9');
  });

  it('records the carried address in audit events', async () => {
    // A refused cross-site POST is audited with the request's context, whose address comes from the header.
    const optionsHeader = buildProxyV2Header({ source: { address: '198.51.100.8', port: 40001 }, destination: { address: '10.0.0.5', port: 443 } });
    const crossSite = await new Promise<string>((resolve, reject) => {
      const raw = netConnect({ host: '127.0.0.1', port: h.app.port }, () => {
        raw.write(optionsHeader);
        const tls = tlsConnect({ socket: raw, servername: 'localhost', ca }, () => {
          tls.write(`POST /.kanmon/api/login/options HTTP/1.1\r\nHost: localhost:${h.app.port}\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
        });
        let text = '';
        tls.on('data', (d) => (text += d.toString()));
        tls.on('end', () => resolve(text));
        tls.on('error', reject);
      });
    });
    expect(crossSite).toMatch(/^HTTP\/1\.1 403/);
    const [event] = await h.app.services.audit.tail({ limit: 1 });
    expect(event).toMatchObject({ type: 'portal.cross-site', ip: '198.51.100.8' });
  });

  it('refuses a connection without a PROXY header', async () => {
    expect(await requestThroughProxyHeader(h.app.port, ca, undefined, '/headers', cookie).catch(() => '')).toBe('');
  });
});

describe('PROXY headers from outside the load balancer networks', () => {
  it('are refused: the connection is closed before TLS', async () => {
    const h = await KanmonHarness.start({ server: { proxyProtocol: { enabled: true, allowedNetworks: ['10.0.0.0/8'] } } });
    try {
      const header = buildProxyV2Header({ source: { address: '203.0.113.9', port: 1 }, destination: { address: '10.0.0.5', port: 443 } });
      const answer = await requestThroughProxyHeader(h.app.port, readFileSync(h.app.devCaCertPath!), header, '/', undefined).catch(() => '');
      expect(answer).toBe('');
    } finally {
      await h.close();
    }
  });
});
