/**
 * A CSV uploaded in the console waits here between its dry run and its apply, so the apply
 * runs exactly the file that was previewed (and a re-authentication in between loses nothing).
 * Kept compressed as a named document ('admin-import-csv') that expires after an hour.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { randomId } from '../store/ids.js';
import { DOCUMENT_BODY_LIMIT, type DocumentStore } from '../store/types.js';
import { ServiceError } from './errors.js';

export const IMPORT_STAGING_KIND = 'admin-import-csv';
export const IMPORT_STAGING_TTL_MS = 60 * 60_000;

export class ImportStagingService {
  constructor(private readonly deps: { readonly documents: DocumentStore; readonly now?: () => number }) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Keeps the CSV text of one administrator's upload; returns its id. */
  async stage(csv: string, owner: string): Promise<string> {
    const packed = gzipSync(Buffer.from(csv, 'utf8')).toString('base64');
    const body = JSON.stringify({ owner, csv: packed });
    if (Buffer.byteLength(body) > DOCUMENT_BODY_LIMIT) {
      throw new ServiceError('invalid-input', 'this CSV is too large for the console; import it with `kanmon user import FILE`');
    }
    const id = randomId(16);
    await this.deps.documents.put({ kind: IMPORT_STAGING_KIND, id, body, expiresAt: this.now() + IMPORT_STAGING_TTL_MS }, { now: this.now(), expectedVersion: 0 });
    return id;
  }

  /** The staged CSV, only for the administrator who uploaded it. */
  async staged(id: string, owner: string): Promise<string> {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(id)) throw new ServiceError('invalid-input', 'that upload id is not valid');
    const doc = await this.deps.documents.get(IMPORT_STAGING_KIND, id, this.now());
    const parsed = doc ? (JSON.parse(doc.body) as { owner: string; csv: string }) : undefined;
    if (!parsed || parsed.owner !== owner) throw new ServiceError('not-found', 'that upload has expired (after an hour) or is not yours; upload the file again');
    return gunzipSync(Buffer.from(parsed.csv, 'base64')).toString('utf8');
  }
}
