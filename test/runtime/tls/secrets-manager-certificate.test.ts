/**
 * tls.source "imported" with secretArn, against a local stand-in that speaks exactly enough of
 * Secrets Manager's wire protocol (AWS JSON 1.1, `X-Amz-Target: secretsmanager.GetSecretValue`,
 * SigV4-signed) for the real AWS SDK client to work unchanged; Secrets Manager cannot run here.
 * The listener swaps to a new secret version without a restart and keeps the one in service
 * when the secret goes missing or holds something unusable.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretsManagerCertificate } from '../../../runtime/tls/secrets-manager-certificate.js';
import { ServingCertificate } from '../../../runtime/tls/serving-certificate.js';
import { GATEWAY, handshake } from './acme-support.js';

const ARN = 'arn:aws:secretsmanager:ap-northeast-1:111122223333:secret:kanmon-cert-AbCdEf';
const credentials = { accessKeyId: 'AKIAKANMONTESTONLY00', secretAccessKey: 'kanmon-test-secret-key-not-a-real-one' };
const work = mkdtempSync(join(tmpdir(), 'kanmon-sm-'));

let n = 0;
function makeCertificate(): { cert: string; key: string; ca: string; serial: string } {
  const d = join(work, `c${++n}`);
  execFileSync('mkdir', ['-p', d]);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', join(d, 'ca.key'), '-out', join(d, 'ca.pem'), '-subj', '/CN=Kanmon test CA', '-days', '30');
  run('req', ...ec, '-keyout', join(d, 'key.pem'), '-out', join(d, 'leaf.csr'), '-subj', `/CN=${GATEWAY}`);
  writeFileSync(join(d, 'ext.cnf'), `subjectAltName=DNS:${GATEWAY}\n`);
  run('x509', '-req', '-in', join(d, 'leaf.csr'), '-CA', join(d, 'ca.pem'), '-CAkey', join(d, 'ca.key'), '-CAcreateserial', '-out', join(d, 'cert.pem'), '-days', '30', '-extfile', join(d, 'ext.cnf'));
  const serial = execFileSync('openssl', ['x509', '-in', join(d, 'cert.pem'), '-noout', '-serial']).toString().trim().split('=')[1]!.toLowerCase();
  return { cert: readFileSync(join(d, 'cert.pem'), 'utf8'), key: readFileSync(join(d, 'key.pem'), 'utf8'), ca: readFileSync(join(d, 'ca.pem'), 'utf8'), serial };
}

/** What the stand-in answers for the secret: a version and its SecretString, or an error. */
let secret: { version: string; text: string } | { error: string; status: number } = { error: 'ResourceNotFoundException', status: 400 };
const calls: Array<{ target: string; region: string; secretId: string }> = [];
let endpoint: Server;
let url: string;

beforeAll(async () => {
  endpoint = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const auth = String(req.headers.authorization ?? '');
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth);
      const answer = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(json));
      };
      if (!scope || scope[2] !== 'secretsmanager') return answer(403, { __type: 'IncompleteSignatureException', Message: 'SigV4 required' });
      const { SecretId } = JSON.parse(body) as { SecretId: string };
      calls.push({ target, region: scope[1]!, secretId: SecretId });
      if (target !== 'secretsmanager.GetSecretValue') return answer(400, { __type: 'UnknownOperationException' });
      if (SecretId !== ARN || 'error' in secret) {
        const error = 'error' in secret ? secret : { error: 'ResourceNotFoundException', status: 400 };
        return answer(error.status, { __type: error.error, Message: "Secrets Manager can't find the specified secret." });
      }
      answer(200, { ARN, Name: 'kanmon-cert', VersionId: secret.version, SecretString: secret.text, VersionStages: ['AWSCURRENT'], CreatedDate: Date.now() / 1000 });
    });
  });
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => endpoint.close(r));
  rmSync(work, { recursive: true, force: true });
});

const reader = () => new SecretsManagerCertificate({ secretArn: ARN, endpoint: url, credentials });
const put = (version: string, cert: { cert: string; key: string }) => {
  secret = { version, text: JSON.stringify({ certificate: cert.cert, privateKey: cert.key }) };
};

describe('certificate from Secrets Manager', () => {
  let listener: HttpsServer;
  let serving: ServingCertificate;
  let first: ReturnType<typeof makeCertificate>;
  const port = () => (listener.address() as AddressInfo).port;

  beforeAll(async () => {
    first = makeCertificate();
    put('v1', first);
    serving = await ServingCertificate.open({ source: { kind: 'secrets-manager', secret: reader() }, logger: pino({ level: 'silent' }) });
    listener = createHttpsServer({ ...serving.tlsOptions() }, (_req, res) => res.end('ok'));
    serving.attach(listener as unknown as TlsServer);
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  });
  afterAll(() => new Promise((r) => listener.close(r)));

  it('serves the secret, asked for in the region of its ARN', async () => {
    const h = await handshake(port(), GATEWAY, first.ca);
    expect(h.authorized).toBe(true);
    expect(h.cert.serialNumber.toLowerCase()).toBe(first.serial);
    expect(calls.at(-1)).toEqual({ target: 'secretsmanager.GetSecretValue', region: 'ap-northeast-1', secretId: ARN });
    expect(serving.loaded).toBe(true);
  });

  it('swaps to a new secret version without a restart, and does nothing while the version stays', async () => {
    expect(await serving.poll()).toBe(false);
    const second = makeCertificate();
    put('v2', second);
    expect(await serving.poll()).toBe(true);
    const h = await handshake(port(), GATEWAY, second.ca);
    expect(h.authorized).toBe(true);
    expect(h.cert.serialNumber.toLowerCase()).toBe(second.serial);
  });

  it('keeps the certificate in service when the secret is missing, throttled, not JSON, incomplete, mismatched or oversized', async () => {
    const inService = serving.current.serial;
    const other = makeCertificate();
    const bad: Array<typeof secret> = [
      { error: 'ResourceNotFoundException', status: 400 },
      { error: 'ThrottlingException', status: 400 },
      { version: 'v3', text: 'certificate=abc' },
      { version: 'v4', text: JSON.stringify({ certificate: other.cert }) },
      { version: 'v5', text: JSON.stringify({ certificate: other.cert, privateKey: first.key }) },
      { version: 'v6', text: JSON.stringify({ certificate: other.cert, privateKey: 'x'.repeat(70_000) }) },
      { version: 'v7', text: 'null' },
    ];
    for (const s of bad) {
      secret = s;
      expect(await serving.poll(), JSON.stringify(s).slice(0, 80)).toBe(false);
      expect(serving.current.serial).toBe(inService);
    }
    const h = await handshake(port(), GATEWAY, undefined);
    expect(h.cert.serialNumber.toLowerCase()).toBe(inService);
  });

  it('names the reason when the secret is unusable at start', async () => {
    secret = { error: 'AccessDeniedException', status: 400 };
    await expect(reader().read()).rejects.toThrow(/could not be read: AccessDeniedException/);
    secret = { version: 'v8', text: JSON.stringify({ cert: 'x' }) };
    await expect(reader().read()).rejects.toThrow(/must be JSON \{"certificate": "<PEM chain>", "privateKey": "<PEM>"\}, got keys \["cert"\]/);
  });
});
