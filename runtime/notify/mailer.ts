/**
 * Mail to one recipient at a time: certificate download links and expiry warnings for the
 * certificate's own user. The administrators' channel is the Notifier (a log or an SNS topic);
 * a topic cannot reach an arbitrary address, so per-person messages go through a Mailer.
 */
import { MAIL_ADDRESS } from '../config/schema.js';

export interface MailMessage {
  /** One address (addr-spec only: no display name, no list). */
  readonly to: string;
  /** One line. */
  readonly subject: string;
  /** Plain text, UTF-8. */
  readonly text: string;
}

export interface Mailer {
  /** Hands the message to the relay. @throws MailDeliveryError when the relay did not accept it. */
  send(message: MailMessage): Promise<{ readonly messageId: string }>;
  /** Closes pooled connections. */
  close(): void;
}

/** The relay refused the message or could not be reached; `reason` is safe to show an administrator. */
export class MailDeliveryError extends Error {
  constructor(
    readonly reason: 'invalid-recipient' | 'unreachable' | 'tls' | 'auth' | 'refused',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MailDeliveryError';
  }
}

/** Longest address accepted (RFC 5321 §4.5.3.1.3: a path is at most 256 octets, including the brackets). */
const MAX_ADDRESS = 254;

/** A recipient address, trimmed, or undefined when it is not one plain addr-spec (header injection, lists, display names). */
export function cleanMailAddress(value: unknown): string | undefined {
  // A line break anywhere is someone trying to write a header, not a typing slip.
  if (typeof value !== 'string' || /[\u0000-\u001f\u007f]/.test(value)) return undefined;
  const trimmed = value.trim();
  if (trimmed.length === 0 || trimmed.length > MAX_ADDRESS || !MAIL_ADDRESS.test(trimmed)) return undefined;
  return trimmed;
}

/** A subject line: control characters (and so any attempt at a second header) become spaces. */
export function cleanSubject(subject: string): string {
  return subject.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 200);
}
