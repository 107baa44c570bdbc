import type { Logger } from 'pino';
import type { Notification, Notifier } from './notifier.js';

/** Locally, notifications are log lines an operator can grep for (`"notification":true`). */
export class LogNotifier implements Notifier {
  constructor(private readonly logger: Logger) {}

  async notify(n: Notification): Promise<void> {
    const level = n.severity === 'critical' ? 'error' : n.severity === 'warning' ? 'warn' : 'info';
    this.logger[level]({ notification: true, event: n.event, severity: n.severity, details: n.details, body: n.message }, n.subject);
  }
}
