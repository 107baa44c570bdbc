/**
 * Rules both store implementations apply to named documents before touching the database,
 * so a bad kind, id or body is the same named error everywhere.
 */
import { StoreError } from './errors.js';
import { DOCUMENT_BODY_LIMIT, type DocumentWrite } from './types.js';

const KIND = /^[a-z0-9][a-z0-9-]{0,63}$/;
// Control characters would make ids ambiguous in logs and keys.
const CONTROL = /[\u0000-\u001f\u007f]/;

export function checkDocumentKey(kind: string, id: string): void {
  if (typeof kind !== 'string' || !KIND.test(kind)) {
    throw new StoreError(`document kind must be 1-64 of a-z, 0-9 and '-', got ${JSON.stringify(kind)}`);
  }
  if (typeof id !== 'string' || id.length === 0 || id.length > 512 || CONTROL.test(id)) {
    throw new StoreError(`document id must be 1-512 characters without control characters, got ${JSON.stringify(String(id).slice(0, 80))}`);
  }
}

export function checkDocumentWrite(doc: DocumentWrite, expectedVersion: number | undefined): void {
  checkDocumentKey(doc.kind, doc.id);
  if (typeof doc.body !== 'string') throw new StoreError('document body must be a string');
  const size = Buffer.byteLength(doc.body, 'utf8');
  if (size > DOCUMENT_BODY_LIMIT) {
    throw new StoreError(`document ${doc.kind}/${doc.id} body is ${size} bytes, more than the ${DOCUMENT_BODY_LIMIT} allowed`);
  }
  if (doc.expiresAt !== undefined && !Number.isFinite(doc.expiresAt)) throw new StoreError('document expiresAt must be a finite number');
  if (expectedVersion !== undefined && (!Number.isInteger(expectedVersion) || expectedVersion < 0)) {
    throw new StoreError(`document expectedVersion must be a non-negative integer, got ${String(expectedVersion)}`);
  }
}

/** Cursors are the last id of a page, opaque to callers. */
export function encodeDocumentCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

export function decodeDocumentCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  if (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]{1,700}$/.test(cursor)) throw new StoreError('document cursor is not valid');
  return Buffer.from(cursor, 'base64url').toString('utf8');
}
