import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { gcmOpen, gcmSeal, IV_BYTES, TAG_BYTES } from './aes-gcm.js';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretKeyFileError, SecretOpenError, type SecretBox } from './secret-box.js';

/** The key file inside the data directory. */
export const LOCAL_SECRET_KEY_FILE = 'secret.key';

const KEY_BYTES = 32; // AES-256
const VERSION = 'v1';
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Opens the SecretBox of a local installation: AES-256-GCM under a 32-byte key kept in
 * `<dataDir>/secret.key`. The key is created (file 0600, directory 0700) on first start.
 *
 * A key file that group or other users can access is refused rather than repaired: someone
 * may already have read it, and every secret it protects would then need replacing.
 */
export async function openLocalSecretBox(dataDir: string): Promise<SecretBox> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, LOCAL_SECRET_KEY_FILE);
  const raw = (await readKeyFile(path)) ?? (await createKeyFile(dataDir, path));
  try {
    return new LocalSecretBox(createSecretKey(raw));
  } finally {
    raw.fill(0);
  }
}

class LocalSecretBox implements SecretBox {
  readonly #key: KeyObject;

  constructor(key: KeyObject) {
    this.#key = key;
  }

  async seal(plaintext: Uint8Array, context: string): Promise<string> {
    checkContext(context);
    const { iv, body } = gcmSeal(this.#key, plaintext, additionalData(context));
    return `${VERSION}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  async open(sealed: string, context: string): Promise<Uint8Array> {
    checkContext(context);
    if (typeof sealed !== 'string') throw new SecretOpenError(context, 'malformed');
    const parts = sealed.split('.');
    if (parts.length !== 3) throw new SecretOpenError(context, 'malformed');
    const [version, ivText, bodyText] = parts as [string, string, string];
    if (version !== VERSION) throw new SecretOpenError(context, 'unsupported-version');
    // Buffer's base64url decoder skips characters it does not know; check first so that a
    // mangled value is reported as malformed rather than as a failed authentication.
    if (!BASE64URL.test(ivText) || !BASE64URL.test(bodyText)) throw new SecretOpenError(context, 'malformed');
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new SecretOpenError(context, 'malformed');

    return gcmOpen(this.#key, iv, body, additionalData(context), context);
  }
}

/** The format version is authenticated too, so a value cannot be replayed under another format. */
function additionalData(context: string): Buffer {
  return Buffer.from(`kanmon-secret-box:${VERSION}:${context}`, 'utf8');
}

function checkContext(context: string): void {
  if (typeof context !== 'string' || context.length === 0) {
    throw new TypeError(`SecretBox context must be a non-empty string such as "jwt-signing-key:<kid>", got ${JSON.stringify(context)}`);
  }
}

/** Reads the key, or returns undefined when the file does not exist. */
async function readKeyFile(path: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw new SecretKeyFileError(path, `cannot read the secret key ${path}: ${errorCode(err) ?? String(err)}`, { cause: err });
  }
  try {
    // fstat on the open descriptor, so the file checked is the file read.
    const info = await handle.stat();
    if (!info.isFile()) throw new SecretKeyFileError(path, `the secret key ${path} is not a regular file`);
    // POSIX permission bits mean nothing on Windows, where the data directory's ACL protects the key.
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new SecretKeyFileError(
        path,
        `refusing to start: the secret key ${path} is accessible to group or other users (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}). ` +
          `It must be readable by its owner only. If nobody else could have read it, run: chmod 600 ${path}. ` +
          `Otherwise treat it as disclosed: every secret it sealed (JWT signing keys, CA keys) must be replaced.`,
      );
    }
    if (info.size !== KEY_BYTES) {
      throw new SecretKeyFileError(path, `the secret key ${path} must hold exactly ${KEY_BYTES} bytes, found ${info.size}; it is damaged or not a Kanmon key`);
    }
    const key = Buffer.alloc(KEY_BYTES);
    const { bytesRead } = await handle.read(key, 0, KEY_BYTES, 0);
    if (bytesRead !== KEY_BYTES) throw new SecretKeyFileError(path, `the secret key ${path} could not be read completely`);
    return key;
  } finally {
    await handle.close();
  }
}

/**
 * Writes a new key to a private temporary file and hard-links it into place, which fails if
 * the key appeared meanwhile: two processes starting together on one data directory end up
 * with the same key, and nobody ever reads a half-written file.
 */
async function createKeyFile(dataDir: string, path: string): Promise<Buffer> {
  const key = randomBytes(KEY_BYTES);
  const tmp = join(dataDir, `.${LOCAL_SECRET_KEY_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.chmod(0o600); // the umask may only remove bits; state the mode exactly anyway
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'EEXIST') {
      key.fill(0);
      await unlink(tmp).catch(() => undefined);
      const existing = await readKeyFile(path);
      if (!existing) throw new SecretKeyFileError(path, `the secret key ${path} vanished while it was being created`);
      return existing;
    }
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EOPNOTSUPP') {
      // Some file systems have no hard links; a rename is still atomic, only not exclusive.
      await rename(tmp, path);
      return key;
    }
    await unlink(tmp).catch(() => undefined);
    throw new SecretKeyFileError(path, `cannot create the secret key ${path}: ${code ?? String(err)}`, { cause: err });
  }
  await unlink(tmp);
  return key;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}
