/**
 * The KMS SecretBox against test/support/aws-endpoints.ts, a local stand-in that speaks KMS's
 * JSON 1.1 protocol for GenerateDataKey and Decrypt (KMS itself cannot run here). The real
 * @aws-sdk/client-kms does the talking.
 */
import { KMSClient } from '@aws-sdk/client-kms';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KmsSecretBoxError, openKmsSecretBox, type KmsSecretBoxOptions } from '../../../runtime/secrets/kms-secret-box.js';
import { openLocalSecretBox, SecretOpenError } from '../../../runtime/secrets/index.js';
import { startAwsEndpoints, type AwsEndpoints } from '../../support/aws-endpoints.js';

let aws: AwsEndpoints;
beforeAll(async () => {
  aws = await startAwsEndpoints();
});
afterAll(async () => {
  await aws?.close();
});
beforeEach(() => {
  aws.kms.failure = undefined;
});

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));
const text = (data: Uint8Array) => Buffer.from(data).toString('utf8');

function box(extra: Partial<KmsSecretBoxOptions> = {}) {
  return openKmsSecretBox({ keyId: aws.kms.key.arn, endpoint: aws.url, credentials: aws.credentials, ...extra });
}

function callsSince(mark: number, operation?: string) {
  return aws.kms.calls.slice(mark).filter((c) => !operation || c.operation === operation);
}

describe('KMS SecretBox', () => {
  it('round-trips a secret with one GenerateDataKey bound to the context', async () => {
    const mark = aws.kms.calls.length;
    const sealed = await box().seal(bytes('ca private key'), 'ca-key:root');
    expect(sealed).toMatch(/^v1k\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain(Buffer.from('ca private key').toString('base64url'));
    expect(callsSince(mark)).toEqual([
      {
        service: 'kms',
        operation: 'GenerateDataKey',
        region: aws.region, // taken from the key ARN: no region option was given
        keyId: aws.kms.key.arn,
        encryptionContext: { purpose: 'ca-key:root' },
      },
    ]);
    // A second box (another node) has no cached data key and asks KMS to Decrypt it.
    const other = box();
    expect(text(await other.open(sealed, 'ca-key:root'))).toBe('ca private key');
    expect(callsSince(mark, 'Decrypt')).toEqual([
      { service: 'kms', operation: 'Decrypt', region: aws.region, keyId: aws.kms.key.arn, encryptionContext: { purpose: 'ca-key:root' } },
    ]);
  });

  it('caches decrypted data keys so that repeated opens do not call KMS', async () => {
    const sealed = await box().seal(bytes('jwt key'), 'jwt-signing-key:k1');
    const reader = box();
    const mark = aws.kms.calls.length;
    for (let i = 0; i < 5; i++) expect(text(await reader.open(sealed, 'jwt-signing-key:k1'))).toBe('jwt key');
    expect(callsSince(mark, 'Decrypt')).toHaveLength(1);
  });

  it('shares one Decrypt between concurrent opens of the same value', async () => {
    const sealed = await box().seal(bytes('x'), 'ctx:concurrent');
    const reader = box();
    const mark = aws.kms.calls.length;
    const results = await Promise.all(Array.from({ length: 8 }, () => reader.open(sealed, 'ctx:concurrent')));
    expect(results.map(text)).toEqual(Array(8).fill('x'));
    expect(callsSince(mark, 'Decrypt')).toHaveLength(1);
  });

  it('opens a value it sealed itself without calling Decrypt', async () => {
    const b = box();
    const sealed = await b.seal(bytes('fresh'), 'ctx:own');
    const mark = aws.kms.calls.length;
    expect(text(await b.open(sealed, 'ctx:own'))).toBe('fresh');
    expect(callsSince(mark)).toHaveLength(0);
  });

  it('keeps the cache bounded: an evicted data key is decrypted again', async () => {
    const writer = box();
    const sealed = await Promise.all(['a', 'b', 'c'].map((s) => writer.seal(bytes(s), `ctx:${s}`)));
    const reader = box({ cacheSize: 2 });
    for (const [i, s] of ['a', 'b', 'c'].entries()) await reader.open(sealed[i]!, `ctx:${s}`);
    const mark = aws.kms.calls.length;
    await reader.open(sealed[2]!, 'ctx:c'); // still cached
    await reader.open(sealed[1]!, 'ctx:b'); // still cached
    expect(callsSince(mark, 'Decrypt')).toHaveLength(0);
    await reader.open(sealed[0]!, 'ctx:a'); // evicted as least recently used
    expect(callsSince(mark, 'Decrypt')).toHaveLength(1);
  });

  it('asks KMS again once a cached data key is older than cacheTtlMs', async () => {
    const sealed = await box().seal(bytes('ttl'), 'ctx:ttl');
    const reader = box({ cacheTtlMs: 0 });
    const mark = aws.kms.calls.length;
    await reader.open(sealed, 'ctx:ttl');
    await reader.open(sealed, 'ctx:ttl');
    expect(callsSince(mark, 'Decrypt')).toHaveLength(2);
  });

  it('uses a fresh data key and IV for every seal', async () => {
    const b = box();
    const one = (await b.seal(bytes('same'), 'ctx')).split('.');
    const two = (await b.seal(bytes('same'), 'ctx')).split('.');
    expect(one[1]).not.toBe(two[1]);
    expect(one[2]).not.toBe(two[2]);
    expect(one[3]).not.toBe(two[3]);
  });

  it('round-trips an empty secret and binary data', async () => {
    const b = box();
    const binary = new Uint8Array(256).map((_, i) => i);
    expect(await box().open(await b.seal(new Uint8Array(0), 'empty'), 'empty')).toEqual(new Uint8Array(0));
    expect(await box().open(await b.seal(binary, 'bin'), 'bin')).toEqual(binary);
  });

  it('works with an alias and an explicit region', async () => {
    const b = box({ keyId: aws.kms.alias, region: aws.region });
    expect(text(await box({ keyId: aws.kms.alias, region: aws.region }).open(await b.seal(bytes('via alias'), 'ctx'), 'ctx'))).toBe('via alias');
  });

  it('works with a client passed in', async () => {
    const client = new KMSClient({ region: aws.region, endpoint: aws.url, credentials: aws.credentials });
    const b = openKmsSecretBox({ keyId: aws.kms.key.keyId, client });
    expect(text(await b.open(await b.seal(bytes('injected'), 'ctx'), 'ctx'))).toBe('injected');
  });
});

describe('KMS SecretBox refusals', () => {
  it('refuses a value under another context, and KMS itself refuses the data key', async () => {
    const sealed = await box().seal(bytes('secret'), 'jwt-signing-key:k1');
    const mark = aws.kms.calls.length;
    await expect(box().open(sealed, 'jwt-signing-key:k2')).rejects.toMatchObject({ name: 'SecretOpenError', reason: 'authentication-failed', context: 'jwt-signing-key:k2' });
    expect(callsSince(mark, 'Decrypt')).toEqual([expect.objectContaining({ encryptionContext: { purpose: 'jwt-signing-key:k2' } })]);
  });

  it('refuses another context even when the data key is cached', async () => {
    const b = box();
    const sealed = await b.seal(bytes('secret'), 'ctx:one');
    await expect(b.open(sealed, 'ctx:two')).rejects.toMatchObject({ reason: 'authentication-failed' });
  });

  it('refuses a value sealed under another KMS key', async () => {
    const other = aws.kms.createKey();
    const sealed = await box({ keyId: other.arn }).seal(bytes('secret'), 'ctx');
    await expect(box().open(sealed, 'ctx')).rejects.toMatchObject({ name: 'SecretOpenError', reason: 'authentication-failed' });
  });

  it('refuses tampering with the ciphertext, the tag, the IV or the encrypted data key', async () => {
    const sealed = await box().seal(bytes('secret'), 'ctx');
    const [v, key, iv, body] = sealed.split('.') as [string, string, string, string];
    const flip = (part: string, at: (b: Buffer) => number) => {
      const raw = Buffer.from(part, 'base64url');
      raw[at(raw)]! ^= 0x01;
      return raw.toString('base64url');
    };
    const reader = box();
    for (const altered of [
      `${v}.${key}.${iv}.${flip(body, () => 0)}`,
      `${v}.${key}.${iv}.${flip(body, (b) => b.length - 1)}`,
      `${v}.${key}.${flip(iv, () => 0)}.${body}`,
      `${v}.${flip(key, (b) => b.length - 1)}.${iv}.${body}`,
    ]) {
      await expect(reader.open(altered, 'ctx')).rejects.toMatchObject({ name: 'SecretOpenError', reason: 'authentication-failed' });
    }
  });

  it('says malformed or unsupported-version without calling KMS', async () => {
    const b = box();
    const sealed = await b.seal(bytes('secret'), 'ctx');
    const [, key, iv, body] = sealed.split('.') as [string, string, string, string];
    const mark = aws.kms.calls.length;
    const cases: Array<[unknown, 'malformed' | 'unsupported-version']> = [
      ['', 'malformed'],
      ['garbage', 'malformed'],
      [`v1k.${key}.${iv}`, 'malformed'],
      [`v1k.${key}.${iv}.${body}.extra`, 'malformed'],
      [`v1k.${key}.${iv}.${body}!`, 'malformed'],
      [`v1k.${key}.${iv.slice(2)}.${body}`, 'malformed'],
      [`v1k.${key}.${iv}.AAAA`, 'malformed'],
      [`v2k.${key}.${iv}.${body}`, 'unsupported-version'],
      [42, 'malformed'],
    ];
    for (const [value, reason] of cases) {
      await expect(b.open(value as string, 'ctx')).rejects.toMatchObject({ reason });
    }
    expect(callsSince(mark)).toHaveLength(0);
  });

  it("does not open the local box's values, nor the local box this one's", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kanmon-kms-box-'));
    try {
      const local = await openLocalSecretBox(dir);
      const fromLocal = await local.seal(bytes('s'), 'ctx');
      await expect(box().open(fromLocal, 'ctx')).rejects.toMatchObject({ reason: 'unsupported-version' });
      const fromKms = await box().seal(bytes('s'), 'ctx');
      await expect(local.open(fromKms, 'ctx')).rejects.toBeInstanceOf(SecretOpenError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('turns a KMS refusal into a clear error without the SDK text', async () => {
    aws.kms.failure = { status: 400, code: 'AccessDeniedException', message: 'User: arn:aws:sts::111122223333:assumed-role/x is not authorized SECRET-LOOKING-TEXT' };
    const error = await box()
      .seal(bytes('secret'), 'ctx:denied')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KmsSecretBoxError);
    expect(error).toMatchObject({ operation: 'GenerateDataKey', awsErrorName: 'AccessDeniedException', httpStatusCode: 400, context: 'ctx:denied' });
    expect((error as Error).message).toContain('kms:GenerateDataKey');
    expect((error as Error).message).not.toContain('SECRET-LOOKING-TEXT');
    expect(JSON.stringify(error)).not.toContain('SECRET-LOOKING-TEXT');
    expect((error as Error).cause).toBeUndefined();
  });

  it('reports a failed Decrypt as a KMS error, not as tampering, and does not cache the failure', async () => {
    const sealed = await box().seal(bytes('secret'), 'ctx:flaky');
    const reader = box();
    aws.kms.failure = { status: 400, code: 'DisabledException', message: 'key is disabled' };
    await expect(reader.open(sealed, 'ctx:flaky')).rejects.toMatchObject({ name: 'KmsSecretBoxError', operation: 'Decrypt', awsErrorName: 'DisabledException' });
    aws.kms.failure = undefined;
    expect(text(await reader.open(sealed, 'ctx:flaky'))).toBe('secret');
  });

  it('reports an unreachable KMS endpoint', async () => {
    const closed = await startAwsEndpoints();
    const url = closed.url;
    await closed.close();
    const b = openKmsSecretBox({ keyId: aws.kms.key.arn, endpoint: url, credentials: aws.credentials });
    await expect(b.seal(bytes('secret'), 'ctx')).rejects.toMatchObject({ name: 'KmsSecretBoxError', awsErrorName: 'ECONNREFUSED' });
  });

  it('checks its arguments', async () => {
    expect(() => openKmsSecretBox({ keyId: '' })).toThrow(/keyId/);
    await expect(box().seal(bytes('x'), '')).rejects.toThrow(TypeError);
    await expect(box().open('v1k.a.b.c', '')).rejects.toThrow(TypeError);
  });
});
