/**
 * Node heartbeats: every node writes a small named document about itself periodically; the
 * console's dashboard lists the nodes whose heartbeat is recent. A document expires after a few
 * missed beats, so a node that stopped drops off the list without anyone cleaning up.
 */
import { hostname } from 'node:os';
import type { DocumentStore } from '../store/types.js';

export const NODE_HEARTBEAT_KIND = 'node-heartbeat';
/** @default 30 s between beats */
export const HEARTBEAT_INTERVAL_MS = 30_000;
/** A node is gone after this many missed beats. */
export const MISSED_BEATS = 3;

export interface NodeHeartbeat {
  readonly nodeId: string;
  readonly version: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly lastBeatAt: number;
}

export interface HeartbeatOptions {
  readonly documents: DocumentStore;
  readonly nodeId: string;
  readonly version: string;
  readonly intervalMs?: number;
  readonly now?: () => number;
  readonly onError?: (err: unknown) => void;
}

/** Writes one heartbeat. */
export async function writeHeartbeat(opts: HeartbeatOptions & { readonly startedAt: number }): Promise<NodeHeartbeat> {
  const now = (opts.now ?? Date.now)();
  const interval = opts.intervalMs ?? HEARTBEAT_INTERVAL_MS;
  const beat: NodeHeartbeat = { nodeId: opts.nodeId, version: opts.version, host: hostname().slice(0, 128), pid: process.pid, startedAt: opts.startedAt, lastBeatAt: now };
  await opts.documents.put({ kind: NODE_HEARTBEAT_KIND, id: opts.nodeId, body: JSON.stringify(beat), expiresAt: now + interval * MISSED_BEATS }, { now });
  return beat;
}

/** Beats now and every interval until stopped; stopping removes this node's document. */
export function startNodeHeartbeat(opts: HeartbeatOptions): () => Promise<void> {
  const startedAt = (opts.now ?? Date.now)();
  const beat = () => writeHeartbeat({ ...opts, startedAt }).catch((err) => opts.onError?.(err));
  void beat();
  const timer = setInterval(beat, opts.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await opts.documents.delete(NODE_HEARTBEAT_KIND, opts.nodeId).catch((err) => opts.onError?.(err));
  };
}

/** The nodes whose heartbeat has not expired, by node id. */
export async function liveNodes(documents: DocumentStore, now: number = Date.now()): Promise<NodeHeartbeat[]> {
  const out: NodeHeartbeat[] = [];
  let cursor: string | undefined;
  do {
    const page = await documents.list(NODE_HEARTBEAT_KIND, { now, limit: 200, ...(cursor ? { cursor } : {}) });
    for (const doc of page.documents) {
      try {
        out.push(JSON.parse(doc.body) as NodeHeartbeat);
      } catch {
        // A body this code did not write: not a node we can describe.
      }
    }
    cursor = page.cursor;
  } while (cursor);
  return out;
}
