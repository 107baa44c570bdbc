import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { StoreError, StoreUnavailableError } from '../errors.js';
import { TABLE_SCHEMA } from './schema.js';

/**
 * Creates the store's table from TABLE_SCHEMA (on-demand capacity) and enables TTL, for tests
 * and local development; in production the CDK stack owns the table. Idempotent: an existing
 * table is left as it is, and TTL is only switched on when it is off.
 */
export async function createTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    if (!(await tableExists(client, tableName))) {
      const attributeNames = [
        TABLE_SCHEMA.partitionKey,
        TABLE_SCHEMA.sortKey,
        ...TABLE_SCHEMA.globalSecondaryIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
      ];
      try {
        await client.send(
          new CreateTableCommand({
            TableName: tableName,
            BillingMode: 'PAY_PER_REQUEST',
            AttributeDefinitions: [...new Set(attributeNames)].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
            KeySchema: [
              { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
              { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
            ],
            GlobalSecondaryIndexes: TABLE_SCHEMA.globalSecondaryIndexes.map((index) => ({
              IndexName: index.indexName,
              KeySchema: [
                { AttributeName: index.partitionKey, KeyType: 'HASH' },
                { AttributeName: index.sortKey, KeyType: 'RANGE' },
              ],
              Projection: { ProjectionType: index.projectionType },
            })),
          }),
        );
      } catch (err) {
        // Someone else created it between our check and our create: that is the goal anyway.
        if (!(err instanceof Error && err.name === 'ResourceInUseException')) throw err;
      }
      await waitUntilTableExists({ client, maxWaitTime: 120, minDelay: 1, maxDelay: 5 }, { TableName: tableName });
    }
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    const status = ttl.TimeToLiveDescription?.TimeToLiveStatus;
    if (status !== 'ENABLED' && status !== 'ENABLING') {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: tableName,
          TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
        }),
      );
    }
  } catch (err) {
    if (err instanceof StoreError) throw err;
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new StoreUnavailableError(`creating DynamoDB table ${tableName} failed: ${detail}`, { cause: err });
  }
}

async function tableExists(client: DynamoDBClient, tableName: string): Promise<boolean> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return true;
  } catch (err) {
    if (err instanceof Error && err.name === 'ResourceNotFoundException') return false;
    throw err;
  }
}
