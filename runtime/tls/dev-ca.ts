import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as machineHostname } from 'node:os';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { rootCaExtensions } from './root-ca-extensions.js';

// @peculiar/x509 needs a WebCrypto provider; node's is complete for ECDSA P-256.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Sub-directory of the data directory that holds the development CA and server certificate. */
export const DEV_CA_DIR = 'dev-ca';

export interface DevCertificateOptions {
  /** DNS names the server certificate must cover, in addition to `localhost`. */
  readonly hostnames: readonly string[];
  /** IP addresses it must cover, in addition to 127.0.0.1 and ::1. */
  readonly ipAddresses?: readonly string[];
  /** Clock in epoch milliseconds; for tests. @default Date.now */
  readonly now?: () => number;
}

export interface DevCertificates {
  readonly caCertPem: string;
  /** The file an administrator adds to the trust store (see the README). */
  readonly caCertPath: string;
  readonly certPem: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly notAfter: Date;
  /** True when the CA was created by this call: browsers must be told to trust it (again). */
  readonly caCreated: boolean;
  /** True when the server certificate was (re-)issued by this call. */
  readonly serverCertIssued: boolean;
}

const DAY = 86_400_000;
const CA_LIFETIME = 3650 * DAY;
/**
 * 397 days keeps the certificate under the 398-day ceiling that Chrome and Apple platforms
 * apply to TLS server certificates, with a day to spare for the backdating below.
 */
const SERVER_LIFETIME = 397 * DAY;
/** Clocks of the machines involved may be slightly behind ours. */
const BACKDATE = 60 * 60 * 1000;
/** Renew when less than this is left, so a long-running instance never serves an expired cert. */
const RENEW_BEFORE = 30 * DAY;

const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
/** ecdsa-with-SHA256 (RFC 5758 §3.2), the signature every TLS client accepts with P-256. */
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

const LOOPBACK_IPS = ['127.0.0.1', '::1'];
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Makes sure a local development CA and a server certificate signed by it exist under
 * `<dataDir>/dev-ca/`, and returns them.
 *
 * Existing files are reused. The server certificate is re-issued when it expires within 30
 * days, does not cover the requested names, or does not belong to the current CA. The CA is
 * only replaced when it is missing, damaged or about to expire, because every browser and OS
 * that trusts it would have to be told again.
 */
export async function ensureDevCertificates(dataDir: string, options: DevCertificateOptions): Promise<DevCertificates> {
  const now = options.now ?? Date.now;
  // A caller may pass an address among the host names (e.g. the host of a URL); it belongs in
  // an iPAddress SAN, since clients never match IP literals against dNSName entries (RFC 6125 §6.2.1).
  const namesGiven = options.hostnames.filter((n) => !isIP(stripBrackets(n)));
  const ipsGiven = options.hostnames.filter((n) => isIP(stripBrackets(n)));
  const dnsNames = normaliseHostnames(['localhost', ...namesGiven]);
  const ips = normaliseIps([...LOOPBACK_IPS, ...ipsGiven, ...(options.ipAddresses ?? [])]);

  const dir = join(dataDir, DEV_CA_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
  };

  return withDirectoryLock(dir, async () => {
    let caCreated = false;
    let ca = await loadPair(paths.caCert, paths.caKey);
    if (!ca || !isUsableCa(ca, now())) {
      ca = await createCa(now());
      await writePrivateFile(paths.caKey, ca.keyPem);
      await writePrivateFile(paths.caCert, ca.certPem);
      caCreated = true;
    }

    let serverCertIssued = false;
    let server = await loadPair(paths.cert, paths.key);
    if (!server || caCreated || !isUsableServerCert(server, ca, dnsNames, ips, now())) {
      server = await issueServerCert(ca, dnsNames, ips, now());
      await writePrivateFile(paths.key, server.keyPem);
      await writePrivateFile(paths.cert, server.certPem);
      serverCertIssued = true;
    }

    return {
      caCertPem: ca.certPem,
      caCertPath: paths.caCert,
      certPem: server.certPem,
      keyPem: server.keyPem,
      certPath: paths.cert,
      keyPath: paths.key,
      notAfter: new Date(server.cert.validTo),
      caCreated,
      serverCertIssued,
    };
  });
}

interface CertAndKey {
  readonly cert: X509Certificate;
  readonly certPem: string;
  readonly key: KeyObject;
  readonly keyPem: string;
}

async function loadPair(certPath: string, keyPath: string): Promise<CertAndKey | undefined> {
  const keyPem = await readPrivateFile(keyPath);
  const certPem = await readFile(certPath, 'utf8').catch((err: unknown) => {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (keyPem === undefined || certPem === undefined) return undefined;
  try {
    return { cert: new X509Certificate(certPem), certPem, key: createPrivateKey(keyPem), keyPem };
  } catch {
    // Damaged or foreign files are treated as missing and replaced.
    return undefined;
  }
}

function isUsableCa(ca: CertAndKey, now: number): boolean {
  return (
    ca.cert.ca &&
    isP256(ca.key) &&
    ca.cert.checkPrivateKey(ca.key) &&
    ca.cert.verify(ca.cert.publicKey) &&
    Date.parse(ca.cert.validTo) - now > RENEW_BEFORE
  );
}

function isUsableServerCert(server: CertAndKey, ca: CertAndKey, dnsNames: readonly string[], ips: readonly string[], now: number): boolean {
  const { cert } = server;
  if (cert.ca || !isP256(server.key) || !cert.checkPrivateKey(server.key)) return false;
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) return false;
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) - now <= RENEW_BEFORE) return false;
  const sanDns = new Set(
    new x509.X509Certificate(server.certPem)
      .getExtension(x509.SubjectAlternativeNameExtension)
      ?.names.items.filter((n) => n.type === 'dns')
      .map((n) => n.value.toLowerCase()) ?? [],
  );
  // Exact entries, not wildcard matching: a name the caller asked for is listed as such.
  return dnsNames.every((n) => sanDns.has(n)) && ips.every((ip) => cert.checkIP(ip) !== undefined);
}

async function createCa(now: number): Promise<CertAndKey> {
  const keys = (await webcrypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(now - BACKDATE);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    // The machine name tells apart the CAs of different developers in a shared trust store.
    name: [{ CN: [`Kanmon Development CA (${safeMachineName()})`] }, { O: ['Kanmon development'] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + CA_LIFETIME),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: await rootCaExtensions(keys.publicKey),
  });
  return exportPair(cert, keys.privateKey);
}

async function issueServerCert(ca: CertAndKey, dnsNames: readonly string[], ips: readonly string[], now: number): Promise<CertAndKey> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caSigningKey = await webcrypto.subtle.importKey('pkcs8', ca.key.export({ format: 'der', type: 'pkcs8' }), EC_ALGORITHM, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const notBefore = new Date(now - BACKDATE);
  // Never outlive the issuer: a chain is only valid while every certificate in it is.
  const notAfter = new Date(Math.min(notBefore.getTime() + SERVER_LIFETIME, Date.parse(ca.cert.validTo)));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: [{ CN: [dnsNames[0] ?? 'localhost'] }, { O: ['Kanmon development'] }],
    // The issuer must equal the CA's subject byte for byte (RFC 5280 §6.1.3 (a)(4)).
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caSigningKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // An ECDSA key in TLS 1.2/1.3 signs the handshake (ECDHE); it never enciphers keys.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      // Browsers match names only against the SAN (RFC 6125 §6.4.4; Chrome ignores the CN).
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      caKeyId ? new x509.AuthorityKeyIdentifierExtension(caKeyId) : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return exportPair(cert, keys.privateKey);
}

async function exportPair(cert: x509.X509Certificate, privateKey: CryptoKey): Promise<CertAndKey> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', privateKey));
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  const certPem = `${cert.toString('pem').trim()}\n`;
  return { cert: new X509Certificate(certPem), certPem, key, keyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/**
 * RFC 5280 §4.1.2.2: positive, at most 20 octets. 16 random octets with the top bit cleared
 * (so the DER INTEGER stays positive without padding) and the next bit set (so it never
 * shrinks) carry 126 bits of entropy, well over the 64 the CA/Browser Forum asks for.
 */
function randomSerialNumber(): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial.toString('hex');
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

function normaliseHostnames(names: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of names) {
    if (typeof raw !== 'string') throw new TypeError(`dev certificate host names must be strings, got ${JSON.stringify(raw)}`);
    const wildcard = raw.startsWith('*.');
    const ascii = domainToASCII((wildcard ? raw.slice(2) : raw).replace(/\.$/, '')).toLowerCase();
    if (!ascii || ascii.length > 253 || !ascii.split('.').every((label) => DNS_LABEL.test(label))) {
      throw new TypeError(`dev certificate host name must be a DNS name such as "gate.example.test" or "*.example.test", got ${JSON.stringify(raw)}`);
    }
    const name = wildcard ? `*.${ascii}` : ascii;
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function normaliseIps(addresses: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of addresses) {
    const ip = typeof raw === 'string' ? stripBrackets(raw) : '';
    const family = isIP(ip);
    if (!family) throw new TypeError(`dev certificate IP address must be an IPv4 or IPv6 address, got ${JSON.stringify(raw)}`);
    // One spelling per address (RFC 5952 for IPv6), so "0:0::1" and "::1" are one entry.
    const canonical = family === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

function stripBrackets(value: string): string {
  return value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
}

function safeMachineName(): string {
  const name = machineHostname().replace(/[^A-Za-z0-9._-]/g, '').slice(0, 40);
  return name || 'localhost';
}

/** Reads a private key file, refusing one that other users could read. */
async function readPrivateFile(path: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const info = await handle.stat();
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new Error(
        `refusing to use ${path}: the private key is accessible to group or other users (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}). ` +
          `Run "chmod 600 ${path}" if nobody else could have read it; otherwise delete the ${DEV_CA_DIR} directory so that a new CA is made, and trust the new one.`,
      );
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Writes through a 0600 temporary file and a rename, so readers never see half a file. */
async function writePrivateFile(path: string, contents: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(contents, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

const LOCK_WAIT = 30_000;
const LOCK_STALE = 60_000;

/**
 * Two processes starting on one data directory (say `npm start` twice) must not each make a
 * CA and leave ca.crt from one beside ca.key from the other; an exclusive lock file
 * serialises them. A lock left by a crashed process is taken over once it is stale.
 */
async function withDirectoryLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.lock');
  const deadline = Date.now() + LOCK_WAIT;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > LOCK_STALE) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}; if no other Kanmon process is starting, delete it`);
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}
