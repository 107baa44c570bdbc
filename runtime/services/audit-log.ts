import type { Logger } from 'pino';
import type { AuditEvent, AuditResult, Store } from '../store/types.js';
import { timeSortableId } from '../store/ids.js';
import type { RequestContext } from './request-context.js';

export interface AuditInput {
  readonly type: string;
  readonly result: AuditResult;
  readonly context?: RequestContext;
  readonly userId?: string;
  readonly username?: string;
  readonly actor?: string;
  readonly method?: string;
  readonly reason?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * Audit events are data in the store, not log lines. Recording never throws: a failed
 * write is logged at error level so an operator sees it, and the action it describes
 * is not undone by a failing audit trail.
 */
export class AuditLog {
  private readonly listeners: Array<(event: AuditEvent) => void> = [];

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Metrics and notifications hang off audit events, so every path that audits also counts. */
  onEvent(listener: (event: AuditEvent) => void): void {
    this.listeners.push(listener);
  }

  async record(input: AuditInput): Promise<void> {
    const time = this.now();
    const event: AuditEvent = {
      id: timeSortableId(time),
      time,
      type: input.type,
      result: input.result,
      ...(input.userId ? { userId: input.userId } : {}),
      ...(input.username ? { username: input.username } : {}),
      ...(input.actor ? { actor: input.actor } : {}),
      ...(input.context ? { ip: input.context.ip, userAgent: truncate(input.context.userAgent, 512) } : {}),
      ...(input.method ? { method: input.method } : {}),
      ...(input.reason ? { reason: input.reason } : {}),
      ...(input.details ? { details: input.details } : {}),
    };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn({ err, auditType: event.type }, 'audit listener failed');
      }
    }
    try {
      await this.store.audit.append(event);
    } catch (err) {
      this.logger.error({ err, auditType: event.type, requestId: input.context?.requestId }, 'audit event could not be stored');
    }
  }

  tail(opts: { limit?: number; before?: string; userId?: string } = {}): Promise<AuditEvent[]> {
    return this.store.audit.list({ limit: opts.limit ?? 50, ...opts });
  }
}

function truncate(value: string, max: number): string {
  return value.length > max ? value.slice(0, max) : value;
}
