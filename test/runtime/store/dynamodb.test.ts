import { readFileSync } from 'node:fs';
import { DescribeTableCommand, DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../../runtime/store/errors.js';
import { createDynamoDbClient, createTable, openDynamoStore, TABLE_SCHEMA } from '../../../runtime/store/dynamodb/index.js';
import { randomId } from '../../../runtime/store/ids.js';
import type { Store } from '../../../runtime/store/types.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { describeStoreConformance } from './conformance.js';

let local: DynamoDbLocal;

beforeAll(async () => {
  local = await startDynamoDbLocal();
});

afterAll(async () => {
  await local?.stop();
});

async function createFreshTable(): Promise<string> {
  const table = `kanmon-test-${randomId(6).replace(/[^a-zA-Z0-9]/g, 'x')}`;
  const client = createDynamoDbClient({ endpoint: local.endpoint });
  try {
    await createTable(client, table);
  } finally {
    client.destroy();
  }
  return table;
}

/** A new table for every store opened, so tests never see each other's items. */
async function openFreshStore() {
  return openDynamoStore({ table: await createFreshTable(), endpoint: local.endpoint });
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

  describe('two nodes on one table', () => {
    // Each store has its own client and connections, as the two Fargate tasks do.
    let nodeA: Store;
    let nodeB: Store;

    beforeEach(async () => {
      const table = await createFreshTable();
      nodeA = await openDynamoStore({ table, endpoint: local.endpoint });
      nodeB = await openDynamoStore({ table, endpoint: local.endpoint });
    });

    afterEach(async () => {
      await nodeA.close();
      await nodeB.close();
    });

    it('accepts a TOTP time step on one node only (RFC 6238 §5.2)', async () => {
      const userId = randomId();
      const step = Math.floor(Date.now() / 30_000);
      const expiresAt = (step + 3) * 30_000;
      const results = await Promise.all([
        ...Array.from({ length: 4 }, () => nodeA.totp.claimStep(userId, step, expiresAt)),
        ...Array.from({ length: 4 }, () => nodeB.totp.claimStep(userId, step, expiresAt)),
      ]);
      expect(results.filter((won) => won)).toHaveLength(1);
    });

    it('counts every failure from both nodes, also across a window restart', async () => {
      const key = `user:${randomId()}`;
      const now = Date.now() + 86_400_000;
      const windowMs = 60_000;
      await nodeA.loginThrottle.recordFailure(key, now - 2 * windowMs, windowMs);
      await Promise.all(
        Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? nodeA : nodeB).loginThrottle.recordFailure(key, now, windowMs)),
      );
      expect(await nodeB.loginThrottle.get(key)).toEqual({ key, failures: 16, windowStartedAt: now, expiresAt: now + windowMs });
    });

    it('keeps a lock set on one node while the other counts failures', async () => {
      const key = `user:${randomId()}`;
      const now = Date.now() + 86_400_000;
      const windowMs = 60_000;
      await nodeA.loginThrottle.recordFailure(key, now, windowMs);
      await Promise.all([
        nodeA.loginThrottle.lock(key, now + 10 * windowMs),
        ...Array.from({ length: 6 }, () => nodeB.loginThrottle.recordFailure(key, now + 1, windowMs)),
      ]);
      expect(await nodeA.loginThrottle.get(key)).toEqual({
        key,
        failures: 7,
        windowStartedAt: now,
        lockedUntil: now + 10 * windowMs,
        expiresAt: now + 10 * windowMs,
      });
      expect((await nodeB.loginThrottle.listLocked('user:', now)).map((t) => t.key)).toEqual([key]);
    });

    it('lets one recovery code be used on one node only', async () => {
      const userId = randomId();
      const set = { userId, setId: randomId(), codes: [{ hash: 'h0' }, { hash: 'h1' }], createdAt: Date.now() };
      await nodeA.recoveryCodes.replace(set);
      const results = await Promise.all([
        nodeA.recoveryCodes.markUsed(userId, set.setId, 1, 1),
        nodeB.recoveryCodes.markUsed(userId, set.setId, 1, 2),
        nodeA.recoveryCodes.markUsed(userId, set.setId, 1, 3),
        nodeB.recoveryCodes.markUsed(userId, set.setId, 1, 4),
      ]);
      expect(results.filter((won) => won)).toHaveLength(1);
    });
  });

  it('never scans: the store issues only key lookups and queries', () => {
    const source = readFileSync(new URL('../../../runtime/store/dynamodb/dynamodb-store.ts', import.meta.url), 'utf8');
    expect(source).not.toMatch(/\bScan(Command)?\b/);
  });
});
