/**
 * The other certificate sources: `file` (reloaded when the files change, a half-written or
 * broken pair ignored) and `imported` (PEM put into the store by `kanmon cert server import`,
 * reloaded by every node when it changes).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKanmon, type KanmonApp } from '../../../runtime/app.js';
import { UsageError } from '../../../runtime/cli/args.js';
import { runCommand } from '../../../runtime/cli/commands.js';
import { parseConfig, type KanmonConfigInput } from '../../../runtime/config/schema.js';
import { openSecretBox } from '../../../runtime/secrets/index.js';
import { createServices, ServiceError } from '../../../runtime/services/index.js';
import { openStore } from '../../../runtime/store/index.js';
import { eventually, GATEWAY, handshake } from './acme-support.js';

const work = mkdtempSync(join(tmpdir(), 'kanmon-cert-sources-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** A CA and a leaf for `names` signed by it, made with openssl; returns file paths and the serial. */
function makeCertificate(names: string[], opts: { days?: number; ec?: boolean } = {}): { cert: string; key: string; ca: string; serial: string } {
  const d = join(work, `c${++n}`);
  execFileSync('mkdir', ['-p', d]);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const keyAlg = opts.ec === false ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  run('req', '-x509', ...keyAlg, '-nodes', '-keyout', join(d, 'ca.key'), '-out', join(d, 'ca.pem'), '-subj', '/CN=Kanmon test CA', '-days', '30');
  run('req', ...keyAlg, '-nodes', '-keyout', join(d, 'key.pem'), '-out', join(d, 'leaf.csr'), '-subj', `/CN=${names[0]}`);
  writeFileSync(join(d, 'ext.cnf'), `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}\n`);
  run('x509', '-req', '-in', join(d, 'leaf.csr'), '-CA', join(d, 'ca.pem'), '-CAkey', join(d, 'ca.key'), '-CAcreateserial', '-out', join(d, 'cert.pem'), '-days', String(opts.days ?? 30), '-extfile', join(d, 'ext.cnf'));
  const serial = execFileSync('openssl', ['x509', '-in', join(d, 'cert.pem'), '-noout', '-serial']).toString().trim().split('=')[1]!.toLowerCase();
  return { cert: join(d, 'cert.pem'), key: join(d, 'key.pem'), ca: join(d, 'ca.pem'), serial };
}

/** A self-signed certificate that expired yesterday (openssl 3.0's x509 cannot backdate). */
async function makeExpiredCertificate(name: string): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0a0b0c',
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 3 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }])],
  });
  const d = mkdtempSync(join(work, 'expired-'));
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  writeFileSync(join(d, 'cert.pem'), cert.toString('pem'));
  writeFileSync(join(d, 'key.pem'), `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`);
  return { cert: join(d, 'cert.pem'), key: join(d, 'key.pem') };
}

function baseConfig(dataDir: string, tls: KanmonConfigInput['tls']): KanmonConfigInput {
  return {
    dataDir,
    log: { level: 'silent' },
    server: { port: 0, host: '127.0.0.1', publicOrigin: `https://${GATEWAY}` },
    tls,
    routes: [{ id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' }],
  };
}

const serialOf = async (app: KanmonApp, ca: string) => {
  const h = await handshake(app.port, GATEWAY, readFileSync(ca, 'utf8'));
  return { serial: h.cert.serialNumber.toLowerCase(), authorized: h.authorized };
};

describe('tls.source "file"', () => {
  let app: KanmonApp;
  let certFile: string;
  let keyFile: string;
  let first: ReturnType<typeof makeCertificate>;

  beforeAll(async () => {
    first = makeCertificate([GATEWAY]);
    const d = mkdtempSync(join(work, 'files-'));
    certFile = join(d, 'server.pem');
    keyFile = join(d, 'server.key');
    writeFileSync(certFile, readFileSync(first.cert));
    writeFileSync(keyFile, readFileSync(first.key));
    app = await startKanmon(baseConfig(mkdtempSync(join(work, 'data-')), { source: 'file', certFile, keyFile }), { logger: pino({ level: 'silent' }), serverCertificate: { pollMs: 100 } });
  });
  afterAll(() => app?.close());

  /** Replaces both files the way certbot-style tools do: a new file renamed over the old one. */
  function install(cert: string, key: string) {
    writeFileSync(`${keyFile}.new`, readFileSync(key));
    renameSync(`${keyFile}.new`, keyFile);
    writeFileSync(`${certFile}.new`, readFileSync(cert));
    renameSync(`${certFile}.new`, certFile);
  }

  it('serves the files, and a replaced pair without a restart', async () => {
    expect(await serialOf(app, first.ca)).toEqual({ serial: first.serial, authorized: true });
    expect(app.serverCertificate!.loaded).toBe(true);
    const second = makeCertificate([GATEWAY]);
    install(second.cert, second.key);
    await eventually(() => serialOf(app, second.ca), (s) => s.serial === second.serial && s.authorized, 'the new file pair in service');
  });

  it('keeps the pair in service when the files are broken, mismatched or garbage, and picks up the next good pair', async () => {
    const inService = app.serverCertificate!.current.serial;
    const other = makeCertificate([GATEWAY]);
    const third = makeCertificate([GATEWAY]);
    // A certificate with another certificate's key.
    writeFileSync(certFile, readFileSync(third.cert));
    writeFileSync(keyFile, readFileSync(other.key));
    // Each look at the files (the node's poll does the same) finds nothing usable and swaps nothing.
    expect(await app.serverCertificate!.poll()).toBe(false);
    expect(app.serverCertificate!.current.serial).toBe(inService);
    // Not PEM at all, and an oversized file of noise.
    writeFileSync(certFile, 'not a certificate');
    expect(await app.serverCertificate!.poll()).toBe(false);
    writeFileSync(certFile, Buffer.alloc(2_000_000, 0x41));
    expect(await app.serverCertificate!.poll()).toBe(false);
    expect(app.serverCertificate!.current.serial).toBe(inService);
    const h = await handshake(app.port, GATEWAY, undefined);
    expect(h.cert.serialNumber.toLowerCase()).toBe(inService);
    install(third.cert, third.key);
    await eventually(() => serialOf(app, third.ca), (s) => s.serial === third.serial, 'the next good pair in service');
  });

  it('refuses to start on a pair that does not belong together', async () => {
    const a = makeCertificate([GATEWAY]);
    const b = makeCertificate([GATEWAY]);
    await expect(startKanmon(baseConfig(mkdtempSync(join(work, 'data-')), { source: 'file', certFile: a.cert, keyFile: b.key }), { logger: pino({ level: 'silent' }) })).rejects.toThrow(/do not hold a usable certificate and key/);
  });
});

describe('tls.source "imported"', () => {
  const dataDir = mkdtempSync(join(work, 'imported-'));
  const config = parseConfig(baseConfig(dataDir, { source: 'imported' }));

  /** `kanmon cert server …` on this data directory, as the CLI runs it. */
  async function kanmon(...argv: string[]): Promise<{ code: number; lines: string[] }> {
    const store = await openStore(config);
    try {
      const services = createServices({ config, store, secrets: await openSecretBox(config), logger: pino({ level: 'silent' }) });
      const lines: string[] = [];
      const code = await runCommand(argv, services, config, { out: (l) => lines.push(l) });
      return { code, lines };
    } finally {
      await store.close();
    }
  }

  it('refuses to start before a certificate was imported, and says how to import one', async () => {
    await expect(startKanmon(baseConfig(dataDir, { source: 'imported' }), { logger: pino({ level: 'silent' }) })).rejects.toThrow(/kanmon cert server import --cert FILE --key FILE/);
  });

  it('refuses a mismatched pair, an expired certificate, garbage and missing options, and stores nothing', async () => {
    const a = makeCertificate([GATEWAY]);
    const b = makeCertificate([GATEWAY]);
    const expired = await makeExpiredCertificate(GATEWAY);
    const garbage = join(work, 'garbage.pem');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await expect(kanmon('cert', 'server', 'import', '--cert', a.cert, '--key', b.key)).rejects.toThrow(ServiceError);
    await expect(kanmon('cert', 'server', 'import', '--cert', a.cert, '--key', b.key)).rejects.toThrow(/does not belong to the certificate/);
    await expect(kanmon('cert', 'server', 'import', '--cert', expired.cert, '--key', expired.key)).rejects.toThrow(/expired/);
    await expect(kanmon('cert', 'server', 'import', '--cert', garbage, '--key', a.key)).rejects.toThrow(/not a valid X\.509 certificate/);
    await expect(kanmon('cert', 'server', 'import', '--cert', a.key, '--key', a.key)).rejects.toThrow(/no PEM certificate/);
    await expect(kanmon('cert', 'server', 'import', '--cert', a.cert)).rejects.toThrow(UsageError);
    await expect(kanmon('cert', 'server', 'frobnicate')).rejects.toThrow(UsageError);
    const status = await kanmon('cert', 'server', 'status');
    expect(status.lines.join('\n')).toContain('none in the store yet');
  });

  it('serves an imported certificate, and every node reloads a newly imported one', async () => {
    const first = makeCertificate([GATEWAY, 'app.kanmon.test'], { ec: false });
    const imported = await kanmon('cert', 'server', 'import', '--cert', first.cert, '--key', first.key);
    expect(imported.code).toBe(0);
    expect(imported.lines[0]).toContain(`serial ${first.serial}`);
    const app = await startKanmon(baseConfig(dataDir, { source: 'imported' }), { logger: pino({ level: 'silent' }), serverCertificate: { pollMs: 100 } });
    try {
      expect(await serialOf(app, first.ca)).toEqual({ serial: first.serial, authorized: true });
      const second = makeCertificate([GATEWAY]);
      expect((await kanmon('cert', 'server', 'import', '--cert', second.cert, '--key', second.key)).code).toBe(0);
      await eventually(() => serialOf(app, second.ca), (s) => s.serial === second.serial && s.authorized, 'the newly imported certificate in service');
      const status = await kanmon('cert', 'server', 'status');
      const text = status.lines.join('\n');
      expect(text).toContain('source:            imported');
      expect(text).toContain(`serial:            ${second.serial}`);
      expect(text).toContain('issuer:            CN=Kanmon test CA');
      const json = JSON.parse((await kanmon('cert', 'server', 'status', '--json')).lines.join('\n')) as { source: string; certificate: { serial: string; names: string[] } };
      expect(json).toMatchObject({ source: 'imported', certificate: { serial: second.serial, names: [GATEWAY] } });
      expect(JSON.stringify(json)).not.toContain('PRIVATE KEY');
      const audit = await app.services.audit.tail({ limit: 10 });
      expect(audit.filter((e) => e.type === 'tls.certificate.import' && e.result === 'success')).toHaveLength(2);
      // The key is sealed in the store, never stored as PEM.
      expect((await app.store.documents.get('tls-server-certificate', 'current', Date.now()))!.body).not.toContain('PRIVATE KEY');
    } finally {
      await app.close();
    }
  });

  it('refuses renew for a certificate Kanmon does not obtain itself', async () => {
    await expect(kanmon('cert', 'server', 'renew')).rejects.toThrow(/only "acme" certificates are renewed/);
  });
});
