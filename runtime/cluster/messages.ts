import type { KanmonConfig } from '../config/schema.js';

/**
 * What the primary and its workers tell each other over the cluster's IPC channel. Every
 * message carries `kanmon` so nothing else that uses the channel is mistaken for one.
 */
export type PrimaryMessage =
  /** The resolved config (port already chosen) and where the primary's demo backend listens. */
  | { readonly kanmon: 'start'; readonly config: KanmonConfig; readonly demoUrl?: string; readonly sessionReportMs: number }
  /** Stop accepting, let in-flight requests finish within graceMs, then exit. */
  | { readonly kanmon: 'drain'; readonly graceMs: number };

export type WorkerMessage =
  /** Sent once the worker listens for messages: one sent earlier would be dropped. */
  | { readonly kanmon: 'awaiting-start' }
  | { readonly kanmon: 'listening' }
  | { readonly kanmon: 'failed'; readonly message: string }
  /** Live sessions in this worker's cache, for the node's ActiveSessions gauge. */
  | { readonly kanmon: 'sessions'; readonly count: number };

export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return typeof m === 'object' && m !== null && ((m as { kanmon?: unknown }).kanmon === 'start' || (m as { kanmon?: unknown }).kanmon === 'drain');
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  const kind = typeof m === 'object' && m !== null ? (m as { kanmon?: unknown }).kanmon : undefined;
  return kind === 'awaiting-start' || kind === 'listening' || kind === 'failed' || kind === 'sessions';
}
