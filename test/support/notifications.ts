/**
 * Listens to what administrators are told: every notification a running Kanmon sends is
 * recorded here and still goes on to the configured notifier.
 */
import type { Notification, Notifier } from '../../runtime/notify/notifier.js';

/** Records every notification `app.notifier` sends from now on; returns the growing list. */
export function recordNotifications(app: { readonly notifier: Notifier }): Notification[] {
  const seen: Notification[] = [];
  const notify = app.notifier.notify.bind(app.notifier);
  app.notifier.notify = async (n) => {
    seen.push(n);
    return notify(n);
  };
  return seen;
}
