import type { KanmonConfig } from '../config/schema.js';
import type { CheckResult } from '../observability/self-check.js';

/**
 * What the primary and its workers tell each other over the cluster's IPC channel. Every
 * message carries `kanmon` so nothing else that uses the channel is mistaken for one.
 */
export type PrimaryMessage =
  /**
   * The resolved config (port already chosen), where the primary's demo backend listens, the
   * primary's latest self-check results (so a worker started later shows them at once), and
   * the server certificate's poll interval when it is not the default.
   */
  | {
      readonly kanmon: 'start';
      readonly config: KanmonConfig;
      readonly demoUrl?: string;
      readonly sessionReportMs: number;
      readonly health: readonly CheckResult[];
      readonly certificatePollMs?: number;
    }
  /** The primary's self-check results after each run, for the console's dashboard. */
  | { readonly kanmon: 'health'; readonly results: readonly CheckResult[] }
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
  const kind = typeof m === 'object' && m !== null ? (m as { kanmon?: unknown }).kanmon : undefined;
  return kind === 'start' || kind === 'drain' || kind === 'health';
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  const kind = typeof m === 'object' && m !== null ? (m as { kanmon?: unknown }).kanmon : undefined;
  return kind === 'awaiting-start' || kind === 'listening' || kind === 'failed' || kind === 'sessions';
}

/** The self-check results a message carries, keeping only well-formed entries (the dashboard renders each). */
export function checkResultsOf(value: unknown): CheckResult[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (r): r is CheckResult =>
      typeof r === 'object' &&
      r !== null &&
      typeof (r as CheckResult).name === 'string' &&
      ((r as CheckResult).state === 'ok' || (r as CheckResult).state === 'failing') &&
      typeof (r as CheckResult).detail === 'string' &&
      typeof (r as CheckResult).checkedAt === 'number',
  );
}
