import { readFileSync } from 'node:fs';
import { DescribeTableCommand, DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../../runtime/store/errors.js';
import { createDynamoDbClient, createTable, openDynamoStore, TABLE_SCHEMA } from '../../../runtime/store/dynamodb/index.js';
import { randomId } from '../../../runtime/store/ids.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { describeStoreConformance } from './conformance.js';

let local: DynamoDbLocal;

beforeAll(async () => {
  local = await startDynamoDbLocal();
});

afterAll(async () => {
  await local?.stop();
});

/** A new table for every store opened, so tests never see each other's items. */
async function openFreshStore() {
  const table = `kanmon-test-${randomId(6).replace(/[^a-zA-Z0-9]/g, 'x')}`;
  const client = createDynamoDbClient({ endpoint: local.endpoint });
  try {
    await createTable(client, table);
  } finally {
    client.destroy();
  }
  return openDynamoStore({ table, endpoint: local.endpoint });
}

describeStoreConformance('dynamodb', openFreshStore, { sweepRemovesExpired: false });

describe('dynamodb store specifics', () => {
  it('creates the table from TABLE_SCHEMA with TTL, and tolerates being run twice', async () => {
    const table = `kanmon-schema-${Date.now()}`;
    const client = createDynamoDbClient({ endpoint: local.endpoint });
    try {
      await createTable(client, table);
      await createTable(client, table);
      const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
      expect(Table?.KeySchema).toEqual([
        { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
      ]);
      expect(Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName)).toEqual(['gsi1']);
      expect(Table?.GlobalSecondaryIndexes?.[0]?.Projection?.ProjectionType).toBe('ALL');
      const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: table }));
      expect(ttl.TimeToLiveDescription?.AttributeName).toBe(TABLE_SCHEMA.ttlAttribute);
      expect(['ENABLED', 'ENABLING']).toContain(ttl.TimeToLiveDescription?.TimeToLiveStatus);
    } finally {
      client.destroy();
    }
  });

  it('refuses to open a table that does not exist, with StoreUnavailableError keeping the cause', async () => {
    const attempt = openDynamoStore({ table: 'kanmon-missing-table', endpoint: local.endpoint });
    await expect(attempt).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(attempt).rejects.toHaveProperty('cause.name', 'ResourceNotFoundException');
  });

  it('turns an unreachable endpoint into StoreUnavailableError', async () => {
    const store = await openFreshStore();
    await store.close();
    // A closed port on loopback: connection refused on every attempt.
    const dead = openDynamoStore({ table: 'kanmon-anything', endpoint: 'http://127.0.0.1:9' });
    await expect(dead).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('never scans: the store issues only key lookups and queries', () => {
    const source = readFileSync(new URL('../../../runtime/store/dynamodb/dynamodb-store.ts', import.meta.url), 'utf8');
    expect(source).not.toMatch(/\bScan(Command)?\b/);
  });
});
