export * from './types.js';
export * from './errors.js';
export { randomId, timeSortableId } from './ids.js';
export { openStore } from './open.js';
export { openSqliteStore, type SqliteStoreOptions } from './sqlite/index.js';
export { createDynamoDbClient, createTable, openDynamoStore, type DynamoStoreOptions } from './dynamodb/index.js';
