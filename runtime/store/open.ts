import type { KanmonConfig } from '../config/schema.js';
import { StoreError } from './errors.js';
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
      throw new StoreError('the DynamoDB store is not available in this build yet');
  }
}
