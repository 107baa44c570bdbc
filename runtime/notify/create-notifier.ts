import type { Logger } from 'pino';
import type { KanmonConfig } from '../config/schema.js';
import { LogNotifier } from './log-notifier.js';
import type { Notifier } from './notifier.js';
import { SnsNotifier, type SnsNotifierOptions } from './sns-notifier.js';

/** Overrides for the SNS client that the configuration does not carry (tests, VPC endpoints). */
export type SnsClientOverrides = Pick<SnsNotifierOptions, 'endpoint' | 'credentials' | 'client' | 'source' | 'timeoutMs'>;

/** The notifier the configuration asks for: log lines locally, an SNS topic on AWS. */
export function createNotifier(config: KanmonConfig['notifications'], logger: Logger, overrides: SnsClientOverrides = {}): Notifier {
  switch (config.kind) {
    case 'log':
      return new LogNotifier(logger);
    case 'sns':
      return new SnsNotifier({ topicArn: config.topicArn, ...(config.region ? { region: config.region } : {}), ...overrides, logger });
  }
}
