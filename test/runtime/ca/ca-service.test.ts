import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CA_KEY_CONTEXT } from '../../../runtime/ca/ca-service.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import { CaWorld, openssl, pemOf } from './support.js';

let world: CaWorld;

beforeEach(async () => {
  world = await CaWorld.create({ ca: { commonName: 'Example 社内 CA', organization: 'Example K.K.', organizationalUnit: 'IT', country: 'JP' } });
});
afterEach(async () => {
  await world.close();
});

describe('the client-certificate CA', () => {
  it('is made on first use: EC P-256, ten years, the configured name, CA:TRUE pathlen 0, keyCertSign and cRLSign', async () => {
    const node = world.node();
    const info = await node.ca.ensure();
    expect(info.keyAlgorithm).toBe('EC P-256');
    expect(info.notAfter.getTime() - info.notBefore.getTime()).toBe(3650 * 86_400_000);
    const path = world.file('ca.pem', await node.ca.certificatePem());
    const text = await openssl('x509', '-in', path, '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space');
    expect(text).toContain('Subject: C=JP, O=Example K.K., OU=IT, CN=Example 社内 CA');
    expect(text).toContain('Issuer: C=JP, O=Example K.K., OU=IT, CN=Example 社内 CA');
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain('X509v3 Subject Key Identifier');
    // Self-signed and internally consistent.
    expect(await openssl('verify', '-CAfile', path, path)).toContain(': OK');
    expect(await openssl('x509', '-in', path, '-noout', '-fingerprint', '-sha256')).toContain(info.fingerprint.toUpperCase().match(/../g)!.join(':'));
    const derPath = join(world.dir, 'ca.der');
    await openssl('x509', '-in', path, '-outform', 'DER', '-out', derPath);
    expect(readFileSync(derPath).equals(Buffer.from(await node.ca.certificateDer()))).toBe(true);
  });

  it('stores the private key sealed with context ca-key, never in the clear', async () => {
    const node = world.node();
    await node.ca.ensure();
    const record = (await world.store.certificateAuthorities.get('default'))!;
    expect(record.sealedPrivateKey).toMatch(/^v1\./);
    const pkcs8 = await world.secrets.open(record.sealedPrivateKey, CA_KEY_CONTEXT);
    expect(pkcs8.length).toBeGreaterThan(100);
    await expect(world.secrets.open(record.sealedPrivateKey, 'jwt-signing-key:x')).rejects.toThrow(/authentication/);
    // Nothing in the audit trail carries key material.
    const events = await node.audit.tail();
    expect(events.map((e) => e.type)).toEqual(['ca.create']);
    expect(JSON.stringify(events)).not.toContain(record.sealedPrivateKey);
    expect(JSON.stringify(events)).not.toContain(Buffer.from(pkcs8).toString('base64').slice(0, 40));
  });

  it('is made once: a second start reads it, and two nodes racing on one store end with one CA', async () => {
    // Two nodes with their own connections to one SQLite file, like the server and the CLI.
    const otherStore = await openSqliteStore({ file: join(world.dir, 'kanmon.db') });
    try {
      const a = world.node();
      const b = world.node(otherStore);
      const c = world.node();
      const [ia, ib, ic] = await Promise.all([a.ca.ensure(), b.ca.ensure(), c.ca.ensure()]);
      expect(ib.fingerprint).toBe(ia.fingerprint);
      expect(ic.fingerprint).toBe(ia.fingerprint);
      expect(await b.ca.certificatePem()).toBe(await a.ca.certificatePem());
      expect((await a.audit.tail()).filter((e) => e.type === 'ca.create')).toHaveLength(1);
      // A later start finds it and makes nothing new.
      const later = world.node();
      expect((await later.ca.ensure()).fingerprint).toBe(ia.fingerprint);
      expect(await later.ca.trustedCaPems()).toEqual([await a.ca.certificatePem()]);
    } finally {
      await otherStore.close();
    }
  });

  it('refuses a record whose key does not belong to its certificate', async () => {
    const node = world.node();
    await node.ca.ensure();
    const record = (await world.store.certificateAuthorities.get('default'))!;
    // Swap in a different (validly sealed) key: the CA must stop rather than sign with it.
    const foreign = await CaWorld.create();
    try {
      const foreignNode = foreign.node();
      await foreignNode.ca.ensure();
      const foreignKey = await foreign.secrets.open((await foreign.store.certificateAuthorities.get('default'))!.sealedPrivateKey, CA_KEY_CONTEXT);
      const damaged = await CaWorld.create();
      try {
        await damaged.store.certificateAuthorities.create({ ...record, sealedPrivateKey: await damaged.secrets.seal(foreignKey, CA_KEY_CONTEXT) });
        await expect(damaged.node().ca.ensure()).rejects.toThrow(/does not match the CA certificate/);
      } finally {
        await damaged.close();
      }
    } finally {
      await foreign.close();
    }
  });
});

describe('the CRL', () => {
  it('is DER signed by the CA, v2 with AKI and CRL number, thisUpdate and nextUpdate 24 h apart, and lists revoked serials with reasons', async () => {
    const node = world.node();
    await node.ca.ensure();
    const user = await node.users.addUser({ username: 'hanako' });
    const lost = await node.certificates.issueForUser(user, { deviceLabel: 'phone' });
    const left = await node.certificates.issueForUser(user, { deviceLabel: 'old laptop' });
    const kept = await node.certificates.issueForUser(user, { deviceLabel: 'laptop' });
    const quiet = await node.certificates.issueForUser(user, { deviceLabel: 'tablet' });

    const empty = world.file('empty.crl', await node.ca.crlDer());
    const caPath = world.file('ca.pem', await node.ca.certificatePem());
    expect(await openssl('crl', '-inform', 'DER', '-in', empty, '-noout', '-text')).toContain('No Revoked Certificates.');

    await node.certificates.revoke(lost.certificate.serial, { reason: 'keyCompromise' });
    await node.certificates.revoke(left.certificate.serial, { reason: 'affiliationChanged' });
    await node.certificates.revoke(quiet.certificate.serial);
    const path = world.file('revoked.crl', await node.ca.crlDer());
    const text = await openssl('crl', '-inform', 'DER', '-in', path, '-noout', '-text');
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toContain('X509v3 Authority Key Identifier');
    expect(text).toMatch(/X509v3 CRL Number:\s+\d+/);
    const serialLine = (serial: string) => new RegExp(`Serial Number: ${serial.toUpperCase()}\\s+Revocation Date: [^\\n]+\\n(\\s+CRL entry extensions:\\s+X509v3 CRL Reason Code:\\s+(\\S[^\\n]*))?`);
    expect(text.match(serialLine(lost.certificate.serial))?.[2]).toBe('Key Compromise');
    expect(text.match(serialLine(left.certificate.serial))?.[2]).toBe('Affiliation Changed');
    // RFC 5280 §5.3.1: no reason code extension for "unspecified".
    expect(text).toMatch(serialLine(quiet.certificate.serial));
    expect(text.match(serialLine(quiet.certificate.serial))?.[2]).toBeUndefined();
    expect(text).not.toContain(kept.certificate.serial.toUpperCase());

    const lastUpdate = Date.parse(text.match(/Last Update: (.+)/)![1]!);
    const nextUpdate = Date.parse(text.match(/Next Update: (.+)/)![1]!);
    expect(nextUpdate - lastUpdate).toBe(24 * 3_600_000);
    // Signed by the CA: openssl checks the signature against the CA certificate.
    expect(await openssl('crl', '-inform', 'DER', '-in', path, '-noout', '-CAfile', caPath)).toMatch(/verify OK/);
    expect(await node.ca.crlPem()).toContain('-----BEGIN X509 CRL-----');

    // openssl's own revocation check with the CRL: the revoked certificate fails, the kept one passes.
    const crlPem = world.file('revoked-crl.pem', await node.ca.crlPem());
    const verify = (cert: Uint8Array, name: string) =>
      openssl('verify', '-crl_check', '-CAfile', caPath, '-CRLfile', crlPem, world.file(name, pemOf(cert)));
    expect(await verify(kept.certificate.certificateDer, 'kept.pem')).toContain(': OK');
    await expect(verify(lost.certificate.certificateDer, 'lost.pem')).rejects.toThrow(/certificate revoked/);
  });

  it('is cached, rebuilt at once after a revocation on this node, and within a minute for one made elsewhere', async () => {
    const a = world.node();
    const b = world.node();
    const user = await a.users.addUser({ username: 'taro' });
    const one = await a.certificates.issueForUser(user);
    const two = await a.certificates.issueForUser(user);
    const first = await a.ca.crlDer();
    world.clock += 1000;
    expect(await a.ca.crlDer()).toBe(first);

    await a.certificates.revoke(one.certificate.serial);
    const afterLocal = await a.ca.crlDer();
    expect(afterLocal).not.toBe(first);
    expect(await openssl('crl', '-inform', 'DER', '-in', world.file('a.crl', afterLocal), '-noout', '-text')).toContain(one.certificate.serial.toUpperCase());

    // Node b revokes; node a's cached CRL catches up once it is a minute old.
    await b.certificates.revoke(two.certificate.serial);
    expect(await a.ca.crlDer()).toBe(afterLocal);
    world.clock += 60_000;
    const caughtUp = await a.ca.crlDer();
    expect(await openssl('crl', '-inform', 'DER', '-in', world.file('b.crl', caughtUp), '-noout', '-text')).toContain(two.certificate.serial.toUpperCase());
  });
});

describe('pemOf', () => {
  it('wraps DER the way openssl reads it', async () => {
    const node = world.node();
    const pem = pemOf(await node.ca.certificateDer());
    expect(pem).toBe(await node.ca.certificatePem());
  });
});
