import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServiceError } from '../../../runtime/services/errors.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { User } from '../../../runtime/store/types.js';
import { ensureDevCertificates } from '../../../runtime/tls/dev-ca.js';
import { CaWorld, openssl, pemOf, type CaNode } from './support.js';

const DAY = 86_400_000;
let world: CaWorld;
let node: CaNode;
let hanako: User;

beforeEach(async () => {
  world = await CaWorld.create({ ca: { commonName: 'Example Client CA', organization: 'Example K.K.' }, clientCertificates: { maxActivePerUser: 3 } });
  node = world.node();
  hanako = await node.users.addUser({ username: 'hanako', displayName: '山田 花子' });
});
afterEach(async () => {
  await world.close();
});

async function writeDownload(serial: string, name = `${serial}.p12`): Promise<string> {
  const file = await node.certificates.download(serial);
  return world.file(name, file.pkcs12);
}

/** The certificate inside a PKCS#12, as PEM, read by openssl. */
async function certFromPkcs12(path: string, password: string, legacy = false): Promise<string> {
  const out = await openssl('pkcs12', '-in', path, '-passin', `pass:${password}`, '-nokeys', '-clcerts', ...(legacy ? ['-legacy'] : []));
  return out.slice(out.indexOf('-----BEGIN CERTIFICATE-----'));
}

describe('issuing a user certificate', () => {
  it('is EC P-256, one year, bound to the user id in a URI SAN, clientAuth, and verifies against the CA', async () => {
    const issued = await node.certificates.issueForUser(hanako, { deviceLabel: 'Work laptop' });
    const { certificate } = issued;
    expect(certificate).toMatchObject({ owner: { kind: 'user', userId: hanako.id }, deviceLabel: 'Work laptop', keyType: 'ec-p256', status: 'active', issuedBy: 'cli' });
    // RFC 5280 §4.1.2.2: positive, at most 20 octets; here 16 random octets with 126 random bits.
    expect(certificate.serial).toMatch(/^[4-7][0-9a-f]{31}$/);
    expect(issued.password).toMatch(/^[2-9a-hjkmnp-z]{5}(-[2-9a-hjkmnp-z]{5}){3}$/);

    const caPath = world.file('ca.pem', await node.ca.certificatePem());
    const certPath = world.file('cert.pem', pemOf(certificate.certificateDer));
    expect(await openssl('verify', '-CAfile', caPath, '-purpose', 'sslclient', certPath)).toContain(`${certPath}: OK`);
    const text = await openssl('x509', '-in', certPath, '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space');
    expect(text).toContain('Subject: O=Example K.K., CN=hanako (Work laptop)');
    expect(text).toContain('Issuer: O=Example K.K., CN=Example Client CA');
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Client Authentication/);
    expect(text).toMatch(new RegExp(`X509v3 Subject Alternative Name:\\s+URI:urn:kanmon:user:${hanako.id}\\n`));
    expect(text).toContain('URI:https://gate.example.test/.kanmon/ca/crl');
    const x = new X509Certificate(certificate.certificateDer);
    expect(Date.parse(x.validTo) - Date.parse(x.validFrom)).toBe(365 * DAY);
    expect(certificate.expiresAt).toBe(Date.parse(x.validTo));
    expect(await openssl('x509', '-in', certPath, '-noout', '-fingerprint', '-sha256')).toContain(certificate.fingerprint.toUpperCase().match(/../g)!.join(':'));
    expect(await node.certificates.get(certificate.serial)).toEqual(certificate);
  });

  it('writes the private key only into the PKCS#12: the store holds neither the key nor the password', async () => {
    const issued = await node.certificates.issueForUser(hanako, { deviceLabel: 'phone' });
    const path = await writeDownload(issued.certificate.serial);
    const keyPem = await openssl('pkcs12', '-in', path, '-passin', `pass:${issued.password}`, '-nocerts', '-nodes');
    const key = createPrivateKey(keyPem.slice(keyPem.indexOf('-----BEGIN PRIVATE KEY-----')));
    const scalar = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
    await world.store.close();
    const db = Buffer.concat([readFileSync(join(world.dir, 'kanmon.db')), readFileSync(join(world.dir, 'kanmon.db-wal'), { flag: 'a+' })]);
    expect(db.includes(scalar)).toBe(false);
    expect(db.includes(Buffer.from(issued.password))).toBe(false);
    expect(db.includes(Buffer.from(key.export({ format: 'der', type: 'pkcs8' }) as Buffer))).toBe(false);
    // Reopen so afterEach can close it.
    Object.assign(world, { store: await openSqliteStore({ file: join(world.dir, 'kanmon.db') }) });
  });

  it('offers RSA 2048 and the legacy 3DES/SHA-1 file for old clients', async () => {
    const issued = await node.certificates.issueForUser(hanako, { deviceLabel: 'old pc', keyType: 'rsa-2048', profile: 'legacy' });
    expect(issued.certificate.keyType).toBe('rsa-2048');
    const path = await writeDownload(issued.certificate.serial);
    const info = await openssl('pkcs12', '-info', '-nokeys', '-legacy', '-in', path, '-passin', `pass:${issued.password}`);
    expect(info).toContain('MAC: sha1');
    expect(info).toContain('Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC');
    const certPem = await certFromPkcs12(path, issued.password, true);
    expect(await openssl('x509', '-noout', '-text', '-in', world.file('rsa.pem', certPem))).toContain('Public-Key: (2048 bit)');
    const caPath = world.file('ca.pem', await node.ca.certificatePem());
    expect(await openssl('verify', '-CAfile', caPath, '-purpose', 'sslclient', join(world.dir, 'rsa.pem'))).toContain(': OK');
  });

  it('puts the certificate and the CA into the modern PKCS#12, which openssl reads with the password', async () => {
    const issued = await node.certificates.issueForUser(hanako, { deviceLabel: 'tablet' });
    const path = await writeDownload(issued.certificate.serial);
    const info = await openssl('pkcs12', '-info', '-nokeys', '-in', path, '-passin', `pass:${issued.password}`);
    expect(info).toContain('MAC: sha256');
    expect(info).toContain('PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC');
    expect(info).toContain('friendlyName: hanako (tablet)');
    expect(info).toContain('subject=O = Example K.K., CN = Example Client CA');
    const caPath = world.file('ca.pem', await node.ca.certificatePem());
    expect(await openssl('verify', '-CAfile', caPath, world.file('c.pem', await certFromPkcs12(path, issued.password)))).toContain(': OK');
    expect(issued.fileName).toMatch(/^hanako-tablet-[0-9a-f]{8}\.p12$/);
  });

  it('keeps to the per-user limit of active certificates; a revoked one frees its place', async () => {
    const serials = [];
    for (let i = 0; i < 3; i++) serials.push((await node.certificates.issueForUser(hanako, { deviceLabel: `d${i}` })).certificate.serial);
    await expect(node.certificates.issueForUser(hanako)).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('the maximum') });
    const failures = (await node.audit.tail()).filter((e) => e.type === 'cert.issue' && e.result === 'failure');
    expect(failures.map((e) => e.reason)).toEqual(['limit-reached']);
    await node.certificates.revoke(serials[0]!);
    await node.certificates.issueForUser(hanako, { deviceLabel: 'replacement' });
  });

  it('refuses disabled users, bad labels and bad key types', async () => {
    const ben = await node.users.addUser({ username: 'ben' });
    await node.users.setDisabled('ben', true);
    await expect(node.certificates.issueForUser({ ...ben, disabled: true })).rejects.toMatchObject({ code: 'forbidden' });
    await expect(node.certificates.issueForUser(hanako, { deviceLabel: ' ' })).rejects.toMatchObject({ code: 'invalid-input' });
    await expect(node.certificates.issueForUser(hanako, { keyType: 'ed25519' as never })).rejects.toMatchObject({ code: 'invalid-input' });
    await expect(node.certificates.issueShared('kiosk 1')).rejects.toMatchObject({ code: 'invalid-input' });
  });
});

describe('downloads', () => {
  it('hands out the file up to the per-issuance limit, then forgets it', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const serial = issued.certificate.serial;
    expect(issued.downloadsAllowed).toBe(3);
    const files = [];
    for (let i = 0; i < 3; i++) files.push(await node.certificates.download(serial));
    expect(files.map((f) => f.downloadsLeft)).toEqual([2, 1, 0]);
    expect(Buffer.from(files[0]!.pkcs12).equals(Buffer.from(files[2]!.pkcs12))).toBe(true);
    await expect(node.certificates.download(serial)).rejects.toMatchObject({ code: 'token-unusable' });
    expect(await world.store.certificateDeliveries.get(serial)).toBeUndefined();
    expect(await node.certificates.pendingDownload(serial)).toBeUndefined();
    const downloads = (await node.audit.tail()).filter((e) => e.type === 'cert.download');
    // Events of one millisecond have no order among themselves; count them.
    expect(downloads.map((e) => e.result).sort()).toEqual(['failure', 'success', 'success', 'success']);
  });

  it('expires with the download link lifetime', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    world.clock += 7 * DAY;
    await expect(node.certificates.download(issued.certificate.serial)).rejects.toMatchObject({ code: 'token-unusable' });
  });

  it('gives single-use links that expire; the token is stored only hashed', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const link = await node.certificates.createDownloadLink(issued.certificate.serial, { actor: 'admin' });
    expect(link.url).toBe(`https://gate.example.test/.kanmon/cert/download?token=${link.token}`);
    const ctx = { ip: '192.0.2.5', userAgent: 'test' };
    const file = await node.certificates.redeemDownloadLink(link.token, ctx);
    expect(file.serial).toBe(issued.certificate.serial);
    const info = await openssl('pkcs12', '-info', '-nokeys', '-in', world.file('l.p12', file.pkcs12), '-passin', `pass:${issued.password}`);
    expect(info).toContain('MAC: sha256');
    await expect(node.certificates.redeemDownloadLink(link.token, ctx)).rejects.toMatchObject({ code: 'token-unusable', message: expect.stringContaining('used') });

    const short = await node.certificates.createDownloadLink(issued.certificate.serial, { ttlSeconds: 600 });
    world.clock += 600_000;
    await expect(node.certificates.redeemDownloadLink(short.token, ctx)).rejects.toMatchObject({ message: expect.stringContaining('expired') });
    await expect(node.certificates.redeemDownloadLink('x'.repeat(43), ctx)).rejects.toMatchObject({ message: expect.stringContaining('unknown') });
    await expect(node.certificates.redeemDownloadLink('../etc', ctx)).rejects.toBeInstanceOf(ServiceError);

    await world.store.close();
    const db = readFileSync(join(world.dir, 'kanmon.db'));
    expect(db.includes(Buffer.from(link.token))).toBe(false);
    Object.assign(world, { store: await openSqliteStore({ file: join(world.dir, 'kanmon.db') }) });
  });

  it('stops handing out the file of a revoked certificate', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const link = await node.certificates.createDownloadLink(issued.certificate.serial);
    await node.certificates.revoke(issued.certificate.serial, { reason: 'keyCompromise' });
    await expect(node.certificates.redeemDownloadLink(link.token, { ip: 'x', userAgent: 'y' })).rejects.toBeInstanceOf(ServiceError);
    await expect(node.certificates.download(issued.certificate.serial)).rejects.toBeInstanceOf(ServiceError);
    await expect(node.certificates.createDownloadLink(issued.certificate.serial)).rejects.toMatchObject({ code: 'conflict' });
  });
});

describe('revoking and deleting', () => {
  it('revokes once, audited with before and after; revoking again is harmless', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const first = await node.certificates.revoke(issued.certificate.serial, { reason: 'keyCompromise', actor: 'admin' });
    expect(first.changed).toBe(true);
    expect(first.certificate).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise', revokedAt: world.clock });
    const again = await node.certificates.revoke(issued.certificate.serial.toUpperCase(), { reason: 'superseded' });
    expect(again).toEqual({ certificate: first.certificate, changed: false });
    const revokes = (await node.audit.tail()).filter((e) => e.type === 'cert.revoke');
    expect(revokes).toHaveLength(1);
    expect(revokes[0]).toMatchObject({
      userId: hanako.id,
      actor: 'admin',
      details: { serial: issued.certificate.serial, reason: 'keyCompromise', before: { status: 'active' }, after: { status: 'revoked', revokedAt: world.clock } },
    });
    await expect(node.certificates.revoke('7abc')).rejects.toMatchObject({ code: 'not-found' });
    await expect(node.certificates.revoke(issued.certificate.serial, { reason: 'bogus' as never })).rejects.toMatchObject({ code: 'invalid-input' });
  });

  it('deletes as a tombstone that stays revoked and on the CRL', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const deleted = await node.certificates.delete(issued.certificate.serial);
    expect(deleted.certificate).toMatchObject({ status: 'deleted', revocationReason: 'cessationOfOperation' });
    expect((await node.certificates.delete(issued.certificate.serial)).changed).toBe(false);
    expect(await node.certificates.listForUser(hanako.id)).toEqual([]);
    expect(await node.certificates.listForUser(hanako.id, { includeDeleted: true })).toHaveLength(1);
    expect(await openssl('crl', '-inform', 'DER', '-noout', '-text', '-in', world.file('d.crl', await node.ca.crlDer()))).toContain(issued.certificate.serial.toUpperCase());
    const audit = (await node.audit.tail()).find((e) => e.type === 'cert.delete');
    expect(audit?.details).toMatchObject({ before: { status: 'active' }, after: { status: 'deleted', revocationReason: 'cessationOfOperation' } });
    expect((await node.certificates.checkPresented(issued.certificate.certificateDer)).valid).toBe(false);
  });
});

describe('shared device certificates', () => {
  it('name the device label, not a person, and are listed by label', async () => {
    const kiosk = await node.certificates.issueShared('kiosk-1', { actor: 'admin' });
    const lobby = await node.certificates.issueShared('lobby', { deviceLabel: 'Lobby terminal' });
    expect(kiosk.certificate.owner).toEqual({ kind: 'shared', label: 'kiosk-1' });
    const text = await openssl('x509', '-noout', '-text', '-in', world.file('k.pem', pemOf(kiosk.certificate.certificateDer)));
    expect(text).toMatch(/URI:urn:kanmon:shared:kiosk-1\n/);
    expect((await node.certificates.listShared()).map((c) => c.serial)).toEqual([kiosk.certificate.serial, lobby.certificate.serial]);
    expect((await node.certificates.listShared({ label: 'lobby' }))[0]!.deviceLabel).toBe('Lobby terminal');
    // Shared certificates have no per-user limit.
    for (let i = 0; i < 4; i++) await node.certificates.issueShared('kiosk-1');
    await node.certificates.revoke(kiosk.certificate.serial);
    expect((await node.certificates.listShared({ label: 'kiosk-1' })).filter((c) => c.status === 'active')).toHaveLength(4);
  });
});

describe('expiry and renewal', () => {
  it('lists certificates that lapse within the warning window, and renews one before it lapses', async () => {
    const old = await node.certificates.issueForUser(hanako, { deviceLabel: 'laptop', keyType: 'rsa-2048' });
    world.clock += 30 * DAY;
    const young = await node.certificates.issueForUser(hanako, { deviceLabel: 'phone' });
    expect(await node.certificates.listExpiring()).toEqual([]);
    world.clock += 310 * DAY; // old expires in ~25 days, young in ~55
    expect((await node.certificates.listExpiring()).map((c) => c.serial)).toEqual([old.certificate.serial]);
    expect((await node.certificates.listExpiring(60)).map((c) => c.serial)).toEqual([old.certificate.serial, young.certificate.serial]);

    // At the limit (3 with these two and one more), a renewal still goes through: the old one lapses soon.
    await node.certificates.issueForUser(hanako, { deviceLabel: 'tablet' });
    const renewed = await node.certificates.renew(old.certificate.serial, { actor: 'admin' });
    expect(renewed.certificate).toMatchObject({ owner: old.certificate.owner, deviceLabel: 'laptop', keyType: 'rsa-2048', renewalOf: old.certificate.serial });
    expect(renewed.certificate.expiresAt).toBeGreaterThan(old.certificate.expiresAt);
    await expect(node.certificates.renew(old.certificate.serial)).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('already renewed') });
    expect((await node.certificates.checkPresented(old.certificate.certificateDer)).valid).toBe(true);
    const issue = (await node.audit.tail()).find((e) => e.type === 'cert.issue' && (e.details as { renewalOf?: string }).renewalOf);
    expect(issue?.details).toMatchObject({ renewalOf: old.certificate.serial });
  });
});

describe('checkPresented', () => {
  it('accepts a valid user certificate and names the user; a shared one names the device', async () => {
    const user = await node.certificates.issueForUser(hanako, { deviceLabel: 'laptop' });
    const shared = await node.certificates.issueShared('kiosk-1');
    expect(await node.certificates.checkPresented(user.certificate.certificateDer)).toEqual({
      valid: true,
      serial: user.certificate.serial,
      fingerprint: user.certificate.fingerprint,
      owner: { kind: 'user', userId: hanako.id },
      deviceLabel: 'laptop',
      expiresAt: user.certificate.expiresAt,
      statusReadAt: world.clock,
    });
    expect(await node.certificates.checkPresented(shared.certificate.certificateDer)).toMatchObject({ valid: true, owner: { kind: 'shared', label: 'kiosk-1' } });
  });

  it('refuses a certificate revoked on another node once the cache bound has passed, and at once on the revoking node', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const der = issued.certificate.certificateDer;
    const other = world.node();
    expect(node.certificates.statusCacheMs).toBe(5000);
    expect((await node.certificates.checkPresented(der)).valid).toBe(true);
    expect((await other.certificates.checkPresented(der)).valid).toBe(true);

    await other.certificates.revoke(issued.certificate.serial, { reason: 'keyCompromise' });
    expect(await other.certificates.checkPresented(der)).toMatchObject({ valid: false, reason: 'revoked', owner: { kind: 'user', userId: hanako.id } });
    // This node may still answer from its cache, but never past the documented bound.
    world.clock += node.certificates.statusCacheMs - 1;
    expect((await node.certificates.checkPresented(der)).valid).toBe(true);
    world.clock += 1;
    expect(await node.certificates.checkPresented(der)).toMatchObject({ valid: false, reason: 'revoked' });
  });

  it('refuses an expired certificate, one not yet valid, and garbage', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    world.clock = issued.certificate.expiresAt;
    expect(await node.certificates.checkPresented(issued.certificate.certificateDer)).toMatchObject({ valid: false, reason: 'expired', serial: issued.certificate.serial });
    world.clock = issued.certificate.issuedAt - 2 * 3_600_000;
    expect(await node.certificates.checkPresented(issued.certificate.certificateDer)).toMatchObject({ valid: false, reason: 'not-yet-valid' });
    expect(await node.certificates.checkPresented(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toEqual({ valid: false, reason: 'malformed' });
  });

  it('refuses certificates from another CA and self-signed ones, even with a Kanmon SAN', async () => {
    const elsewhere = await CaWorld.create();
    try {
      const foreignNode = elsewhere.node();
      const foreignUser = await foreignNode.users.addUser({ username: 'hanako' });
      const foreign = await foreignNode.certificates.issueForUser({ ...foreignUser, id: hanako.id });
      expect(await node.certificates.checkPresented(foreign.certificate.certificateDer)).toMatchObject({ valid: false, reason: 'unknown-issuer' });
    } finally {
      await elsewhere.close();
    }
    await openssl(
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(world.dir, 'self.key'),
      '-out', join(world.dir, 'self.pem'), '-subj', '/CN=hanako', '-days', '1', '-addext', `subjectAltName=URI:urn:kanmon:user:${hanako.id}`,
    );
    const selfSigned = new X509Certificate(readFileSync(join(world.dir, 'self.pem'))).raw;
    expect(await node.certificates.checkPresented(selfSigned)).toMatchObject({ valid: false, reason: 'unknown-issuer' });
  });

  it('refuses a certificate the CA signed that the store does not know', async () => {
    const { webcrypto } = await import('node:crypto');
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const der = await node.ca.signClientCertificate({
      serial: '4f00000000000000000000000000abcd',
      subject: [{ CN: ['stray'] }],
      publicKey: keys.publicKey,
      notBefore: new Date(world.clock - 60_000),
      notAfter: new Date(world.clock + DAY),
      sanUris: [`urn:kanmon:user:${hanako.id}`],
      crlUrls: [],
    });
    expect(await node.certificates.checkPresented(der)).toMatchObject({ valid: false, reason: 'unknown-certificate', serial: '4f00000000000000000000000000abcd' });
  });

  it('fails closed when the store cannot be read', async () => {
    const issued = await node.certificates.issueForUser(hanako);
    const ownStore = await openSqliteStore({ file: join(world.dir, 'kanmon.db') });
    const lonely = world.node(ownStore);
    await lonely.ca.ensure();
    await ownStore.close();
    expect(await lonely.certificates.checkPresented(issued.certificate.certificateDer)).toMatchObject({ valid: false, reason: 'unavailable' });
  });
});

describe('a real TLS server with requestCert and Kanmon’s CA', () => {
  async function server(caPems: string[]) {
    const dev = await ensureDevCertificates(join(world.dir, 'server'), { hostnames: ['localhost'] });
    const peers: Buffer[] = [];
    const srv = tls.createServer({ key: dev.keyPem, cert: dev.certPem, requestCert: true, rejectUnauthorized: true, ca: caPems }, (socket) => {
      peers.push(socket.getPeerCertificate().raw);
      socket.end('ok');
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as { port: number }).port;
    return { srv, port, peers, serverCa: dev.caCertPem };
  }

  /** 'accepted' when the server answered, 'rejected' when the handshake or the connection failed. */
  function connect(port: number, serverCa: string, client: { pfx: Uint8Array; passphrase: string } | undefined): Promise<'accepted' | 'rejected'> {
    return new Promise((resolve) => {
      let data = '';
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverCa, ...(client ? { pfx: Buffer.from(client.pfx), passphrase: client.passphrase } : {}) });
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('error', () => resolve('rejected'));
      socket.on('close', () => resolve(data === 'ok' ? 'accepted' : 'rejected'));
    });
  }

  it('accepts a client presenting Kanmon PKCS#12 files (both profiles, EC and RSA) and rejects one from another CA or none', async () => {
    const { srv, port, peers, serverCa } = await server(await node.ca.trustedCaPems());
    try {
      const modern = await node.certificates.issueForUser(hanako, { deviceLabel: 'laptop' });
      const legacy = await node.certificates.issueForUser(hanako, { deviceLabel: 'old pc', keyType: 'rsa-2048', profile: 'legacy' });
      const shared = await node.certificates.issueShared('kiosk-1');
      for (const issued of [modern, legacy, shared]) {
        const file = await node.certificates.download(issued.certificate.serial);
        expect(await connect(port, serverCa, { pfx: file.pkcs12, passphrase: issued.password })).toBe('accepted');
        const check = await node.certificates.checkPresented(peers.at(-1)!);
        expect(check).toMatchObject({ valid: true, serial: issued.certificate.serial, owner: issued.certificate.owner });
      }

      const elsewhere = await CaWorld.create();
      try {
        const foreignNode = elsewhere.node();
        const foreign = await foreignNode.certificates.issueForUser(await foreignNode.users.addUser({ username: 'mallory' }));
        const file = await foreignNode.certificates.download(foreign.certificate.serial);
        expect(await connect(port, serverCa, { pfx: file.pkcs12, passphrase: foreign.password })).toBe('rejected');
      } finally {
        await elsewhere.close();
      }
      expect(await connect(port, serverCa, undefined)).toBe('rejected');
      expect(peers).toHaveLength(3);
    } finally {
      srv.close();
    }
  });
});

describe('the audit trail', () => {
  it('records every step of a certificate’s life', async () => {
    // A millisecond between steps, so the time-sortable audit ids give the order.
    const tick = () => (world.clock += 1);
    tick();
    await node.ca.ensure();
    tick();
    const issued = await node.certificates.issueForUser(hanako);
    tick();
    await node.certificates.download(issued.certificate.serial);
    tick();
    await node.certificates.createDownloadLink(issued.certificate.serial);
    tick();
    await node.certificates.revoke(issued.certificate.serial);
    tick();
    await node.certificates.delete(issued.certificate.serial);
    const types = (await node.audit.tail()).map((e) => e.type).reverse();
    expect(types).toEqual(['user.add', 'ca.create', 'cert.issue', 'cert.download', 'cert.link', 'cert.revoke', 'cert.delete']);
  });
});
