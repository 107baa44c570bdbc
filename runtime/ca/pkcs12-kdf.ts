import { createHash } from 'node:crypto';

/** Purpose bytes of the PKCS#12 key derivation (RFC 7292 Appendix B.3). */
export const PKCS12_KDF_ID = { key: 1, iv: 2, mac: 3 } as const;

/** Hash parameters of RFC 7292 Appendix B.2: u = output bytes, v = input block bytes. */
const HASHES = {
  'sha1': { u: 20, v: 64 },
  'sha256': { u: 32, v: 64 },
} as const;

export type Pkcs12KdfHash = keyof typeof HASHES;

/**
 * The password as PKCS#12 feeds it to its own KDF: a BMPString (UTF-16 big-endian) followed by
 * two zero bytes (RFC 7292 Appendix B.1).
 */
export function bmpPassword(password: string): Buffer {
  const out = Buffer.alloc(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) out.writeUInt16BE(password.charCodeAt(i), i * 2);
  return out;
}

/**
 * The PKCS#12 key derivation of RFC 7292 Appendix B.2, which the MAC (any hash) and the legacy
 * pbeWithSHAAnd3-KeyTripleDES-CBC scheme (SHA-1, Appendix C) still use. PBES2 does not: it uses
 * PBKDF2 (RFC 8018 §5.2) instead.
 */
export function pkcs12Kdf(hash: Pkcs12KdfHash, password: string, salt: Uint8Array, id: number, iterations: number, length: number): Buffer {
  const { u, v } = HASHES[hash];
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError(`PKCS#12 KDF iterations must be a positive integer, got ${iterations}`);
  // Step 1: D is v copies of the purpose byte.
  const d = Buffer.alloc(v, id);
  // Steps 2-4: salt and password each repeated to a whole number of v-byte blocks, then joined.
  const fill = (source: Uint8Array): Buffer => {
    const out = Buffer.alloc(source.length === 0 ? 0 : v * Math.ceil(source.length / v));
    for (let i = 0; i < out.length; i++) out[i] = source[i % source.length]!;
    return out;
  };
  const input = Buffer.concat([fill(salt), fill(bmpPassword(password))]);
  // Steps 5-6: c blocks of output, each the r-fold hash of D || I, with I adjusted in between.
  const blocks: Buffer[] = [];
  for (let produced = 0; produced < length; produced += u) {
    let a = createHash(hash).update(d).update(input).digest();
    for (let r = 1; r < iterations; r++) a = createHash(hash).update(a).digest();
    blocks.push(a);
    if (produced + u >= length) break;
    // Step 6C: every v-byte block I_j of I becomes (I_j + B + 1) mod 2^(8v), B being A_i
    // repeated to v bytes; big-endian arithmetic, carry running from the last byte.
    const b = Buffer.alloc(v);
    for (let i = 0; i < v; i++) b[i] = a[i % u]!;
    for (let j = 0; j < input.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = input[j + k]! + b[k]! + carry;
        input[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  // Step 7: the first n bytes of A_1 || … || A_c.
  return Buffer.concat(blocks).subarray(0, length);
}
