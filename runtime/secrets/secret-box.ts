/**
 * A SecretBox seals small secrets (signing keys, CA keys) before they reach the store or a
 * file, and opens them again. Two implementations share this contract: the local one (a key
 * file in the data directory) and, on AWS, one backed by KMS.
 *
 * `context` says what the secret is for, e.g. `jwt-signing-key:<kid>`. It is authenticated
 * with the ciphertext (AEAD additional data), so a sealed value copied to another purpose or
 * another record fails to open instead of being silently accepted.
 */
export interface SecretBox {
  /** Encrypts and authenticates `plaintext` bound to `context`; the result is printable text. */
  seal(plaintext: Uint8Array, context: string): Promise<string>;
  /**
   * Authenticates and decrypts a value made by `seal` with the same `context`.
   * @throws SecretOpenError when the value was altered, sealed for another context, or sealed
   *   with another key.
   */
  open(sealed: string, context: string): Promise<Uint8Array>;
}

/** A sealed value could not be opened. The message never contains secret material. */
export class SecretOpenError extends Error {
  constructor(
    readonly context: string,
    readonly reason: 'malformed' | 'unsupported-version' | 'authentication-failed',
    options?: { cause?: unknown },
  ) {
    super(
      reason === 'authentication-failed'
        ? `sealed secret for ${JSON.stringify(context)} failed authentication: it was altered, sealed for another context, or sealed with another key`
        : reason === 'unsupported-version'
          ? `sealed secret for ${JSON.stringify(context)} has an unsupported format version`
          : `sealed secret for ${JSON.stringify(context)} is malformed`,
      options,
    );
    this.name = 'SecretOpenError';
  }
}

/** The local secret key file is unusable (unsafe permissions, wrong size, unreadable). */
export class SecretKeyFileError extends Error {
  constructor(readonly path: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SecretKeyFileError';
  }
}
