/**
 * Debian's pebble (the ACME test server) and pebble-challtestsrv (its companion, used here
 * only as the DNS server that resolves every test name to 127.0.0.1), started per test.
 *
 * Pebble's own HTTPS certificate is made here (the Debian package ships no test certificates);
 * the ACME client trusts it through tls.directoryCaFile. Pebble validates on the ports the
 * test's Kanmon listens on: `httpPort` for HTTP-01 and `tlsPort` for TLS-ALPN-01.
 *
 * Environment set to keep the tests fast and deterministic:
 * - PEBBLE_VA_NOSLEEP=1: no random 0-15 s sleep before each validation;
 * - PEBBLE_WFE_NONCEREJECT=0: no deliberately rejected nonces;
 * - PEBBLE_AUTHZREUSE=0: every order needs its challenges answered, so each test sees them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort } from '../../support/ports.js';

export interface Pebble {
  readonly directoryUrl: string;
  /** PEM of the CA that signs pebble's own HTTPS certificate (for tls.directoryCaFile). */
  readonly directoryCaFile: string;
  /** PEM of the root that issued certificates chain to (pebble makes a new one at each start). */
  issuingRoot(): Promise<string>;
  /** Pebble's log so far. */
  log(): string;
  /** Orders pebble has accepted (from its log). */
  ordersPlaced(): number;
  /** Certificates pebble has issued (from its log). */
  certificatesIssued(): number;
  /** Makes every name resolve to nothing, so every validation fails; `restoreDns` undoes it. */
  breakDns(): Promise<void>;
  restoreDns(): Promise<void>;
  stop(): Promise<void>;
}

export { freePort } from '../../support/ports.js';

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`${what} did not come up`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startPebble(opts: { httpPort: number; tlsPort: number }): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-pebble-'));
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.pem');
  const key = join(dir, 'key.pem');
  const csr = join(dir, 'cert.csr');
  const cert = join(dir, 'cert.pem');
  const ext = join(dir, 'ext.cnf');
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caCert, '-subj', '/CN=pebble listener CA (test)', '-days', '2');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);

  const [acmePort, mgmtPort, dnsPort, dnsMgmtPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const config = join(dir, 'pebble-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: cert,
        privateKey: key,
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const children: ChildProcess[] = [];
  let log = '';
  const dns = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsMgmtPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(dns);
  dns.stdout!.resume();
  dns.stderr!.resume();
  const dnsMgmt = `http://127.0.0.1:${dnsMgmtPort}`;
  await waitFor(async () => (await request(`${dnsMgmt}/set-default-ipv4`, { method: 'POST', body: JSON.stringify({ ip: '127.0.0.1' }) })).statusCode === 200, 'pebble-challtestsrv');

  const pebble = spawn('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  children.push(pebble);
  pebble.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  pebble.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const trusting = new Agent({ connect: { ca: execFileSync('cat', [caCert]).toString() } });
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  await waitFor(async () => (await request(directoryUrl, { dispatcher: trusting })).statusCode === 200, 'pebble');

  const count = (re: RegExp) => (log.match(re) ?? []).length;
  const setDns = async (ip: string) => {
    const res = await request(`${dnsMgmt}/set-default-ipv4`, { method: 'POST', body: JSON.stringify({ ip }) });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`challtestsrv answered ${res.statusCode}`);
  };
  return {
    directoryUrl,
    directoryCaFile: caCert,
    async issuingRoot() {
      const res = await request(`https://127.0.0.1:${mgmtPort}/roots/0`, { dispatcher: trusting });
      return res.body.text();
    },
    log: () => log,
    ordersPlaced: () => count(/Added order "/g),
    certificatesIssued: () => count(/Issued certificate serial/g),
    breakDns: () => setDns(''),
    restoreDns: () => setDns('127.0.0.1'),
    async stop() {
      await trusting.close();
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGTERM');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
