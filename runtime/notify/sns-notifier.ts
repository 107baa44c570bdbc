import { PublishCommand, SNSClient, type SNSClientConfig } from '@aws-sdk/client-sns';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { awsClientOptions } from '../aws/client-options.js';
import type { Notification, Notifier } from './notifier.js';

export interface SnsNotifierOptions {
  /** The administrators' topic, arn:aws:sns:<region>:<account>:<name>. */
  readonly topicArn: string;
  /** @default the region in `topicArn`, else the AWS SDK's own resolution */
  readonly region?: string;
  /** Another endpoint than SNS's regional one (VPC endpoint DNS name, tests). */
  readonly endpoint?: string;
  /** @default the AWS SDK's default chain (the task role on Fargate) */
  readonly credentials?: SNSClientConfig['credentials'];
  /** A ready client; `region`, `endpoint` and `credentials` are then ignored. */
  readonly client?: SNSClient;
  /** Where failures to publish are reported. */
  readonly logger: Logger;
  /** Names the node in every message, so that administrators know which of the pair spoke. @default os.hostname() */
  readonly source?: string;
  /** Bound on one Publish, retries included; a notification must never hold up its caller for long. @default 10000 */
  readonly timeoutMs?: number;
}

const SUBJECT_PREFIX = '[Kanmon] ';
/** Publish API reference, Subject: "less than 100 characters long". */
const MAX_SUBJECT_CHARS = 99;
/**
 * Publish API reference, Message: "at most 256 KB in size (262,144 bytes)". The limit covers
 * the message attributes too, so leave room for them.
 */
const MAX_MESSAGE_BYTES = 262_144 - 2_048;

/**
 * Notifications to administrators through an SNS topic (e-mail subscriptions on AWS).
 * `notify` never throws and never rejects: a failure to publish is logged with the event
 * name, because the caller is usually already handling a problem and must not get another.
 */
export class SnsNotifier implements Notifier {
  readonly #client: SNSClient;
  readonly #topicArn: string;
  readonly #logger: Logger;
  readonly #source: string;
  readonly #timeoutMs: number;

  constructor(opts: SnsNotifierOptions) {
    if (typeof opts.topicArn !== 'string' || !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/.test(opts.topicArn)) {
      throw new TypeError(`SnsNotifier needs topicArn like arn:aws:sns:ap-northeast-1:123456789012:kanmon-alerts, got ${JSON.stringify(opts.topicArn)}`);
    }
    this.#topicArn = opts.topicArn;
    this.#logger = opts.logger;
    this.#source = opts.source ?? hostname();
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    const region = opts.region ?? /^arn:aws[a-z-]*:sns:([a-z0-9-]+):/.exec(opts.topicArn)?.[1];
    this.#client =
      opts.client ??
      new SNSClient(awsClientOptions({ region, endpoint: opts.endpoint, credentials: opts.credentials }));
  }

  async notify(n: Notification): Promise<void> {
    const event = typeof n?.event === 'string' && n.event.length > 0 ? n.event : 'unknown';
    const severity = typeof n?.severity === 'string' && n.severity.length > 0 ? n.severity : 'info';
    try {
      const result = await this.#client.send(
        new PublishCommand({
          TopicArn: this.#topicArn,
          Subject: snsSubject(n.subject),
          Message: snsMessage(n, this.#source, new Date()),
          // For subscription filter policies, e.g. only `critical` to an on-call SMS subscription.
          MessageAttributes: {
            event: { DataType: 'String', StringValue: event },
            severity: { DataType: 'String', StringValue: severity },
          },
        }),
        { abortSignal: AbortSignal.timeout(this.#timeoutMs) },
      );
      this.#logger.debug({ notification: true, event, severity, messageId: result.MessageId }, 'notification published to SNS');
    } catch (err) {
      // Only the error's name and status: SDK messages can quote the request.
      const e = (typeof err === 'object' && err !== null ? err : {}) as { name?: string; code?: string; $metadata?: { httpStatusCode?: number; requestId?: string } };
      this.#logger.error(
        {
          notification: true,
          event,
          severity,
          topicArn: this.#topicArn,
          error: typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code) ? e.code : (e.name ?? 'UnknownError'),
          httpStatusCode: e.$metadata?.httpStatusCode,
          requestId: e.$metadata?.requestId,
          subject: typeof n?.subject === 'string' ? n.subject : undefined,
        },
        `notification ${event} could not be published to SNS`,
      );
    }
  }
}

/**
 * An SNS Subject built from a notification's subject: "[Kanmon] " and printable ASCII only,
 * one line, under 100 characters (Publish API reference, Subject). E-mail clients show it as
 * is, so fullwidth forms are folded to ASCII first (NFKC) and anything else becomes "?".
 */
export function snsSubject(subject: unknown): string {
  const text = (typeof subject === 'string' ? subject : '')
    .normalize('NFKC')
    .replace(/\s+/gu, ' ')
    .replace(/[^\x20-\x7e]/gu, '?')
    .trim();
  const full = SUBJECT_PREFIX + (text.length > 0 ? text : 'notification');
  return full.length <= MAX_SUBJECT_CHARS ? full : `${full.slice(0, MAX_SUBJECT_CHARS - 3).trimEnd()}...`;
}

/** The plain-text body: the message, then the facts an administrator needs to act on it. */
export function snsMessage(n: Notification, source: string, at: Date): string {
  const lines = [
    typeof n?.message === 'string' && n.message.trim().length > 0 ? n.message.trimEnd() : String(n?.subject ?? ''),
    '',
    `Event:    ${n?.event}`,
    `Severity: ${n?.severity}`,
    `Node:     ${source}`,
    `Time:     ${at.toISOString()}`,
  ];
  const details = n?.details ? Object.entries(n.details) : [];
  if (details.length > 0) {
    lines.push('', 'Details:');
    for (const [key, value] of details) lines.push(`  ${key}: ${detailText(value).replace(/\n/g, '\n    ')}`);
  }
  return truncateUtf8(lines.join('\n'), MAX_MESSAGE_BYTES);
}

function detailText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return 'undefined';
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value); // circular structures
  }
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const marker = '\n[truncated]';
  const cut = Buffer.from(text, 'utf8').subarray(0, maxBytes - Buffer.byteLength(marker));
  // A cut inside a multi-byte character decodes to U+FFFD at the end; drop it.
  return cut.toString('utf8').replace(/\uFFFD+$/u, '') + marker;
}
