/**
 * ACME issuance against Debian's pebble: HTTP-01 on the plain listener, TLS-ALPN-01 on the TLS
 * listener, ECDSA by default and RSA on request, and the challenge endpoints under hostile input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KanmonApp } from '../../../runtime/app.js';
import { validateConfig } from '../../../runtime/config/schema.js';
import { APP, GATEWAY, handshake, startAcmeNode } from './acme-support.js';
import { freePort, startPebble, type Pebble } from './pebble.js';

let pebble: Pebble;
let port: number;
let httpPort: number;
let root: string;
const dirs: string[] = [];

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kanmon-acme-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  [port, httpPort] = await Promise.all([freePort(), freePort()]);
  pebble = await startPebble({ httpPort, tlsPort: port });
  root = await pebble.issuingRoot();
});

afterAll(async () => {
  await pebble?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function plainGet(path: string, method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: httpPort, path, method, headers: { host: GATEWAY } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('HTTP-01', () => {
  let app: KanmonApp;
  beforeAll(async () => {
    app = await startAcmeNode({ pebble, dataDir: dataDir(), port, httpPort, challenge: 'http-01' });
    await app.serverCertificate!.whenLoaded();
  });
  afterAll(() => app?.close());

  it('obtains an ECDSA certificate for every configured name, answered on the plain-HTTP listener', async () => {
    for (const name of [GATEWAY, APP]) {
      const h = await handshake(port, name, root);
      expect(h.authorized, h.authorizationError).toBe(true);
      expect(h.cert.subjectaltname).toContain(`DNS:${name}`);
    }
    const served = await handshake(port, GATEWAY, root);
    expect(new X509Certificate(served.cert.raw).publicKey.asymmetricKeyType).toBe('ec');
    expect(pebble.log()).toMatch(/Attempting to validate w\/ HTTP: http:\/\/gw\.kanmon\.test:\d+\/\.well-known\/acme-challenge\//);
    expect(pebble.certificatesIssued()).toBe(1);
    // The answers are gone from the store once the order is done.
    expect((await app.store.documents.list('tls-acme-challenge', { now: Date.now() })).documents).toEqual([]);
  });

  it('keeps the key sealed in the store and the status readable', async () => {
    const stored = await app.store.documents.get('tls-server-certificate', 'current', Date.now());
    expect(stored!.body).not.toContain('PRIVATE KEY');
    const status = await app.services.serverCertificates.status();
    expect([...status.certificate!.names].sort()).toEqual([APP, GATEWAY].sort());
    expect(status.renewal.consecutiveFailures).toBe(0);
    expect(status.renewal.lastSuccessAt).toBeGreaterThan(0);
    const audit = await app.services.audit.tail({ limit: 20 });
    expect(audit.some((e) => e.type === 'tls.certificate.renew' && e.result === 'success')).toBe(true);
  });

  it('answers unknown, malformed, oversized and hostile challenge paths with 404 and never 5xx', async () => {
    for (const path of [
      '/.well-known/acme-challenge/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '/.well-known/acme-challenge/',
      '/.well-known/acme-challenge/..%2F..%2Fetc%2Fpasswd',
      '/.well-known/acme-challenge/abc',
      `/.well-known/acme-challenge/${'A'.repeat(5000)}`,
      '/.well-known/acme-challenge/AAAAAAAAAAAAAAAAAAAAAA?x=1',
      '/.well-known/acme-challenge/%00%00%00%00%00%00%00%00%00%00%00%00',
    ]) {
      const res = await plainGet(path);
      expect(res.status, path).toBe(404);
      expect(res.body).toBe('');
    }
    expect((await plainGet('/.well-known/acme-challenge/AAAAAAAAAAAAAAAAAAAAAAAA', 'POST')).status).toBe(405);
  });

  it('still redirects everything else to https', async () => {
    const res = await plainGet('/groupware/?a=1');
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe(`https://${GATEWAY}/groupware/?a=1`);
  });

  it('refuses an acme-tls/1 handshake when no TLS-ALPN-01 challenge is pending, and serves http/1.1 as before', async () => {
    await expect(handshake(port, GATEWAY, root, ['acme-tls/1'])).rejects.toThrow();
    const h = await handshake(port, GATEWAY, root, ['http/1.1']);
    expect(h.authorized).toBe(true);
    expect(h.alpn).toBe('http/1.1');
  });
});

describe('TLS-ALPN-01', () => {
  let app: KanmonApp;
  let logFrom = 0;
  beforeAll(async () => {
    logFrom = pebble.log().length;
    app = await startAcmeNode({ pebble, dataDir: dataDir(), port, httpPort: 0, challenge: 'tls-alpn-01', keyType: 'rsa' });
    await app.serverCertificate!.whenLoaded();
  });
  afterAll(() => app?.close());

  it('obtains an RSA certificate, the validation answered on the TLS listener', async () => {
    const h = await handshake(port, APP, root);
    expect(h.authorized, h.authorizationError).toBe(true);
    expect(new X509Certificate(h.cert.raw).publicKey.asymmetricKeyType).toBe('rsa');
    // No plain listener exists, and pebble made no HTTP-01 attempt: the TLS listener answered.
    expect(app.httpPort).toBeUndefined();
    const log = pebble.log().slice(logFrom);
    expect(log).not.toMatch(/validate w\/ HTTP/);
    expect(log.match(/set VALID by completed challenge/g)).toHaveLength(2);
  });

  it('refuses acme-tls/1 for a name it does not certify, and for a finished challenge', async () => {
    await expect(handshake(port, 'stranger.example', root, ['acme-tls/1'])).rejects.toThrow();
    await expect(handshake(port, GATEWAY, root, ['acme-tls/1'])).rejects.toThrow();
  });

  it('closes a handshake that offers no protocol it speaks, as before', async () => {
    await expect(handshake(port, GATEWAY, root, ['h2'])).rejects.toThrow();
    const plain = await handshake(port, GATEWAY, root);
    expect(plain.authorized).toBe(true);
  });
});

describe('config', () => {
  it('reports every ACME option error at once', () => {
    const r = validateConfig({
      server: { httpPort: 0 },
      tls: { source: 'acme', domains: ['ok.example', 'bad host'], email: 'nobody', challenge: 'http-01', renewBeforeDays: 90, keyType: 'dsa', directoryUrl: 'ftp://x' },
    });
    expect(r.ok).toBe(false);
    const errors = r.ok ? [] : r.errors;
    expect(errors).toEqual(
      expect.arrayContaining([
        `tls: option 'domains[1]' must be a host name, got "bad host"`,
        `tls: option 'email' must be an e-mail address, got "nobody"`,
        `tls: option 'challenge' "http-01" needs server.httpPort (the plain-HTTP listener), got server.httpPort 0`,
        `tls: option 'renewBeforeDays' must be an integer from 7 to 60, got 90`,
        `tls: option 'keyType' must be one of "ecdsa", "rsa", got "dsa"`,
        `tls: option 'directoryUrl' must be an http(s) URL, got "ftp://x"`,
      ]),
    );
  });

  it('defaults to HTTP-01 with a plain listener, TLS-ALPN-01 without, ECDSA and 30 days', () => {
    const withHttp = validateConfig({ server: { httpPort: 8080 }, tls: { source: 'acme', email: 'a@kanmon.example' } });
    const withoutHttp = validateConfig({ tls: { source: 'acme', email: 'a@kanmon.example' } });
    expect(withHttp.ok && withHttp.config.tls).toMatchObject({ challenge: 'http-01', keyType: 'ecdsa', renewBeforeDays: 30 });
    expect(withoutHttp.ok && withoutHttp.config.tls).toMatchObject({ challenge: 'tls-alpn-01' });
  });
});
