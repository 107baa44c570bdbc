import { readFileSync } from 'node:fs';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { MailConfig } from '../config/schema.js';
import { cleanMailAddress, cleanSubject, MailDeliveryError, type Mailer, type MailMessage } from './mailer.js';

export interface SmtpMailerOptions {
  readonly config: MailConfig;
  /** The SMTP AUTH password (read from the environment variable config names). */
  readonly password?: string;
  readonly logger: Logger;
  /** Bound on connecting, the greeting and each reply. @default 15000 */
  readonly timeoutMs?: number;
}

/**
 * Mail through an SMTP relay. The relay's certificate is always verified (against `caFile`
 * when set, else the system's CAs); "starttls" refuses to go on when the server does not
 * offer STARTTLS (RFC 3207 §4), so credentials and links never cross the network in clear
 * unless an administrator chose security "none".
 */
export class SmtpMailer implements Mailer {
  readonly #transport: Transporter;
  readonly #from: string;
  readonly #logger: Logger;

  constructor(opts: SmtpMailerOptions) {
    const { config } = opts;
    const timeout = opts.timeoutMs ?? 15_000;
    this.#from = config.from;
    this.#logger = opts.logger;
    this.#transport = nodemailer.createTransport({
      host: config.host,
      port: config.port,
      secure: config.security === 'tls',
      requireTLS: config.security === 'starttls',
      ignoreTLS: config.security === 'none',
      ...(config.username !== undefined ? { auth: { user: config.username, pass: opts.password ?? '' } } : {}),
      tls: {
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        ...(config.caFile ? { ca: readFileSync(config.caFile, 'utf8') } : {}),
      },
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      // Nothing about the message reaches the log through the library.
      logger: false,
      debug: false,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  async send(message: MailMessage): Promise<{ messageId: string }> {
    const to = cleanMailAddress(message.to);
    if (!to) throw new MailDeliveryError('invalid-recipient', 'the recipient is not a single plain e-mail address');
    try {
      const info = (await this.#transport.sendMail({
        from: this.#from,
        to,
        subject: cleanSubject(message.subject),
        text: message.text,
        // Base64 keeps Japanese text intact through relays that are not 8BITMIME-clean.
        textEncoding: 'base64',
        disableFileAccess: true,
        disableUrlAccess: true,
      })) as { messageId?: string; rejected?: unknown[] };
      if (Array.isArray(info.rejected) && info.rejected.length > 0) throw new MailDeliveryError('refused', 'the relay refused the recipient');
      return { messageId: String(info.messageId ?? '') };
    } catch (err) {
      if (err instanceof MailDeliveryError) throw err;
      const e = err as { code?: string; responseCode?: number; command?: string };
      const reason = e.code === 'EAUTH' ? 'auth' : e.code === 'ETLS' || /certificate|tls|ssl/i.test(String((err as Error).message)) ? 'tls' : e.code === 'ECONNECTION' || e.code === 'ETIMEDOUT' || e.code === 'ESOCKET' || e.code === 'EDNS' ? 'unreachable' : 'refused';
      // Only the code and reply number: the message of a refusal can quote the recipient.
      this.#logger.warn({ mail: true, reason, code: e.code, responseCode: e.responseCode, command: e.command }, 'mail could not be handed to the relay');
      throw new MailDeliveryError(reason, `the mail relay did not accept the message (${reason}${e.responseCode ? ` ${e.responseCode}` : ''})`, { cause: err });
    }
  }

  close(): void {
    this.#transport.close();
  }
}
