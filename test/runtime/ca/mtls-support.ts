import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { KanmonHarness } from '../../support/kanmon-harness.js';
import { ownerUri } from '../../../runtime/ca/names.js';
import { openssl, pemOf, run } from './support.js';

/** An upstream that answers with the headers it received, as JSON. */
export async function startEchoUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const body = JSON.stringify({ url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What a TLS client presents: a PKCS#12 with its password, or PEM certificate and key. */
export type ClientIdentity = { pfx: Buffer; passphrase: string } | { cert: string; key: string } | undefined;

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

/**
 * A TLS client of a harness, with one client identity (or none). Each client keeps its own
 * connection pool, so keep-alive reuse is what a browser would do.
 */
export class TlsClient {
  readonly agent: Agent;
  constructor(
    private readonly h: KanmonHarness,
    identity: ClientIdentity,
  ) {
    this.agent = new Agent({ connect: { ca: readFileSync(h.app.devCaCertPath!), servername: 'localhost', ...(identity ?? {}) }, pipelining: 1 });
  }

  async get(path: string, opts: { cookie?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
    const res = await request(`https://127.0.0.1:${this.h.app.port}${path}`, {
      headers: { host: `localhost:${this.h.app.port}`, accept: 'text/html', ...(opts.cookie ? { cookie: opts.cookie } : {}), ...(opts.headers ?? {}) },
      dispatcher: this.agent,
    });
    return { status: res.statusCode, headers: res.headers as Answer['headers'], text: await res.body.text() };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** A scratch directory for key and certificate files handed to curl and openssl. */
export class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), 'kanmon-mtls-'));
  file(name: string, contents: string | Uint8Array): string {
    const path = join(this.dir, name);
    writeFileSync(path, contents, { mode: 0o600 });
    return path;
  }
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A certificate signed by Kanmon's own CA outside the service (so never stored), with the
 * validity asked for: the way to get an expired certificate without waiting a year.
 */
export async function caSignedOutsideStore(h: KanmonHarness, userId: string, notBefore: Date, notAfter: Date): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = await h.app.services.ca.signClientCertificate({
    serial: '01'.padEnd(32, '7'),
    subject: [{ CN: ['expired laptop'] }],
    publicKey: keys.publicKey,
    notBefore,
    notAfter,
    sanUris: [ownerUri({ kind: 'user', userId })],
    crlUrls: [],
  });
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: pemOf(der), key: pemOf(pkcs8, 'PRIVATE KEY') };
}

/** Another CA and a client certificate from it, and a self-signed client certificate, made by openssl. */
export async function foreignCertificates(scratch: Scratch): Promise<{ otherCa: { cert: string; key: string; caCert: string }; selfSigned: { cert: string; key: string } }> {
  const d = scratch.dir;
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=Other CA', '-keyout', join(d, 'other-ca.key'), '-out', join(d, 'other-ca.pem'), '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=alice', '-keyout', join(d, 'other.key'), '-out', join(d, 'other.csr'));
  writeFileSync(join(d, 'client.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  await openssl('x509', '-req', '-in', join(d, 'other.csr'), '-CA', join(d, 'other-ca.pem'), '-CAkey', join(d, 'other-ca.key'), '-CAcreateserial', '-days', '30', '-extfile', join(d, 'client.ext'), '-out', join(d, 'other.pem'));
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=alice self-signed', '-keyout', join(d, 'self.key'), '-out', join(d, 'self.pem'), '-addext', 'extendedKeyUsage=clientAuth');
  const read = (f: string) => readFileSync(join(d, f), 'utf8');
  return {
    otherCa: { cert: read('other.pem'), key: read('other.key'), caCert: read('other-ca.pem') },
    selfSigned: { cert: read('self.pem'), key: read('self.key') },
  };
}

/** curl through the real listener (HTTP status and body), with optional client certificate arguments. */
export async function curl(h: KanmonHarness, path: string, args: string[] = []): Promise<{ status: number; body: string }> {
  const out = await run('/usr/bin/curl', [
    '-sS',
    '--cacert', h.app.devCaCertPath!,
    '--resolve', `localhost:${h.app.port}:127.0.0.1`,
    '-H', 'accept: text/html',
    '-w', '\n%{http_code}',
    ...args,
    `https://localhost:${h.app.port}${path}`,
  ]);
  const text = out.stdout;
  const cut = text.lastIndexOf('\n');
  return { status: Number(text.slice(cut + 1)), body: text.slice(0, cut) };
}

/** Polls until `probe` says yes, for at most `tries` × `everyMs` (revocation lands within the cache bound). */
export async function eventually(probe: () => Promise<boolean>, tries = 60, everyMs = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

/**
 * openssl s_client against the listener, stdin closed after `input` so it ends; stdout and stderr
 * together. In TLS 1.3 the server judges the client's certificate after the client has finished
 * (RFC 8446 §4.4.2), so a refusal shows on the first read: send a request to see it.
 */
export function sClient(h: KanmonHarness, extra: string[] = [], input = ''): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${h.app.port}`, '-servername', 'localhost', '-CAfile', h.app.devCaCertPath!, ...extra],
      { timeout: 15_000 },
      (_err, stdout, stderr) => resolve(`${stdout}${stderr}`),
    );
    child.stdin?.end(input);
  });
}
