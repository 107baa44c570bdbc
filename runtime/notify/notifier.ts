/**
 * Notifications to administrators: self-check state changes, lockouts, a new administrator,
 * CA events. Two implementations: the log (local) and SNS (on AWS).
 */
export type NotificationSeverity = 'info' | 'warning' | 'critical';

export interface Notification {
  /** Machine-readable event, e.g. 'selfcheck.store.failing', 'admin.created'. */
  readonly event: string;
  readonly severity: NotificationSeverity;
  /** One line, shown as an e-mail subject; ASCII is safest for SNS e-mail subjects. */
  readonly subject: string;
  /** Plain text body. */
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface Notifier {
  /** Delivers the notification; never throws (a failure is logged by the implementation). */
  notify(notification: Notification): Promise<void>;
}
