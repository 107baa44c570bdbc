import type { Notifier } from '../notify/notifier.js';
import type { AuditLog } from '../services/audit-log.js';
import type { Metrics } from './metrics.js';

/**
 * Metrics and notifications that follow from audit events, so every path that audits a login,
 * a lockout or a new administrator is also counted and, where it matters, reported.
 */
export function wireAuditAlerts(audit: AuditLog, metrics: Metrics, notifier: Notifier): void {
  audit.onEvent((event) => {
    if (event.type === 'login' && event.method) {
      metrics.count(event.result === 'success' ? 'loginSuccess' : 'loginFailure', { Method: event.method });
    }
    if (event.type === 'login' && event.method === 'recovery' && event.result === 'success') {
      // A recovery code means the user lost their passkey, or someone else has their codes.
      void notifier.notify({
        event: 'login.recovery',
        severity: 'warning',
        subject: `Kanmon: ${event.username ?? 'a user'} signed in with a recovery code`,
        message: `User "${event.username}" signed in with a recovery code from ${event.ip ?? 'unknown'} (${event.userAgent ?? 'unknown browser'}) and was sent to register a new passkey. Unused recovery codes left: ${String(event.details?.remainingCodes ?? 'unknown')}. If the user did not do this, disable the account (kanmon user disable ${event.username}) and reset their recovery codes.`,
        details: { username: event.username, ip: event.ip, remainingCodes: event.details?.remainingCodes },
      });
    }
    if (event.type === 'login.lockout') {
      // The guard audits a lock once, when it takes hold, so this is one message per lockout.
      // Lock keys are ASCII (normalized usernames, a digest for other names, addresses).
      const byUser = event.details?.key === 'user';
      const until = typeof event.details?.until === 'number' ? new Date(event.details.until).toISOString() : 'unknown';
      void notifier.notify({
        event: 'login.lockout',
        severity: 'warning',
        subject: byUser ? `Kanmon: sign-in locked for user ${event.username ?? 'unknown'}` : `Kanmon: sign-in locked for address ${String(event.details?.address ?? event.ip)}`,
        message: byUser
          ? `Sign-in for "${event.username}" is locked until ${until} after ${String(event.details?.failures)} failed attempts (the last from ${event.ip ?? 'unknown'}). ` +
            `${event.details?.knownUser === false ? 'No user has this name: someone is guessing usernames. ' : ''}` +
            `If the user is locked out by someone else's guessing and needs in now, run: kanmon user unlock ${event.username}`
          : `Sign-in from ${String(event.details?.address ?? event.ip)} is locked until ${until} after ${String(event.details?.failures)} failed attempts from that address. It lifts by itself.`,
        details: { key: event.details?.key, username: event.username, ip: event.ip, address: event.details?.address, until: event.details?.until, failures: event.details?.failures },
      });
    }
    if (event.type === 'user.add' && event.result === 'success' && event.details?.isAdmin === true) {
      void notifier.notify({
        event: 'admin.created',
        severity: 'warning',
        subject: `Kanmon: new administrator ${event.username ?? ''}`.trim(),
        message: `A new administrator account "${event.username}" was created by ${event.actor ?? 'unknown'} from ${event.ip ?? 'unknown'}.`,
        details: { username: event.username, actor: event.actor },
      });
    }
  });
}
