import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HEARTBEAT_INTERVAL_MS, MISSED_BEATS, NODE_HEARTBEAT_KIND, liveNodes, startNodeHeartbeat, writeHeartbeat } from '../../../runtime/observability/node-heartbeat.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';

describe('node heartbeats', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-heartbeat-'));
  const stores: Store[] = [];
  const open = async () => {
    const store = await openSqliteStore({ file: join(dir, `s${stores.length}.sqlite`) });
    stores.push(store);
    return store;
  };

  afterAll(async () => {
    for (const s of stores) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists each node that beat recently, with its version, and forgets one after missed beats', async () => {
    const store = await open();
    let now = 1_000_000;
    const clock = () => now;
    await writeHeartbeat({ documents: store.documents, nodeId: 'node-a', version: '1.2.3', now: clock, startedAt: now });
    await writeHeartbeat({ documents: store.documents, nodeId: 'node-b', version: '1.2.4', now: clock, startedAt: now });
    expect((await liveNodes(store.documents, now)).map((n) => [n.nodeId, n.version])).toEqual([
      ['node-a', '1.2.3'],
      ['node-b', '1.2.4'],
    ]);
    now += HEARTBEAT_INTERVAL_MS;
    await writeHeartbeat({ documents: store.documents, nodeId: 'node-a', version: '1.2.3', now: clock, startedAt: 1_000_000 });
    // node-b stopped beating: gone once MISSED_BEATS intervals passed since its last beat.
    now = 1_000_000 + HEARTBEAT_INTERVAL_MS * MISSED_BEATS;
    const live = await liveNodes(store.documents, now);
    expect(live.map((n) => n.nodeId)).toEqual(['node-a']);
    expect(live[0]!.lastBeatAt).toBe(1_000_000 + HEARTBEAT_INTERVAL_MS);
  });

  it('removes its own heartbeat when stopped, and skips bodies it did not write', async () => {
    const store = await open();
    await store.documents.put({ kind: NODE_HEARTBEAT_KIND, id: 'garbage', body: 'not json' }, { now: Date.now() });
    const stop = startNodeHeartbeat({ documents: store.documents, nodeId: 'node-c', version: '9.9.9', intervalMs: 60_000 });
    await expect.poll(async () => (await liveNodes(store.documents)).map((n) => n.nodeId)).toEqual(['node-c']);
    await stop();
    expect(await liveNodes(store.documents)).toEqual([]);
  });
});
