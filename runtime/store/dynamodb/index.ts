export { createDynamoDbClient, openDynamoStore, type DynamoStoreOptions } from './dynamodb-store.js';
export { createTable } from './create-table.js';
export { ITEM_KEYS, TABLE_SCHEMA } from './schema.js';
