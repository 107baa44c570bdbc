import { pino, type Logger } from 'pino';
import { StoreError } from '../store/errors.js';

/**
 * For the node process (runtime/main.ts, primary and workers alike): a promise nobody awaited
 * failed. A store outage must not take the node down: such a failure is logged and the node
 * carries on (StoreHealth reports the outage itself). Anything else ends the process as Node
 * would by default, but logged as JSON first, since the node's state is then unknown.
 */
export function guardUnhandledRejections(logger: Logger = pino({ base: { service: 'kanmon' } })): void {
  process.on('unhandledRejection', (reason) => {
    if (isStoreFailure(reason)) {
      logger.warn({ err: reason }, 'a background store call failed; carrying on');
      return;
    }
    logger.fatal({ err: reason }, 'unhandled rejection');
    process.exit(1);
  });
}

export function isStoreFailure(reason: unknown): boolean {
  return reason instanceof StoreError;
}
