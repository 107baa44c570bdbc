import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDevCertificates, type DevCertificates } from '../../../runtime/tls/index.js';

const OPENSSL = '/usr/bin/openssl';
const DAY = 86_400_000;
let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kanmon-dev-ca-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function openssl(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(OPENSSL, args, { encoding: 'utf8', input });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function httpsGet(port: number, host: string, ca?: string, servername?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', method: 'GET', ca, servername, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('ensureDevCertificates', () => {
  it('issues a server certificate that openssl verifies against the CA', async () => {
    const certs = await ensureDevCertificates(dataDir, { hostnames: ['gate.example.test'], ipAddresses: ['192.0.2.10'] });
    expect(certs.caCreated).toBe(true);
    expect(certs.serverCertIssued).toBe(true);
    expect(certs.caCertPath).toBe(join(dataDir, 'dev-ca', 'ca.crt'));
    const verify = openssl(['verify', '-CAfile', certs.caCertPath, certs.certPath]);
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
    expect(verify.stdout.trim()).toBe(`${certs.certPath}: OK`);
    // The same check, asking for the purpose a browser checks.
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', certs.caCertPath, certs.certPath]).status).toBe(0);
  });

  it('puts the SANs, serverAuth and the key identifiers in the server certificate', async () => {
    const certs = await ensureDevCertificates(dataDir, { hostnames: ['gate.example.test', 'Portal.Example.Test'], ipAddresses: ['192.0.2.10', '2001:db8::1'] });
    const text = openssl(['x509', '-noout', '-text', '-in', certs.certPath]).stdout;
    expect(text).toMatch(/X509v3 Subject Alternative Name:\s*\n\s*DNS:localhost, DNS:gate\.example\.test, DNS:portal\.example\.test, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, IP Address:192\.0\.2\.10, IP Address:2001:DB8:0:0:0:0:0:1/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s*TLS Web Server Authentication\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s*\n\s*Digital Signature\n/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s*\n\s*CA:FALSE/);
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*ASN1 OID: prime256v1/);
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);

    const caText = openssl(['x509', '-noout', '-text', '-in', certs.caCertPath]).stdout;
    expect(caText).toMatch(/Subject: CN = Kanmon Development CA \(.+\), O = Kanmon development/);
    expect(caText).toMatch(/X509v3 Basic Constraints: critical\s*\n\s*CA:TRUE, pathlen:0/);
    expect(caText).toMatch(/X509v3 Key Usage: critical\s*\n\s*Certificate Sign, CRL Sign\n/);
    expect(caText).toMatch(/ASN1 OID: prime256v1/);

    // The server's AKI is the CA's SKI (RFC 5280 §4.2.1.1).
    const caSki = /X509v3 Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(caText)?.[1];
    const serverAki = /X509v3 Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
    expect(caSki).toBeTruthy();
    expect(serverAki).toBe(caSki);
    expect(text).toMatch(/X509v3 Subject Key Identifier:/);

    const ca = new X509Certificate(certs.caCertPem);
    const server = new X509Certificate(certs.certPem);
    expect(ca.ca).toBe(true);
    // 10 years for the CA; at most 397 days for the server certificate (Chrome's limit is 398).
    expect(Date.parse(ca.validTo) - Date.parse(ca.validFrom)).toBeGreaterThanOrEqual(3650 * DAY);
    expect(Date.parse(server.validTo) - Date.parse(server.validFrom)).toBeLessThanOrEqual(397 * DAY);
    expect(Date.parse(server.validTo) - Date.now()).toBeGreaterThan(390 * DAY);
    // Random positive serials of at least 64 bits.
    for (const cert of [ca, server]) {
      const serial = BigInt(`0x${cert.serialNumber}`);
      expect(serial > 0n).toBe(true);
      expect(serial >= 1n << 64n).toBe(true);
    }
    expect(ca.serialNumber).not.toBe(server.serialNumber);
    expect(certs.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it.skipIf(process.platform === 'win32')('writes every file with mode 0600 inside a 0700 directory', async () => {
    await ensureDevCertificates(dataDir, { hostnames: [] });
    expect(await modeOf(join(dataDir, 'dev-ca'))).toBe(0o700);
    for (const file of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) {
      expect(await modeOf(join(dataDir, 'dev-ca', file)), file).toBe(0o600);
    }
  });

  it('reuses existing files on a second call', async () => {
    const first = await ensureDevCertificates(dataDir, { hostnames: ['gate.example.test'] });
    const files = await Promise.all(['ca.crt', 'ca.key', 'server.crt', 'server.key'].map((f) => readFile(join(dataDir, 'dev-ca', f), 'utf8')));
    // Names already covered, given in another case and order, change nothing.
    const second = await ensureDevCertificates(dataDir, { hostnames: ['GATE.example.test', 'localhost'], ipAddresses: ['::1'] });
    expect(second.caCreated).toBe(false);
    expect(second.serverCertIssued).toBe(false);
    expect(second.caCertPem).toBe(first.caCertPem);
    expect(second.certPem).toBe(first.certPem);
    expect(second.keyPem).toBe(first.keyPem);
    const after = await Promise.all(['ca.crt', 'ca.key', 'server.crt', 'server.key'].map((f) => readFile(join(dataDir, 'dev-ca', f), 'utf8')));
    expect(after).toEqual(files);
  });

  it('re-issues a server certificate that expires within 30 days, keeping the CA', async () => {
    const first = await ensureDevCertificates(dataDir, { hostnames: [] });
    const caKey = await readFile(join(dataDir, 'dev-ca', 'ca.key'), 'utf8');

    // 360 days on, 37 days are left: still reused.
    const later = Date.now() + 360 * DAY;
    const kept = await ensureDevCertificates(dataDir, { hostnames: [], now: () => later });
    expect(kept.serverCertIssued).toBe(false);

    // 370 days on, 27 days are left: re-issued by the same CA.
    const renewAt = Date.now() + 370 * DAY;
    const renewed = await ensureDevCertificates(dataDir, { hostnames: [], now: () => renewAt });
    expect(renewed.serverCertIssued).toBe(true);
    expect(renewed.caCreated).toBe(false);
    expect(renewed.caCertPem).toBe(first.caCertPem);
    expect(await readFile(join(dataDir, 'dev-ca', 'ca.key'), 'utf8')).toBe(caKey);
    expect(renewed.certPem).not.toBe(first.certPem);
    expect(renewed.keyPem).not.toBe(first.keyPem);
    expect(Date.parse(new X509Certificate(renewed.certPem).validTo)).toBeGreaterThan(renewAt + 390 * DAY);
    // openssl agrees at the time the new certificate is meant for.
    const attime = String(Math.floor(renewAt / 1000));
    expect(openssl(['verify', '-attime', attime, '-CAfile', renewed.caCertPath, renewed.certPath]).status).toBe(0);
  });

  it('re-issues a short-lived certificate found on disk', async () => {
    const first = await ensureDevCertificates(dataDir, { hostnames: [] });
    // Certificates signed by the same CA and written by hand with openssl, like an older run would have left.
    const writeCert = async (days: number): Promise<string> => {
      const keyPath = join(dataDir, 'hand.key');
      const csrPath = join(dataDir, 'hand.csr');
      const extPath = join(dataDir, 'hand.ext');
      const req = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-subj', '/CN=localhost', '-out', csrPath]);
      expect(req.status, req.stderr).toBe(0);
      await writeFile(extPath, 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
      const signed = openssl(['x509', '-req', '-in', csrPath, '-CA', first.caCertPath, '-CAkey', join(dataDir, 'dev-ca', 'ca.key'), '-set_serial', '0x7a11', '-days', String(days), '-extfile', extPath, '-out', first.certPath]);
      expect(signed.status, signed.stderr).toBe(0);
      await writeFile(first.keyPath, await readFile(keyPath, 'utf8'), { mode: 0o600 });
      return readFile(first.certPath, 'utf8');
    };

    // With 100 days left it is kept: the hand-made certificate is otherwise acceptable.
    const longPem = await writeCert(100);
    const kept = await ensureDevCertificates(dataDir, { hostnames: [] });
    expect(kept.serverCertIssued).toBe(false);
    expect(kept.certPem).toBe(longPem);

    // With 10 days left it is replaced, by the same CA.
    const shortPem = await writeCert(10);
    const renewed = await ensureDevCertificates(dataDir, { hostnames: [] });
    expect(renewed.serverCertIssued).toBe(true);
    expect(renewed.caCreated).toBe(false);
    expect(renewed.caCertPem).toBe(first.caCertPem);
    expect(renewed.certPem).not.toBe(shortPem);
    expect(openssl(['verify', '-CAfile', renewed.caCertPath, renewed.certPath]).status).toBe(0);
  });

  it('re-issues when the requested names are not covered', async () => {
    const first = await ensureDevCertificates(dataDir, { hostnames: ['a.example.test'] });
    const second = await ensureDevCertificates(dataDir, { hostnames: ['a.example.test', 'b.example.test'] });
    expect(second.serverCertIssued).toBe(true);
    expect(second.caCertPem).toBe(first.caCertPem);
    expect(new X509Certificate(second.certPem).subjectAltName).toContain('DNS:b.example.test');
    const third = await ensureDevCertificates(dataDir, { hostnames: ['a.example.test', 'b.example.test'], ipAddresses: ['198.51.100.7'] });
    expect(third.serverCertIssued).toBe(true);
    expect(new X509Certificate(third.certPem).checkIP('198.51.100.7')).toBe('198.51.100.7');
  });

  it('makes a new CA only when it is missing or expiring, and then a new server certificate', async () => {
    const first = await ensureDevCertificates(dataDir, { hostnames: [] });
    await rm(join(dataDir, 'dev-ca', 'ca.key'));
    const replaced = await ensureDevCertificates(dataDir, { hostnames: [] });
    expect(replaced.caCreated).toBe(true);
    expect(replaced.serverCertIssued).toBe(true);
    expect(replaced.caCertPem).not.toBe(first.caCertPem);
    expect(openssl(['verify', '-CAfile', replaced.caCertPath, replaced.certPath]).status).toBe(0);

    // Nine years on the CA is still good; with 20 days left it is replaced.
    const nineYears = Date.now() + 9 * 365 * DAY;
    expect((await ensureDevCertificates(dataDir, { hostnames: [], now: () => nineYears })).caCreated).toBe(false);
    const nearEnd = Date.parse(new X509Certificate(replaced.caCertPem).validTo) - 20 * DAY;
    const renewed = await ensureDevCertificates(dataDir, { hostnames: [], now: () => nearEnd });
    expect(renewed.caCreated).toBe(true);
    expect(renewed.serverCertIssued).toBe(true);
  });

  it('never issues a server certificate that outlives its CA', async () => {
    await ensureDevCertificates(dataDir, { hostnames: [] });
    const ca = new X509Certificate(await readFile(join(dataDir, 'dev-ca', 'ca.crt'), 'utf8'));
    const late = Date.parse(ca.validTo) - 100 * DAY;
    const certs = await ensureDevCertificates(dataDir, { hostnames: [], now: () => late });
    expect(certs.caCreated).toBe(false);
    expect(Date.parse(new X509Certificate(certs.certPem).validTo)).toBeLessThanOrEqual(Date.parse(ca.validTo));
  });

  it('serialises concurrent callers on one data directory', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => ensureDevCertificates(dataDir, { hostnames: ['gate.example.test'] })));
    expect(results.filter((r) => r.caCreated)).toHaveLength(1);
    for (const r of results) expect(r.caCertPem).toBe(results[0]!.caCertPem);
    expect(openssl(['verify', '-CAfile', results[0]!.caCertPath, results[0]!.certPath]).status).toBe(0);
  });

  it.skipIf(process.platform === 'win32')('refuses a private key readable by other users', async () => {
    await ensureDevCertificates(dataDir, { hostnames: [] });
    await chmod(join(dataDir, 'dev-ca', 'ca.key'), 0o644);
    await expect(ensureDevCertificates(dataDir, { hostnames: [] })).rejects.toThrow(/refusing to use .*ca\.key/);
  });

  it('rejects names that are not DNS names or IP addresses', async () => {
    await expect(ensureDevCertificates(dataDir, { hostnames: ['bad name'] })).rejects.toThrow(/must be a DNS name/);
    await expect(ensureDevCertificates(dataDir, { hostnames: [], ipAddresses: ['999.1.1.1'] })).rejects.toThrow(/IPv4 or IPv6/);
  });

  describe('serving https', () => {
    let certs: DevCertificates;
    let server: ReturnType<typeof createServer>;
    let port: number;

    beforeEach(async () => {
      certs = await ensureDevCertificates(dataDir, { hostnames: ['gate.example.test'] });
      server = createServer({ cert: certs.certPem, key: certs.keyPem }, (_req, res) => res.end('hello over tls'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterEach(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('answers a client that trusts only ca.crt, by name and by IP', async () => {
      const ca = await readFile(certs.caCertPath, 'utf8');
      expect(await httpsGet(port, '127.0.0.1', ca, 'localhost')).toEqual({ status: 200, body: 'hello over tls' });
      expect(await httpsGet(port, '127.0.0.1', ca, 'gate.example.test')).toEqual({ status: 200, body: 'hello over tls' });
      // No SNI: the client checks the IP address against the iPAddress SAN.
      expect(await httpsGet(port, '127.0.0.1', ca)).toEqual({ status: 200, body: 'hello over tls' });
    });

    it('is refused by a client that does not trust the CA, or for a name not covered', async () => {
      await expect(httpsGet(port, '127.0.0.1', undefined, 'localhost')).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      await expect(httpsGet(port, '127.0.0.1', certs.caCertPem, 'other.example.test')).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    });
  });
});
