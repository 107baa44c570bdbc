import { DecryptCommand, GenerateDataKeyCommand, KMSClient, type KMSClientConfig } from '@aws-sdk/client-kms';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { awsClientOptions } from '../aws/client-options.js';
import { setBounded } from '../cache/bounded-map.js';
import { gcmOpen, gcmSeal, IV_BYTES, TAG_BYTES } from './aes-gcm.js';
import { SecretOpenError, type SecretBox } from './secret-box.js';

/**
 * The SecretBox used on AWS: envelope encryption under a customer-managed KMS key.
 *
 * Each seal asks KMS for a fresh 256-bit data key (GenerateDataKey, KeySpec AES_256), encrypts
 * the secret locally with AES-256-GCM, and stores the data key only in its KMS-encrypted form
 * next to the ciphertext. Opening asks KMS to Decrypt that data key. The secret itself never
 * travels to KMS, and the plaintext data key never reaches the store.
 *
 * The SecretBox context is bound twice: as the KMS EncryptionContext `{ purpose: <context> }`
 * (so KMS refuses to decrypt the data key for another purpose, and CloudTrail records which
 * purpose each Decrypt was for; the context is therefore not secret), and as the GCM
 * additional data (so a value is tied to its purpose even when a data key is cached).
 *
 * Sealed values look like `v1k.<encrypted data key>.<iv>.<ciphertext+tag>`, all base64url, a
 * version distinct from the local box's `v1.` so that one is never mistaken for the other.
 */

export interface KmsSecretBoxOptions {
  /** A symmetric encryption KMS key: key id, key ARN, alias name (alias/…) or alias ARN. */
  readonly keyId: string;
  /** @default the region in `keyId` when it is an ARN, else the AWS SDK's own resolution (AWS_REGION on Fargate) */
  readonly region?: string;
  /** Another endpoint than KMS's regional one (VPC endpoint DNS name, tests). */
  readonly endpoint?: string;
  /** @default the AWS SDK's default chain (the task role on Fargate) */
  readonly credentials?: KMSClientConfig['credentials'];
  /** A ready client; `region`, `endpoint` and `credentials` are then ignored. */
  readonly client?: KMSClient;
  /** Decrypted data keys kept in memory, most recently used first. @default 64 */
  readonly cacheSize?: number;
  /**
   * How long a decrypted data key may be used without asking KMS again. Bounds how long a
   * node goes on opening secrets after the key is disabled or the task role loses kms:Decrypt.
   * @default 900000 (15 min)
   */
  readonly cacheTtlMs?: number;
  /** Bound on each KMS call, retries included. @default 10000 */
  readonly timeoutMs?: number;
}

/** KMS could not be used (unreachable, access denied, key disabled). Carries no secret and no raw SDK text. */
export class KmsSecretBoxError extends Error {
  constructor(
    readonly operation: 'GenerateDataKey' | 'Decrypt',
    readonly context: string,
    /** The AWS error name (AccessDeniedException, …) or the network error code (ECONNREFUSED, …). */
    readonly awsErrorName: string,
    readonly httpStatusCode: number | undefined,
    readonly requestId: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'KmsSecretBoxError';
  }
}

const VERSION = 'v1k';
const DATA_KEY_BYTES = 32; // AES_256
/** KMS ciphertext blobs are at most 6144 bytes (Decrypt API reference, CiphertextBlob). */
const MAX_ENCRYPTED_DATA_KEY_BYTES = 6144;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function openKmsSecretBox(opts: KmsSecretBoxOptions): SecretBox {
  if (typeof opts.keyId !== 'string' || opts.keyId.trim() === '') {
    throw new TypeError(`KMS SecretBox needs keyId: a key id, key ARN, alias/… or alias ARN, got ${JSON.stringify(opts.keyId)}`);
  }
  const cacheSize = opts.cacheSize ?? 64;
  if (!Number.isInteger(cacheSize) || cacheSize < 0) throw new TypeError(`cacheSize must be a whole number ≥ 0, got ${cacheSize}`);
  const region = opts.region ?? regionOfArn(opts.keyId);
  const client =
    opts.client ??
    new KMSClient(awsClientOptions({ region, endpoint: opts.endpoint, credentials: opts.credentials }));
  return new KmsSecretBox(client, opts.keyId, cacheSize, opts.cacheTtlMs ?? 15 * 60_000, opts.timeoutMs ?? 10_000);
}

interface CachedKey {
  readonly key: Promise<KeyObject>;
  readonly expiresAt: number;
}

class KmsSecretBox implements SecretBox {
  /** Insertion order is recency order: a hit moves the entry to the end, eviction takes the front. */
  readonly #cache = new Map<string, CachedKey>();

  constructor(
    private readonly client: KMSClient,
    private readonly keyId: string,
    private readonly cacheSize: number,
    private readonly cacheTtlMs: number,
    private readonly timeoutMs: number,
  ) {}

  async seal(plaintext: Uint8Array, context: string): Promise<string> {
    checkContext(context);
    let generated;
    try {
      generated = await this.client.send(
        new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: encryptionContext(context) }),
        { abortSignal: AbortSignal.timeout(this.timeoutMs) },
      );
    } catch (err) {
      throw kmsFailure('GenerateDataKey', context, this.keyId, err);
    }
    const raw = generated.Plaintext;
    const encryptedKey = generated.CiphertextBlob;
    if (!raw || raw.length !== DATA_KEY_BYTES || !encryptedKey || encryptedKey.length === 0 || encryptedKey.length > MAX_ENCRYPTED_DATA_KEY_BYTES) {
      raw?.fill(0);
      throw new KmsSecretBoxError('GenerateDataKey', context, 'UnexpectedResponse', undefined, generated.$metadata.requestId, `KMS GenerateDataKey with key ${this.keyId} for ${JSON.stringify(context)} returned no usable ${DATA_KEY_BYTES}-byte data key`);
    }
    const key = createSecretKey(raw);
    raw.fill(0);
    const encryptedKeyText = Buffer.from(encryptedKey).toString('base64url');
    // A value just sealed is usually opened again soon (the node that made a signing key uses it).
    this.#remember(cacheKey(context, encryptedKeyText), Promise.resolve(key));

    const { iv, body } = gcmSeal(key, plaintext, additionalData(context));
    return `${VERSION}.${encryptedKeyText}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  async open(sealed: string, context: string): Promise<Uint8Array> {
    checkContext(context);
    if (typeof sealed !== 'string') throw new SecretOpenError(context, 'malformed');
    const parts = sealed.split('.');
    if (parts[0] !== VERSION) {
      throw new SecretOpenError(context, /^v[0-9a-z]{1,8}$/.test(parts[0] ?? '') && parts.length > 1 ? 'unsupported-version' : 'malformed');
    }
    if (parts.length !== 4) throw new SecretOpenError(context, 'malformed');
    const [, keyText, ivText, bodyText] = parts as [string, string, string, string];
    // Buffer's base64url decoder skips characters it does not know; check first so that a
    // mangled value is reported as malformed rather than as a failed authentication.
    if (!BASE64URL.test(keyText) || !BASE64URL.test(ivText) || !BASE64URL.test(bodyText)) throw new SecretOpenError(context, 'malformed');
    const encryptedKey = Buffer.from(keyText, 'base64url');
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (encryptedKey.length > MAX_ENCRYPTED_DATA_KEY_BYTES || iv.length !== IV_BYTES || body.length < TAG_BYTES) {
      throw new SecretOpenError(context, 'malformed');
    }

    const key = await this.#dataKey(context, keyText, encryptedKey);
    return gcmOpen(key, iv, body, additionalData(context), context);
  }

  /**
   * The data key for one sealed value, from the cache or from KMS Decrypt. The cache is keyed
   * by context and encrypted key together, so a cached key never lets a value open under a
   * context KMS would have refused. Concurrent opens of one value share one Decrypt call.
   */
  async #dataKey(context: string, keyText: string, encryptedKey: Buffer): Promise<KeyObject> {
    const id = cacheKey(context, keyText);
    const cached = this.#cache.get(id);
    if (cached && cached.expiresAt > Date.now()) {
      this.#cache.delete(id);
      this.#cache.set(id, cached);
      return cached.key;
    }
    if (cached) this.#cache.delete(id);
    const pending = this.#decrypt(context, encryptedKey);
    this.#remember(id, pending);
    // A failed Decrypt (KMS down, access denied) must not be remembered.
    pending.catch(() => {
      if (this.#cache.get(id)?.key === pending) this.#cache.delete(id);
    });
    return pending;
  }

  async #decrypt(context: string, encryptedKey: Buffer): Promise<KeyObject> {
    let result;
    try {
      // KeyId is optional for symmetric keys but naming it makes KMS refuse a ciphertext made
      // under any other key (Decrypt API reference: "KeyId … recommended as a best practice").
      result = await this.client.send(
        new DecryptCommand({ CiphertextBlob: encryptedKey, KeyId: this.keyId, EncryptionContext: encryptionContext(context) }),
        { abortSignal: AbortSignal.timeout(this.timeoutMs) },
      );
    } catch (err) {
      const name = errorName(err);
      // KMS answers InvalidCiphertextException when the encryption context differs or the blob
      // was altered, and IncorrectKeyException when it was made under another key: to the
      // caller these are the SecretBox contract's "failed authentication".
      if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException') {
        throw new SecretOpenError(context, 'authentication-failed');
      }
      throw kmsFailure('Decrypt', context, this.keyId, err);
    }
    const raw = result.Plaintext;
    if (!raw || raw.length !== DATA_KEY_BYTES) {
      raw?.fill(0);
      throw new KmsSecretBoxError('Decrypt', context, 'UnexpectedResponse', undefined, result.$metadata.requestId, `KMS Decrypt with key ${this.keyId} for ${JSON.stringify(context)} returned no ${DATA_KEY_BYTES}-byte data key`);
    }
    const key = createSecretKey(raw);
    raw.fill(0);
    return key;
  }

  #remember(id: string, key: Promise<KeyObject>): void {
    if (this.cacheSize === 0) return;
    setBounded(this.#cache, id, { key, expiresAt: Date.now() + this.cacheTtlMs }, this.cacheSize);
  }
}

function encryptionContext(context: string): Record<string, string> {
  return { purpose: context };
}

/** The version is authenticated too, so a value cannot be replayed under another format. */
function additionalData(context: string): Buffer {
  return Buffer.from(`kanmon-secret-box:${VERSION}:${context}`, 'utf8');
}

function cacheKey(context: string, encryptedKeyText: string): string {
  return `${encryptedKeyText}\n${context}`;
}

function checkContext(context: string): void {
  if (typeof context !== 'string' || context.length === 0) {
    throw new TypeError(`SecretBox context must be a non-empty string such as "jwt-signing-key:<kid>", got ${JSON.stringify(context)}`);
  }
}

function regionOfArn(keyId: string): string | undefined {
  return /^arn:aws[a-z-]*:kms:([a-z0-9-]+):/.exec(keyId)?.[1];
}

function errorName(err: unknown): string {
  if (typeof err !== 'object' || err === null) return 'UnknownError';
  const e = err as { name?: unknown; code?: unknown };
  // Network failures arrive as plain Errors carrying an errno code.
  if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code;
  return typeof e.name === 'string' && e.name !== 'Error' ? e.name : 'UnknownError';
}

/**
 * Turns an SDK failure into an error that says what to check, built only from the error's
 * name and status: SDK messages can quote request parameters, and this text reaches logs.
 */
function kmsFailure(operation: 'GenerateDataKey' | 'Decrypt', context: string, keyId: string, err: unknown): KmsSecretBoxError {
  const name = errorName(err);
  const meta = (err as { $metadata?: { httpStatusCode?: number; requestId?: string } } | null)?.$metadata;
  const status = meta?.httpStatusCode;
  const permission = operation === 'GenerateDataKey' ? 'kms:GenerateDataKey' : 'kms:Decrypt';
  const hint =
    name === 'AccessDeniedException'
      ? `the task role needs ${permission} on this key, and the key policy must allow it`
      : name === 'NotFoundException'
        ? 'no such key in this account and region'
        : name === 'DisabledException' || name === 'KMSInvalidStateException'
          ? 'the key is disabled or pending deletion'
          : name === 'KeyUnavailableException' || name === 'DependencyTimeoutException' || name === 'KMSInternalException' || name === 'ThrottlingException'
            ? 'KMS could not serve the request just now; try again later'
            : name === 'TimeoutError' || name === 'AbortError' || /^E[A-Z]+$/.test(name)
              ? 'KMS could not be reached (network, VPC endpoint or DNS)'
              : 'see the request id in CloudTrail';
  return new KmsSecretBoxError(
    operation,
    context,
    name,
    status,
    meta?.requestId,
    `KMS ${operation} with key ${keyId} for ${JSON.stringify(context)} failed: ${name}${status ? ` (HTTP ${status})` : ''}; ${hint}`,
  );
}
