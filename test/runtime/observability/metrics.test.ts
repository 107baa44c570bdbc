import { describe, expect, it } from 'vitest';
import { Metrics, requestCounter, statusClass } from '../../../runtime/observability/metrics.js';
import { METRICS } from '../../../runtime/observability/metric-names.js';
import { KANMON_METRICS } from '../../../lib/metrics.js';

function collect() {
  const lines: any[] = [];
  const m = new Metrics({ namespace: 'KanmonTest', emit: true, write: (l) => lines.push(JSON.parse(l)), now: () => 1_800_000_000_000 });
  return { m, lines };
}

describe('EMF metrics', () => {
  it('aggregates counts per dimension set and writes one EMF record each', () => {
    const { m, lines } = collect();
    m.count('requests', { Route: 'demo', StatusClass: '2xx' });
    m.count('requests', { Route: 'demo', StatusClass: '2xx' });
    m.count('requests', { Route: 'demo', StatusClass: '5xx' });
    m.flush();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({
      _aws: { Timestamp: 1_800_000_000_000, CloudWatchMetrics: [{ Namespace: 'KanmonTest', Dimensions: [['Route', 'StatusClass']], Metrics: [{ Name: 'Requests', Unit: 'Count' }] }] },
      Route: 'demo',
      StatusClass: '2xx',
      Requests: 2,
    });
    m.flush();
    expect(lines).toHaveLength(2); // counters reset: nothing new to say
  });

  it('writes timings as a bounded array of values', () => {
    const { m, lines } = collect();
    for (let i = 0; i < 1000; i++) m.timing('upstreamLatency', { Route: 'demo' }, i);
    m.flush();
    expect(lines[0].UpstreamLatency).toHaveLength(100);
    expect(lines[0]._aws.CloudWatchMetrics[0].Metrics[0].Unit).toBe('Milliseconds');
  });

  it('keeps gauges without dimensions as the last value', () => {
    const { m, lines } = collect();
    m.gauge('serverCertificateDaysToExpiry', {}, 80);
    m.gauge('serverCertificateDaysToExpiry', {}, 79);
    m.flush();
    expect(lines[0]).toMatchObject({ ServerCertificateDaysToExpiry: 79, _aws: { CloudWatchMetrics: [{ Dimensions: [[]] }] } });
  });

  it('prints nothing when EMF is off, but still counts', () => {
    const lines: string[] = [];
    const m = new Metrics({ namespace: 'K', emit: false, write: (l) => lines.push(l) });
    m.count('loginFailure', { Method: 'passkey' });
    expect(m.read('loginFailure', { Method: 'passkey' })).toBe(1);
    m.flush();
    expect(lines).toEqual([]);
  });

  it('maps statuses to classes', () => {
    expect([101, 200, 302, 404, 503].map(statusClass)).toEqual(['1xx', '2xx', '3xx', '4xx', '5xx']);
  });

  it('emits exactly the names, dimensions and units the stack alarms on', () => {
    for (const def of Object.values(KANMON_METRICS)) {
      const mine = Object.values(METRICS).find((m) => m.name === def.name);
      expect(mine, def.name).toBeDefined();
      expect([...mine!.dimensions]).toEqual([...def.dimensions]);
      expect(mine!.unit).toBe(def.unit);
    }
  });
});

describe('metrics from a running node', () => {
  it('counts requests, upstream 5xx, upstream latency and logins per route and method', async () => {
    const { createServer } = await import('node:http');
    const { KanmonHarness } = await import('../../support/kanmon-harness.js');
    const up = createServer((req, res) => {
      res.writeHead(req.url === '/broken' ? 502 : 200);
      res.end('x');
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const h = await KanmonHarness.start({ routes: [{ id: 'app', upstream: `http://127.0.0.1:${(up.address() as { port: number }).port}` }] });
    try {
      const cookie = await h.sessionCookie(await h.app.services.users.addUser({ username: 'm' }));
      await h.get('/ok', { cookie });
      await h.get('/broken', { cookie });
      await h.post('/.kanmon/api/login/verify', { response: {} });
      const m = h.app.metrics;
      expect(m.read('requests', { Route: 'app', StatusClass: '2xx' })).toBe(1);
      expect(m.read('requests', { Route: 'app', StatusClass: '5xx' })).toBe(1);
      expect(m.read('upstream5xx', { Route: 'app' })).toBe(1);
      expect(m.read('loginFailure', { Method: 'passkey' })).toBeGreaterThanOrEqual(1);
      expect(m.samples('upstreamLatency', { Route: 'app' })).toHaveLength(2);
    } finally {
      await h.close();
      await new Promise((r) => up.close(r));
    }
  });
});

describe('bound counters for the request path', () => {
  it('count into the same series as count(), across flushes', () => {
    const lines: string[] = [];
    const m = new Metrics({ namespace: 'Kanmon', emit: true, write: (l) => lines.push(l) });
    const add = m.counter('upstream5xx', { Route: 'wiki' });
    add();
    m.count('upstream5xx', { Route: 'wiki' });
    expect(m.read('upstream5xx', { Route: 'wiki' })).toBe(2);
    m.flush();
    add(3);
    expect(m.read('upstream5xx', { Route: 'wiki' })).toBe(3);
    const record = m.sampler('upstreamLatency', { Route: 'wiki' });
    record(12.5);
    expect(m.samples('upstreamLatency', { Route: 'wiki' })).toEqual([12.5]);
  });

  it('requestCounter counts responses by route and status class, like statusClass', () => {
    const m = new Metrics({ namespace: 'Kanmon', emit: false });
    const onResponse = requestCounter(m);
    for (const status of [200, 204, 302, 404, 503, 101, 99, 700]) onResponse('wiki', status);
    onResponse('mail', 200);
    expect(m.read('requests', { Route: 'wiki', StatusClass: '2xx' })).toBe(2);
    expect(m.read('requests', { Route: 'wiki', StatusClass: '3xx' })).toBe(1);
    expect(m.read('requests', { Route: 'wiki', StatusClass: '4xx' })).toBe(1);
    expect(m.read('requests', { Route: 'wiki', StatusClass: '5xx' })).toBe(2);
    expect(m.read('requests', { Route: 'wiki', StatusClass: '1xx' })).toBe(2);
    expect(m.read('requests', { Route: 'mail', StatusClass: '2xx' })).toBe(1);
  });
});
