import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bmpPassword, PKCS12_KDF_ID, pkcs12Kdf } from '../../../runtime/ca/pkcs12-kdf.js';
import { buildPkcs12, type Pkcs12Profile } from '../../../runtime/ca/pkcs12.js';
import { openssl } from './support.js';

let dir: string;
const certs: Record<'ec' | 'rsa', { certDer: Uint8Array; keyDer: Uint8Array; spki: string }> = {} as never;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-p12-'));
  for (const kind of ['ec', 'rsa'] as const) {
    const keys = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyPem = keys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    writeFileSync(join(dir, `${kind}.key`), keyPem);
    await openssl('req', '-x509', '-new', '-key', join(dir, `${kind}.key`), '-subj', `/CN=${kind} test`, '-days', '2', '-outform', 'DER', '-out', join(dir, `${kind}.der`));
    certs[kind] = {
      certDer: readFileSync(join(dir, `${kind}.der`)),
      keyDer: keys.privateKey.export({ format: 'der', type: 'pkcs8' }),
      spki: keys.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    };
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PKCS#12 key derivation (RFC 7292 Appendix B)', () => {
  it('encodes the password as a BMPString with a two-byte terminator (B.1)', () => {
    expect(bmpPassword('ab')).toEqual(Buffer.from([0, 0x61, 0, 0x62, 0, 0]));
  });

  // Vectors published with BouncyCastle's PKCS12 tests and reused by other implementations.
  it('matches the published SHA-1 vectors for key, IV and MAC key', () => {
    const hex = (s: string) => Buffer.from(s, 'hex');
    expect(pkcs12Kdf('sha1', 'smeg', hex('0A58CF64530D823F'), PKCS12_KDF_ID.key, 1, 24).toString('hex').toUpperCase()).toBe('8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3');
    expect(pkcs12Kdf('sha1', 'smeg', hex('0A58CF64530D823F'), PKCS12_KDF_ID.iv, 1, 8).toString('hex').toUpperCase()).toBe('79993DFE048D3B76');
    expect(pkcs12Kdf('sha1', 'smeg', hex('3D83C0E4546AC140'), PKCS12_KDF_ID.mac, 1, 20).toString('hex').toUpperCase()).toBe('8D967D88F6CAA9D714800AB3D48051D63F73A312');
    expect(pkcs12Kdf('sha1', 'queeg', hex('1682C0FC5B3F7EC5'), PKCS12_KDF_ID.key, 1000, 24).toString('hex').toUpperCase()).toBe('483DD6E919D7DE2E8E648BA8F862F3FBFBDC2BCB2C02957F');
    expect(pkcs12Kdf('sha1', 'queeg', hex('1682C0FC5B3F7EC5'), PKCS12_KDF_ID.iv, 1000, 8).toString('hex').toUpperCase()).toBe('9D461D1B00355C50');
  });
});

describe('buildPkcs12 read by openssl', () => {
  const password = 'k7m2q-9xw4p-ab3cd-efg5h';

  async function write(profile: Pkcs12Profile, kind: 'ec' | 'rsa', withCa = true): Promise<string> {
    const path = join(dir, `${kind}-${profile}${withCa ? '' : '-noca'}.p12`);
    const pfx = buildPkcs12({
      certificateDer: certs[kind].certDer,
      privateKeyPkcs8: certs[kind].keyDer,
      ...(withCa ? { caCertificateDer: certs[kind === 'ec' ? 'rsa' : 'ec'].certDer } : {}),
      password,
      friendlyName: 'hanako (Work laptop)',
      profile,
    });
    writeFileSync(path, pfx);
    return path;
  }

  it.each(['ec', 'rsa'] as const)('modern profile (%s key): PBES2/PBKDF2-SHA256/AES-256-CBC and an HMAC-SHA256 MAC', async (kind) => {
    const path = await write('modern', kind);
    const info = await openssl('pkcs12', '-info', '-nokeys', '-in', path, '-passin', `pass:${password}`);
    expect(info).toContain('MAC: sha256, Iteration 2048');
    expect(info).toContain('MAC length: 32');
    expect(info).toContain('PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256');
    expect(info).toContain('Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256');
    expect(info.match(/Certificate bag/g)).toHaveLength(2);
    expect(info).toContain('friendlyName: hanako (Work laptop)');
    expect(info).toMatch(/localKeyID: [0-9A-F ]+/);
  });

  it.each(['ec', 'rsa'] as const)('legacy profile (%s key): 3DES (pbeWithSHA1And3-KeyTripleDES-CBC) and an HMAC-SHA1 MAC, with and without -legacy', async (kind) => {
    const path = await write('legacy', kind);
    for (const extra of [[], ['-legacy']]) {
      const info = await openssl('pkcs12', '-info', '-nokeys', ...extra, '-in', path, '-passin', `pass:${password}`);
      expect(info).toContain('MAC: sha1, Iteration 2048');
      expect(info).toContain('MAC length: 20');
      expect(info).toContain('PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048');
      expect(info).toContain('Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048');
    }
  });

  it.each([
    ['modern', 'ec'],
    ['legacy', 'ec'],
    ['modern', 'rsa'],
    ['legacy', 'rsa'],
  ] as const)('%s profile (%s): the private key decrypts and belongs to the certificate', async (profile, kind) => {
    const path = await write(profile, kind, false);
    const keyPem = await openssl('pkcs12', '-in', path, '-passin', `pass:${password}`, '-nocerts', '-nodes');
    const publicPem = createPublicKey(keyPem.slice(keyPem.indexOf('-----BEGIN PRIVATE KEY-----'))).export({ format: 'pem', type: 'spki' }).toString();
    expect(publicPem).toBe(certs[kind].spki);
    const certOut = await openssl('pkcs12', '-in', path, '-passin', `pass:${password}`, '-nokeys', '-clcerts');
    expect(certOut).toContain(`subject=CN = ${kind} test`);
  });

  it('refuses a wrong password (the MAC does not verify)', async () => {
    const path = await write('modern', 'ec');
    await expect(openssl('pkcs12', '-info', '-nokeys', '-in', path, '-passin', 'pass:wrong-password')).rejects.toThrow(/Mac verify error/);
  });

  it('uses fresh salts and IVs: two files of the same input differ', () => {
    const input = { certificateDer: certs.ec.certDer, privateKeyPkcs8: certs.ec.keyDer, password, friendlyName: 'x' };
    expect(Buffer.from(buildPkcs12(input)).equals(Buffer.from(buildPkcs12(input)))).toBe(false);
  });

  it('refuses an empty password', () => {
    expect(() => buildPkcs12({ certificateDer: certs.ec.certDer, privateKeyPkcs8: certs.ec.keyDer, password: '', friendlyName: 'x' })).toThrow(/empty/);
  });
});
