import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { MailDeliveryError, type Mailer } from './mailer.js';
import type { Notification, Notifier } from './notifier.js';
import { snsMessage, snsSubject } from './sns-notifier.js';

export interface AdminMailNotifierOptions {
  /** The log or SNS notifier; every notification still goes there first. */
  readonly inner: Notifier;
  /** The mail channel (notifications.mail), read at each notification; undefined: no mail. */
  readonly mailer: () => Mailer | undefined;
  /** The live setting notifications.adminRecipients, read at each notification so a saved change applies at once. */
  readonly recipients: () => readonly string[];
  readonly logger: Logger;
  /** Names the node in every message. @default os.hostname() */
  readonly source?: string;
}

/**
 * Every administrator notification to the notifier the config names (log or SNS) and, when
 * mail is configured and `notifications.adminRecipients` lists anyone, by mail to each of them
 * (one message per recipient, so recipients do not see each other). Like every Notifier it
 * never throws: a recipient the relay refuses is logged with the event, not the address.
 */
export class AdminMailNotifier implements Notifier {
  readonly #o: AdminMailNotifierOptions;
  readonly #source: string;

  constructor(opts: AdminMailNotifierOptions) {
    this.#o = opts;
    this.#source = opts.source ?? hostname();
  }

  async notify(n: Notification): Promise<void> {
    await Promise.all([this.#o.inner.notify(n), this.#mail(n)]);
  }

  async #mail(n: Notification): Promise<void> {
    let mailer: Mailer | undefined;
    let recipients: readonly string[];
    try {
      mailer = this.#o.mailer();
      recipients = mailer ? this.#o.recipients() : [];
    } catch (err) {
      this.#o.logger.error({ notification: true, event: n?.event, err }, 'administrator mail recipients could not be read');
      return;
    }
    if (!mailer || recipients.length === 0) return;
    const subject = snsSubject(n?.subject);
    const text = snsMessage(n, this.#source, new Date());
    const results = await Promise.allSettled([...new Set(recipients)].map((to) => mailer.send({ to, subject, text })));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ index: i, reason: r.reason instanceof MailDeliveryError ? r.reason.reason : 'error' }] : []));
    if (failed.length > 0) {
      this.#o.logger.error({ notification: true, event: n?.event, severity: n?.severity, failed: failed.length, of: results.length, reasons: [...new Set(failed.map((f) => f.reason))] }, `notification ${n?.event} could not be mailed to every administrator recipient`);
    }
  }
}
