import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { SecretOpenError } from './secret-box.js';

/** The GCM nonce size that needs no extra GHASH step (NIST SP 800-38D §8.2). */
export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/**
 * AES-256-GCM with a fresh random nonce; `body` is ciphertext then tag. With a key sealing a
 * few values, the random-nonce bound of NIST SP 800-38D §8.3 (2^32 messages) is never near.
 */
export function gcmSeal(key: KeyObject, plaintext: Uint8Array, aad: Buffer): { iv: Buffer; body: Buffer } {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  return { iv, body: Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]) };
}

/** Opens what gcmSeal made; a wrong key, context (AAD) or any flipped bit is 'authentication-failed'. */
export function gcmOpen(key: KeyObject, iv: Buffer, body: Buffer, aad: Buffer, context: string): Uint8Array {
  if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new SecretOpenError(context, 'malformed');
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
  try {
    const plaintext = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
    return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  } catch (cause) {
    throw new SecretOpenError(context, 'authentication-failed', { cause });
  }
}
