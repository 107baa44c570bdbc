/**
 * The secure-context swap keeps the listener's client-certificate settings: after a new server
 * certificate is swapped in, the handshake still asks for a client certificate, still verifies
 * it against the client CAs, and still refuses one from elsewhere in reject mode.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServingCertificate } from '../../../runtime/tls/serving-certificate.js';

const work = mkdtempSync(join(tmpdir(), 'kanmon-swap-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function ca(name: string): { cert: string; key: string } {
  const d = join(work, `ca${++n}`);
  execFileSync('mkdir', ['-p', d]);
  run('req', '-x509', ...ec, '-keyout', join(d, 'key.pem'), '-out', join(d, 'cert.pem'), '-subj', `/CN=${name}`, '-days', '30');
  return { cert: join(d, 'cert.pem'), key: join(d, 'key.pem') };
}

function leaf(issuer: { cert: string; key: string }, cn: string, ext: string): { cert: string; key: string; serial: string } {
  const d = join(work, `leaf${++n}`);
  execFileSync('mkdir', ['-p', d]);
  run('req', ...ec, '-keyout', join(d, 'key.pem'), '-out', join(d, 'req.csr'), '-subj', `/CN=${cn}`);
  writeFileSync(join(d, 'ext.cnf'), `${ext}\n`);
  run('x509', '-req', '-in', join(d, 'req.csr'), '-CA', issuer.cert, '-CAkey', issuer.key, '-CAcreateserial', '-out', join(d, 'cert.pem'), '-days', '30', '-extfile', join(d, 'ext.cnf'));
  const serial = execFileSync('openssl', ['x509', '-in', join(d, 'cert.pem'), '-noout', '-serial']).toString().trim().split('=')[1]!.toLowerCase();
  return { cert: join(d, 'cert.pem'), key: join(d, 'key.pem'), serial };
}

describe('certificate swap with client certificates', () => {
  const serverCa = ca('server CA');
  const clientCa = ca('client CA');
  const strangerCa = ca('stranger CA');
  const client = leaf(clientCa, 'aiko', 'extendedKeyUsage=clientAuth');
  const stranger = leaf(strangerCa, 'mallory', 'extendedKeyUsage=clientAuth');
  const first = leaf(serverCa, 'gw.kanmon.test', 'subjectAltName=DNS:gw.kanmon.test');
  const second = leaf(serverCa, 'gw.kanmon.test', 'subjectAltName=DNS:gw.kanmon.test');
  const d = mkdtempSync(join(work, 'files-'));
  const certFile = join(d, 'server.pem');
  const keyFile = join(d, 'server.key');

  let server: HttpsServer;
  let serving: ServingCertificate;
  const port = () => (server.address() as AddressInfo).port;

  beforeAll(async () => {
    writeFileSync(certFile, readFileSync(first.cert));
    writeFileSync(keyFile, readFileSync(first.key));
    serving = await ServingCertificate.open({ source: { kind: 'file', certFile, keyFile }, logger: pino({ level: 'silent' }) });
    const clientAuth = { requestCert: true as const, rejectUnauthorized: true, ca: [readFileSync(clientCa.cert, 'utf8')] };
    server = createHttpsServer({ ...serving.tlsOptions(), ...clientAuth }, (_req, res) => res.end('ok'));
    serving.attach(server as unknown as TlsServer, clientAuth);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterAll(() => new Promise((r) => server.close(r)));

  function handshake(withCert?: { cert: string; key: string }): Promise<{ serverSerial: string; ok: boolean; error?: string }> {
    return new Promise((resolve) => {
      const socket: TLSSocket = connect({
        host: '127.0.0.1',
        port: port(),
        servername: 'gw.kanmon.test',
        ca: readFileSync(serverCa.cert, 'utf8'),
        ...(withCert ? { cert: readFileSync(withCert.cert), key: readFileSync(withCert.key) } : {}),
      });
      socket.once('secureConnect', () => {
        const serverSerial = socket.getPeerCertificate().serialNumber.toLowerCase();
        // TLS 1.3: a refused client certificate arrives as an alert after the client's Finished.
        socket.write('GET / HTTP/1.1\r\nhost: gw.kanmon.test\r\nconnection: close\r\n\r\n');
        let body = '';
        socket.on('data', (c: Buffer) => (body += c.toString()));
        socket.once('end', () => resolve({ serverSerial, ok: body.includes('200 OK') }));
        socket.once('error', (err) => resolve({ serverSerial, ok: false, error: err.message }));
      });
      socket.once('error', (err) => resolve({ serverSerial: '', ok: false, error: err.message }));
    });
  }

  it('before and after a swap: the right client certificate passes, a stranger and none are refused', async () => {
    expect(await handshake(client)).toMatchObject({ serverSerial: first.serial, ok: true });
    expect((await handshake(stranger)).ok).toBe(false);
    expect((await handshake()).ok).toBe(false);

    writeFileSync(keyFile, readFileSync(second.key));
    writeFileSync(certFile, readFileSync(second.cert));
    expect(await serving.poll()).toBe(true);

    expect(await handshake(client)).toMatchObject({ serverSerial: second.serial, ok: true });
    expect((await handshake(stranger)).ok).toBe(false);
    expect((await handshake()).ok).toBe(false);
  });
});
