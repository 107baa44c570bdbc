/**
 * The DynamoDB single-table key schema, shared by the runtime store and the CDK stack
 * (lib/ imports this file, so it must not import the AWS SDK or anything with side effects).
 */
export const TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** Epoch seconds; DynamoDB's TTL deletes expired challenges, sessions and tokens. */
  ttlAttribute: 'ttl',
  globalSecondaryIndexes: [
    /** Secondary access patterns (sessions by user, users by username order, audit by user). */
    { indexName: 'gsi1', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  ],
} as const;
