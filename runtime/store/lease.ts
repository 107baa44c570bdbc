/**
 * A lease: at most one holder of a named job at a time across every node on one store
 * (ACME orders, expiry warnings, scheduled syncs). Built on a named document and its version,
 * so taking and renewing are single conditional writes. A holder that dies simply stops
 * renewing; the lease expires and another node takes it.
 *
 * Holders must renew well before `expiresAt` and stop the work when a renewal comes back
 * undefined: the lease was lost (it expired, or another node took it after expiry).
 */
import { ConcurrentUpdateError } from './errors.js';
import type { DocumentStore } from './types.js';

export const LEASE_KIND = 'lease';

export interface Lease {
  readonly name: string;
  readonly holder: string;
  /** The document version this holder wrote; the next write must match it. */
  readonly version: number;
  readonly expiresAt: number;
}

export interface LeaseRequest {
  /** What is being held, e.g. 'acme-order'. */
  readonly name: string;
  /** Who holds it: a node id, unique per process. */
  readonly holder: string;
  readonly ttlMs: number;
  readonly now: number;
}

/** Takes the lease when it is free or expired (or already ours); undefined when another holder has it. */
export async function acquireLease(documents: DocumentStore, req: LeaseRequest): Promise<Lease | undefined> {
  checkTtl(req.ttlMs);
  const current = await documents.get(LEASE_KIND, req.name, req.now);
  if (current) {
    const holder = holderOf(current.body);
    if (holder !== req.holder) return undefined;
    return write(documents, req.name, req.holder, req.ttlMs, req.now, current.version);
  }
  return write(documents, req.name, req.holder, req.ttlMs, req.now, 0);
}

/** Extends a held lease; undefined when it was lost. */
export async function renewLease(documents: DocumentStore, lease: Lease, opts: { readonly ttlMs: number; readonly now: number }): Promise<Lease | undefined> {
  checkTtl(opts.ttlMs);
  return write(documents, lease.name, lease.holder, opts.ttlMs, opts.now, lease.version);
}

/** Gives the lease up so another node need not wait for it to expire; harmless when already lost. */
export async function releaseLease(documents: DocumentStore, lease: Lease): Promise<void> {
  try {
    await documents.delete(LEASE_KIND, lease.name, lease.version);
  } catch (err) {
    if (!(err instanceof ConcurrentUpdateError)) throw err;
  }
}

/** Who holds a lease now, for status pages; undefined when free. */
export async function leaseHolder(documents: DocumentStore, name: string, now: number): Promise<{ holder: string; expiresAt: number } | undefined> {
  const current = await documents.get(LEASE_KIND, name, now);
  if (!current || current.expiresAt === undefined) return undefined;
  return { holder: holderOf(current.body), expiresAt: current.expiresAt };
}

async function write(documents: DocumentStore, name: string, holder: string, ttlMs: number, now: number, expectedVersion: number): Promise<Lease | undefined> {
  const expiresAt = now + ttlMs;
  try {
    const stored = await documents.put({ kind: LEASE_KIND, id: name, body: JSON.stringify({ holder }), expiresAt }, { now, expectedVersion });
    return { name, holder, version: stored.version, expiresAt };
  } catch (err) {
    if (err instanceof ConcurrentUpdateError) return undefined;
    throw err;
  }
}

function holderOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { holder?: unknown };
    return typeof parsed.holder === 'string' ? parsed.holder : '';
  } catch {
    return '';
  }
}

function checkTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs < 1000) throw new TypeError(`lease ttlMs must be at least 1000, got ${String(ttlMs)}`);
}
