import type { KanmonConfig } from '../config/schema.js';
import { openDynamoStore } from './dynamodb/index.js';
import { openSqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

/**
 * Opens the store the configuration names. The SQLite store creates its directory 0700 and
 * its file 0600 itself, so every caller (server, CLI, tests) gets the same protection.
 */
export async function openStore(config: KanmonConfig): Promise<Store> {
  const store = config.store;
  switch (store.kind) {
    case 'sqlite':
      return openSqliteStore({ file: store.file });
    case 'dynamodb':
      return openDynamoStore({
        table: store.table,
        ...(store.region === undefined ? {} : { region: store.region }),
        ...(store.endpoint === undefined ? {} : { endpoint: store.endpoint }),
      });
  }
}
