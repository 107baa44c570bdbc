import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLocalSecretBox, SecretKeyFileError, SecretOpenError } from '../../../runtime/secrets/index.js';

const posix = process.platform !== 'win32';
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kanmon-secret-box-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));

describe('local SecretBox', () => {
  it('round-trips a secret under the same context', async () => {
    const box = await openLocalSecretBox(join(dir, 'data'));
    const sealed = await box.seal(bytes('private key bytes'), 'jwt-signing-key:k1');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain(Buffer.from('private key bytes').toString('base64url'));
    expect(Buffer.from(await box.open(sealed, 'jwt-signing-key:k1')).toString('utf8')).toBe('private key bytes');
  });

  it('uses a fresh IV for every seal', async () => {
    const box = await openLocalSecretBox(dir);
    const a = await box.seal(bytes('same'), 'ctx');
    const b = await box.seal(bytes('same'), 'ctx');
    expect(a).not.toBe(b);
    expect(a.split('.')[1]).not.toBe(b.split('.')[1]);
  });

  it('round-trips an empty secret and binary data', async () => {
    const box = await openLocalSecretBox(dir);
    const binary = new Uint8Array(256).map((_, i) => i);
    expect(await box.open(await box.seal(new Uint8Array(0), 'empty'), 'empty')).toEqual(new Uint8Array(0));
    expect(await box.open(await box.seal(binary, 'bin'), 'bin')).toEqual(binary);
  });

  it('rejects a tampered ciphertext', async () => {
    const box = await openLocalSecretBox(dir);
    const sealed = await box.seal(bytes('secret'), 'ctx');
    const [v, iv, body] = sealed.split('.') as [string, string, string];
    const raw = Buffer.from(body, 'base64url');
    raw[0]! ^= 0x01;
    await expect(box.open(`${v}.${iv}.${raw.toString('base64url')}`, 'ctx')).rejects.toMatchObject({
      name: 'SecretOpenError',
      reason: 'authentication-failed',
    });
    const tag = Buffer.from(body, 'base64url');
    tag[tag.length - 1]! ^= 0x80;
    await expect(box.open(`${v}.${iv}.${tag.toString('base64url')}`, 'ctx')).rejects.toBeInstanceOf(SecretOpenError);
    const ivRaw = Buffer.from(iv, 'base64url');
    ivRaw[0]! ^= 0x01;
    await expect(box.open(`${v}.${ivRaw.toString('base64url')}.${body}`, 'ctx')).rejects.toBeInstanceOf(SecretOpenError);
  });

  it('rejects a value sealed for another context', async () => {
    const box = await openLocalSecretBox(dir);
    const sealed = await box.seal(bytes('secret'), 'jwt-signing-key:k1');
    await expect(box.open(sealed, 'jwt-signing-key:k2')).rejects.toMatchObject({ reason: 'authentication-failed' });
    await expect(box.open(sealed, 'ca-key:k1')).rejects.toBeInstanceOf(SecretOpenError);
  });

  it('rejects malformed values and unknown versions without leaking them', async () => {
    const box = await openLocalSecretBox(dir);
    const sealed = await box.seal(bytes('secret'), 'ctx');
    await expect(box.open('garbage', 'ctx')).rejects.toMatchObject({ reason: 'malformed' });
    await expect(box.open(sealed.replace(/^v1/, 'v9'), 'ctx')).rejects.toMatchObject({ reason: 'unsupported-version' });
    await expect(box.open(`${sealed}!`, 'ctx')).rejects.toMatchObject({ reason: 'malformed' });
    await expect(box.open('v1.AAAA.AAAA', 'ctx')).rejects.toMatchObject({ reason: 'malformed' });
    await expect(box.seal(bytes('x'), '')).rejects.toBeInstanceOf(TypeError);
  });

  it('rejects a value sealed with another key', async () => {
    const a = await openLocalSecretBox(join(dir, 'a'));
    const b = await openLocalSecretBox(join(dir, 'b'));
    const sealed = await a.seal(bytes('secret'), 'ctx');
    await expect(b.open(sealed, 'ctx')).rejects.toMatchObject({ reason: 'authentication-failed' });
  });

  it('creates the key file with mode 0600 in a 0700 directory and reuses it', async () => {
    const dataDir = join(dir, 'nested', 'data');
    const box = await openLocalSecretBox(dataDir);
    const keyFile = join(dataDir, 'secret.key');
    const key = await readFile(keyFile);
    expect(key.length).toBe(32);
    if (posix) {
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    }
    const sealed = await box.seal(bytes('kept'), 'ctx');
    const reopened = await openLocalSecretBox(dataDir);
    expect(await readFile(keyFile)).toEqual(key);
    expect(Buffer.from(await reopened.open(sealed, 'ctx')).toString()).toBe('kept');
  });

  it('agrees on one key when several openers race on a fresh directory', async () => {
    const boxes = await Promise.all(Array.from({ length: 8 }, () => openLocalSecretBox(dir)));
    const sealed = await boxes[0]!.seal(bytes('shared'), 'ctx');
    for (const box of boxes) expect(Buffer.from(await box.open(sealed, 'ctx')).toString()).toBe('shared');
  });

  it.skipIf(!posix)('refuses a key file readable by group or others', async () => {
    await openLocalSecretBox(dir);
    const keyFile = join(dir, 'secret.key');
    for (const mode of [0o640, 0o604, 0o660]) {
      await chmod(keyFile, mode);
      const err = await openLocalSecretBox(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretKeyFileError);
      expect((err as Error).message).toMatch(/refusing to start/);
      expect((err as Error).message).toContain(keyFile);
    }
    await chmod(keyFile, 0o400);
    await expect(openLocalSecretBox(dir)).resolves.toBeDefined();
  });

  it('refuses a key file of the wrong size', async () => {
    await writeFile(join(dir, 'secret.key'), 'too short', { mode: 0o600 });
    await expect(openLocalSecretBox(dir)).rejects.toThrow(/exactly 32 bytes/);
  });

  it('does not expose the key through inspection or JSON', async () => {
    const box = await openLocalSecretBox(dir);
    const key = await readFile(join(dir, 'secret.key'));
    const { inspect } = await import('node:util');
    const shown = `${inspect(box, { depth: 5, showHidden: true })}${JSON.stringify(box)}`;
    expect(shown).not.toContain(key.toString('hex'));
    expect(shown).not.toContain(key.toString('base64'));
  });
});
