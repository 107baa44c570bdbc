import { createServer } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Notification, Notifier } from '../../../runtime/notify/notifier.js';
import { Metrics } from '../../../runtime/observability/metrics.js';
import { SelfCheck, certificateCheck, upstreamCheck, type CheckState } from '../../../runtime/observability/self-check.js';

class RecordingNotifier implements Notifier {
  readonly sent: Notification[] = [];
  async notify(n: Notification) {
    this.sent.push(n);
  }
}

function setup(targets: ConstructorParameters<typeof SelfCheck>[0]['targets']) {
  const notifier = new RecordingNotifier();
  const metrics = new Metrics({ namespace: 'K', emit: false });
  const check = new SelfCheck({ targets, logger: pino({ level: 'silent' }), metrics, notifier });
  return { notifier, metrics, check };
}

describe('self-check', () => {
  it('notifies on a change of state only, and counts failures', async () => {
    let state: CheckState = 'ok';
    const { notifier, metrics, check } = setup([{ name: 'store', run: async () => ({ state, detail: state }) }]);
    await check.runOnce();
    expect(notifier.sent).toEqual([]); // healthy from the start is not news
    state = 'failing';
    await check.runOnce();
    await check.runOnce();
    expect(notifier.sent.map((n) => n.event)).toEqual(['selfcheck.store.failing']);
    expect(notifier.sent[0]!.severity).toBe('critical');
    expect(metrics.read('selfCheckFailures', { Check: 'store' })).toBe(2);
    state = 'ok';
    await check.runOnce();
    expect(notifier.sent.map((n) => n.event)).toEqual(['selfcheck.store.failing', 'selfcheck.store.ok']);
  });

  it('treats a throwing check as failing', async () => {
    const { check } = setup([{ name: 'x', run: async () => Promise.reject(new Error('boom')) }]);
    await check.runOnce();
    expect(check.snapshot()[0]).toMatchObject({ name: 'x', state: 'failing', detail: 'boom' });
  });

  it('reports an upstream reachable or not by opening a real connection', async () => {
    const server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    expect(await upstreamCheck('up', `http://127.0.0.1:${port}`).run()).toEqual({ state: 'ok', detail: 'reachable' });
    await new Promise((r) => server.close(r));
    expect((await upstreamCheck('up', `http://127.0.0.1:${port}`).run()).state).toBe('failing');
  });

  it('fails the certificate check under 14 days and publishes days to expiry', async () => {
    const metrics = new Metrics({ namespace: 'K', emit: false });
    const now = Date.UTC(2030, 0, 1);
    expect((await certificateCheck(() => new Date(now + 20 * 86_400_000), metrics, () => now).run()).state).toBe('ok');
    expect(metrics.read('serverCertificateDaysToExpiry', {})).toBe(20);
    expect((await certificateCheck(() => new Date(now + 13 * 86_400_000), metrics, () => now).run()).state).toBe('failing');
    expect((await certificateCheck(() => undefined, metrics, () => now).run()).state).toBe('failing');
  });
});
