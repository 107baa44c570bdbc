import type { DocumentStore, Store } from '../store/types.js';
import { StoreUnavailableError } from '../store/errors.js';

/**
 * The store's named documents, for the console's own small state (re-authentication times,
 * node heartbeats). A store without them is reported as unavailable, never as a crash.
 */
export function documentsOf(store: Store): DocumentStore {
  const documents = (store as Store & { readonly documents?: DocumentStore }).documents;
  if (!documents) throw new StoreUnavailableError('this store has no named documents');
  return documents;
}
