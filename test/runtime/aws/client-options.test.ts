import { describe, expect, it } from 'vitest';
import { KMSClient } from '@aws-sdk/client-kms';
import { awsClientOptions } from '../../../runtime/aws/client-options.js';

describe('awsClientOptions', () => {
  it('passes on only the settings that were given, so the SDK resolves the rest itself', () => {
    expect(awsClientOptions({})).toEqual({});
    expect(awsClientOptions({ region: '', endpoint: '', credentials: undefined })).toEqual({});
    expect(awsClientOptions({ region: 'ap-northeast-1' })).toEqual({ region: 'ap-northeast-1' });
    expect(awsClientOptions({ endpoint: 'https://kms.vpce.example' })).toEqual({ endpoint: 'https://kms.vpce.example' });
  });

  it('copies static credentials, so a frozen object given by the caller still works with the SDK', async () => {
    const frozen = Object.freeze({ accessKeyId: 'AKIAKANMONTESTONLY00', secretAccessKey: 'kanmon-test-secret-key-not-a-real-one' });
    const options = awsClientOptions({ region: 'ap-northeast-1', credentials: frozen });
    expect(options.credentials).toEqual(frozen);
    expect(options.credentials).not.toBe(frozen);
    const client = new KMSClient(options);
    try {
      await expect(client.config.credentials()).resolves.toMatchObject({ accessKeyId: 'AKIAKANMONTESTONLY00' });
    } finally {
      client.destroy();
    }
  });

  it('hands a credentials provider over as it is', () => {
    const provider = async () => ({ accessKeyId: 'AKIAKANMONTESTONLY00', secretAccessKey: 'x' });
    expect(awsClientOptions({ credentials: provider }).credentials).toBe(provider);
  });
});
