/**
 * The SNS notifier against test/support/aws-endpoints.ts, a local stand-in that speaks SNS's
 * Query protocol for Publish (SNS itself cannot run here). The real @aws-sdk/client-sns does
 * the talking.
 */
import { SNSClient } from '@aws-sdk/client-sns';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/index.js';
import { createNotifier } from '../../../runtime/notify/create-notifier.js';
import { LogNotifier } from '../../../runtime/notify/log-notifier.js';
import type { Notification } from '../../../runtime/notify/notifier.js';
import { SnsNotifier, snsMessage, snsSubject, type SnsNotifierOptions } from '../../../runtime/notify/sns-notifier.js';
import { startAwsEndpoints, type AwsEndpoints } from '../../support/aws-endpoints.js';

let aws: AwsEndpoints;
beforeAll(async () => {
  aws = await startAwsEndpoints();
});
afterAll(async () => {
  await aws?.close();
});
beforeEach(() => {
  aws.sns.failure = undefined;
});

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

function notifier(extra: Partial<SnsNotifierOptions> = {}) {
  const { logger, lines } = capturingLogger();
  const n = new SnsNotifier({ topicArn: aws.sns.topicArn, endpoint: aws.url, credentials: aws.credentials, logger, source: 'node-a', ...extra });
  return { n, lines };
}

const storeFailing: Notification = {
  event: 'selfcheck.store.failing',
  severity: 'critical',
  subject: 'Store unreachable on node-a',
  message: 'The DynamoDB table could not be reached for 3 consecutive checks.',
  details: { table: 'kanmon', consecutiveFailures: 3, lastError: 'ECONNREFUSED' },
};

describe('SnsNotifier', () => {
  it('publishes subject, body and attributes to the topic', async () => {
    const { n, lines } = notifier();
    const before = aws.sns.published.length;
    await n.notify(storeFailing);
    const [published] = aws.sns.published.slice(before);
    expect(published).toMatchObject({
      topicArn: aws.sns.topicArn,
      subject: '[Kanmon] Store unreachable on node-a',
      region: aws.region, // from the topic ARN
      attributes: {
        event: { dataType: 'String', stringValue: 'selfcheck.store.failing' },
        severity: { dataType: 'String', stringValue: 'critical' },
      },
    });
    const body = published!.message;
    expect(body.startsWith('The DynamoDB table could not be reached for 3 consecutive checks.\n\n')).toBe(true);
    expect(body).toContain('Event:    selfcheck.store.failing');
    expect(body).toContain('Severity: critical');
    expect(body).toContain('Node:     node-a');
    expect(body).toMatch(/Time:     \d{4}-\d\d-\d\dT/);
    expect(body).toContain('Details:\n  table: kanmon\n  consecutiveFailures: 3\n  lastError: ECONNREFUSED');
    expect(lines.find((l) => l.msg === 'notification published to SNS')).toMatchObject({ event: 'selfcheck.store.failing', messageId: published!.messageId });
  });

  it('makes a Japanese or multi-line subject acceptable to SNS', async () => {
    const { n } = notifier();
    const before = aws.sns.published.length;
    await n.notify({ event: 'admin.created', severity: 'info', subject: '管理者が追加されました\r\nＡＢＣ', message: '新しい管理者: 山田' });
    const [published] = aws.sns.published.slice(before);
    expect(published!.subject).toBe('[Kanmon] ??????????? ABC');
    // The body is UTF-8 and keeps the Japanese text.
    expect(published!.message.startsWith('新しい管理者: 山田')).toBe(true);
  });

  it('shortens a long subject below SNS limit', async () => {
    const { n } = notifier();
    const before = aws.sns.published.length;
    await n.notify({ ...storeFailing, subject: 'x'.repeat(300) });
    const [published] = aws.sns.published.slice(before);
    expect(published!.subject!.length).toBeLessThan(100);
    expect(published!.subject!.endsWith('...')).toBe(true);
  });

  it('truncates a body over the 256 KB message limit', async () => {
    const { n } = notifier();
    const before = aws.sns.published.length;
    await n.notify({ ...storeFailing, message: 'あ'.repeat(200_000) });
    const [published] = aws.sns.published.slice(before);
    expect(Buffer.byteLength(published!.message, 'utf8')).toBeLessThanOrEqual(262_144);
    expect(published!.message.endsWith('\n[truncated]')).toBe(true);
    expect(published!.message).not.toContain('\uFFFD');
  });

  it('works with a client passed in', async () => {
    const { logger } = capturingLogger();
    const client = new SNSClient({ region: aws.region, endpoint: aws.url, credentials: aws.credentials });
    const before = aws.sns.published.length;
    await new SnsNotifier({ topicArn: aws.sns.topicArn, client, logger }).notify(storeFailing);
    expect(aws.sns.published.length).toBe(before + 1);
  });

  it('refuses a malformed topic ARN at construction', () => {
    const { logger } = capturingLogger();
    expect(() => new SnsNotifier({ topicArn: 'kanmon-alerts', logger })).toThrow(/topicArn/);
  });
});

describe('SnsNotifier failures never throw', () => {
  it('logs a refused Publish with the event name, without the SDK text', async () => {
    aws.sns.failure = { status: 403, code: 'AuthorizationError', message: 'User is not authorized SECRET-LOOKING-TEXT' };
    const { n, lines } = notifier();
    await expect(n.notify(storeFailing)).resolves.toBeUndefined();
    const logged = lines.find((l) => l.level === 50);
    expect(logged).toMatchObject({
      event: 'selfcheck.store.failing',
      severity: 'critical',
      error: 'AuthorizationErrorException', // the SDK's name for the Query error code AuthorizationError
      httpStatusCode: 403,
      msg: 'notification selfcheck.store.failing could not be published to SNS',
    });
    expect(JSON.stringify(lines)).not.toContain('SECRET-LOOKING-TEXT');
  });

  it('logs a topic that does not exist', async () => {
    const { n, lines } = notifier({ topicArn: `arn:aws:sns:${aws.region}:111122223333:no-such-topic` });
    await n.notify(storeFailing);
    expect(lines.find((l) => l.level === 50)).toMatchObject({ event: 'selfcheck.store.failing', error: 'NotFoundException', httpStatusCode: 404 });
  });

  it('logs an unreachable endpoint', async () => {
    const gone = await startAwsEndpoints();
    await gone.close();
    const { n, lines } = notifier({ endpoint: gone.url });
    await expect(n.notify(storeFailing)).resolves.toBeUndefined();
    expect(lines.find((l) => l.level === 50)).toMatchObject({ event: 'selfcheck.store.failing', error: 'ECONNREFUSED' });
  });

  it('gives up on an endpoint that never answers', async () => {
    aws.sns.failure = 'hang';
    const { n, lines } = notifier({ timeoutMs: 300 });
    await expect(n.notify(storeFailing)).resolves.toBeUndefined();
    expect(lines.find((l) => l.level === 50)).toMatchObject({ event: 'selfcheck.store.failing' });
  });

  it('survives a notification with odd details', async () => {
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    const { n, lines } = notifier();
    const before = aws.sns.published.length;
    await n.notify({ event: '', severity: 'warning', subject: '', message: '', details: { circular, big: 10n, when: new Date(0), err: new Error('boom') } });
    const [published] = aws.sns.published.slice(before);
    expect(published!.subject).toBe('[Kanmon] notification');
    expect(published!.attributes.event).toEqual({ dataType: 'String', stringValue: 'unknown' });
    expect(published!.message).toContain('  big: "10"');
    expect(published!.message).toContain('  when: 1970-01-01T00:00:00.000Z');
    expect(published!.message).toContain('  err: Error: boom');
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
  });
});

describe('snsSubject and snsMessage', () => {
  it.each([
    ['Certificate expires in 10 days', '[Kanmon] Certificate expires in 10 days'],
    ['  tabs\tand\nnewlines  ', '[Kanmon] tabs and newlines'],
    ['\u0000\u0007bell', '[Kanmon] ??bell'],
    ['', '[Kanmon] notification'],
  ])('%j becomes %j', (input, expected) => {
    expect(snsSubject(input)).toBe(expected);
  });

  it('keeps every subject printable ASCII and under 100 characters', () => {
    for (const input of ['é'.repeat(200), '😀 emoji', 'a'.repeat(99), 'b'.repeat(100)]) {
      const s = snsSubject(input);
      expect(s).toMatch(/^\[Kanmon\] [\x20-\x7e]+$/);
      expect(s.length).toBeLessThan(100);
    }
  });

  it('indents multi-line detail values', () => {
    const body = snsMessage({ event: 'e', severity: 'info', subject: 's', message: 'm', details: { stack: 'line1\nline2' } }, 'node', new Date(0));
    expect(body).toContain('  stack: line1\n    line2');
  });
});

describe('createNotifier', () => {
  it('returns the log notifier for kind "log"', () => {
    const { logger } = capturingLogger();
    expect(createNotifier(parseConfig({}).notifications, logger)).toBeInstanceOf(LogNotifier);
  });

  it('returns an SNS notifier for kind "sns" that publishes to the configured topic', async () => {
    const { logger } = capturingLogger();
    const config = parseConfig({ notifications: { kind: 'sns', topicArn: aws.sns.topicArn, region: aws.region } });
    const n = createNotifier(config.notifications, logger, { endpoint: aws.url, credentials: aws.credentials });
    expect(n).toBeInstanceOf(SnsNotifier);
    const before = aws.sns.published.length;
    await n.notify(storeFailing);
    expect(aws.sns.published.slice(before)).toHaveLength(1);
  });
});
