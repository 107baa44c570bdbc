/**
 * The cluster's IPC messages: each side recognises only its own kinds, and the self-check
 * results a worker shows keep only well-formed entries (the dashboard renders every field).
 */
import { describe, expect, it } from 'vitest';
import { checkResultsOf, isPrimaryMessage, isWorkerMessage } from '../../../runtime/cluster/messages.js';

const GOOD = { name: 'store', state: 'ok', detail: 'round trip 1 ms', checkedAt: 1_700_000_000_000 };

describe('cluster messages', () => {
  it('tells the primary’s kinds from the workers’ and from anything else on the channel', () => {
    for (const kind of ['start', 'health', 'drain']) expect(isPrimaryMessage({ kanmon: kind }), kind).toBe(true);
    for (const kind of ['awaiting-start', 'listening', 'failed', 'sessions']) {
      expect(isWorkerMessage({ kanmon: kind }), kind).toBe(true);
      expect(isPrimaryMessage({ kanmon: kind }), kind).toBe(false);
    }
    for (const other of [null, undefined, 'health', 42, [], {}, { kanmon: 'HEALTH' }, { cmd: 'NODE_CLUSTER' }]) {
      expect(isPrimaryMessage(other)).toBe(false);
      expect(isWorkerMessage(other)).toBe(false);
    }
  });

  it('keeps the well-formed self-check results and drops the rest', () => {
    const hostile = [
      GOOD,
      { ...GOOD, name: 'certificate', state: 'failing' },
      { ...GOOD, state: 'broken' },
      { ...GOOD, name: 7 },
      { ...GOOD, detail: { toString: 'x' } },
      { ...GOOD, checkedAt: '2024-01-01' },
      null,
      'store',
      [GOOD],
    ];
    expect(checkResultsOf(hostile)).toEqual([GOOD, { ...GOOD, name: 'certificate', state: 'failing' }]);
    for (const notAList of [undefined, null, GOOD, 'x', 5]) expect(checkResultsOf(notAList)).toEqual([]);
  });
});
