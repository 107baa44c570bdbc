import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createServer, type Server } from 'node:http';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { freePort } from '../../support/ports.js';
import type { Notification, Notifier } from '../../../runtime/notify/notifier.js';

const harnesses: KanmonHarness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

async function healthGet(port: number, path: string) {
  const res = await request(`http://127.0.0.1:${port}${path}`);
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

describe('health listener', () => {
  it('answers /healthz and /readyz on the internal port, never on the public one', async () => {
    const h = await KanmonHarness.start({ server: { healthPort: 0 } });
    harnesses.push(h);
    expect(h.app.healthPort).toBeUndefined(); // 0 means off
    const g = await KanmonHarness.start({ server: { healthPort: await freePort() } });
    harnesses.push(g);
    expect(await healthGet(g.app.healthPort!, '/healthz')).toMatchObject({ status: 200, body: { status: 'alive' } });
    const ready = await healthGet(g.app.healthPort!, '/readyz');
    expect(ready).toMatchObject({ status: 200, body: { ready: true, checks: { store: 'ok', certificate: 'loaded', routes: '1', draining: 'no' } } });
    expect((await g.get('/healthz', { headers: { accept: 'text/html' } })).status).toBe(302); // the public port has no health endpoint: it is a backend path
    expect((await g.get('/.kanmon/healthz')).status).toBe(404);
  });

  it('accepts the PROXY v2 header the load balancer puts on health checks, and plain requests alike', async () => {
    const { buildProxyV2Header } = await import('../../../runtime/net/index.js');
    const { connect } = await import('node:net');
    // PROXY protocol on, with the test's own address as the load balancer's network.
    const g = await KanmonHarness.start({ server: { healthPort: await freePort(), proxyProtocol: { enabled: true, allowedNetworks: ['127.0.0.0/8'] } } });
    harnesses.push(g);
    const ask = (prefix: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: g.app.healthPort! }, () => {
          s.write(Buffer.concat([prefix, Buffer.from('GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]));
        });
        let text = '';
        s.on('data', (d) => (text += d.toString()));
        s.on('end', () => resolve(text));
        s.on('error', reject);
      });
    expect(await ask(buildProxyV2Header({ command: 'LOCAL' }))).toMatch(/^HTTP\/1\.1 200/);
    expect(await ask(buildProxyV2Header({ source: { address: '10.0.1.9', port: 1 }, destination: { address: '10.0.2.3', port: 8081 } }))).toMatch(/^HTTP\/1\.1 200/);
    expect(await ask(Buffer.alloc(0))).toMatch(/^HTTP\/1\.1 200/);
  });

  it('does not believe a PROXY header on the health port from outside the load balancer networks', async () => {
    const { buildProxyV2Header } = await import('../../../runtime/net/index.js');
    const { connect } = await import('node:net');
    const g = await KanmonHarness.start({ server: { healthPort: await freePort(), proxyProtocol: { enabled: true, allowedNetworks: ['10.0.0.0/8'] } } });
    harnesses.push(g);
    const ask = (prefix: Buffer) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: g.app.healthPort! }, () => {
          s.write(Buffer.concat([prefix, Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]));
        });
        let text = '';
        s.on('data', (d) => (text += d.toString()));
        s.on('close', () => resolve(text));
        s.on('error', () => resolve(text));
      });
    // A local health check without a header is answered; a header from 127.0.0.1 is refused.
    expect(await ask(Buffer.alloc(0))).toMatch(/^HTTP\/1\.1 200/);
    expect(await ask(buildProxyV2Header({ command: 'LOCAL' }))).toBe('');
  });

  it('is not ready when the store is unreachable', async () => {
    const g = await KanmonHarness.start({ server: { healthPort: await freePort() } });
    harnesses.push(g);
    await g.app.store.close();
    const ready = await healthGet(g.app.healthPort!, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.store).toMatch(/^failing/);
  });
});

describe('shutdown', () => {
  it('lets an in-flight request finish within the grace period while refusing new connections', async () => {
    // A slow upstream: answers after 600 ms.
    const slow = createServer((_req, res) => setTimeout(() => res.end('slow answer'), 600));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const upstream = `http://127.0.0.1:${(slow.address() as { port: number }).port}`;
    const g = await KanmonHarness.start({ server: { healthPort: await freePort() }, routes: [{ id: 'slow', upstream }] });
    const user = await g.app.services.users.addUser({ username: 'u' });
    const cookie = await g.sessionCookie(user);
    const inflight = g.get('/', { cookie });
    await new Promise((r) => setTimeout(r, 150));
    const closing = g.app.close({ graceMs: 5000 });
    const answer = await inflight;
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('slow answer');
    await closing;
    await expect(g.get('/', { cookie })).rejects.toThrow();
    await g.close();
    await new Promise((r) => (slow as Server).close(r));
  });

  it('cuts what is still in flight when the grace period ends', async () => {
    const hang = createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const upstream = `http://127.0.0.1:${(hang.address() as { port: number }).port}`;
    const g = await KanmonHarness.start({ routes: [{ id: 'hang', upstream }] });
    const cookie = await g.sessionCookie(await g.app.services.users.addUser({ username: 'u' }));
    const inflight = g.get('/', { cookie }).then(
      () => 'answered',
      () => 'cut',
    );
    await new Promise((r) => setTimeout(r, 150));
    await g.app.close({ graceMs: 200 });
    expect(await inflight).toBe('cut');
    await g.close();
    hang.closeAllConnections();
    await new Promise((r) => hang.close(r));
  });
});

describe('notifications', () => {
  it('tells administrators when a new administrator is created', async () => {
    const sent: Notification[] = [];
    const notifier: Notifier = { notify: async (n) => void sent.push(n) };
    const { startKanmon } = await import('../../../runtime/app.js');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const app = await startKanmon({ dataDir: mkdtempSync(join(tmpdir(), 'kanmon-n-')), server: { port: 0, host: '127.0.0.1' }, log: { level: 'silent' } }, { notifier, logger: pino({ level: 'silent' }) });
    try {
      await app.services.users.addUser({ username: 'boss', isAdmin: true });
      await app.services.users.addUser({ username: 'staff' });
      expect(sent.filter((n) => n.event === 'admin.created').map((n) => n.details?.username)).toEqual(['boss']);
    } finally {
      await app.close();
    }
  });
});

describe('plain HTTP listener', () => {
  it('redirects to the https origin', async () => {
    const g = await KanmonHarness.start({ server: { httpPort: await freePort() } });
    harnesses.push(g);
    const res = await request(`http://127.0.0.1:${g.app.httpPort}/mail?x=1`);
    expect(res.statusCode).toBe(301);
    expect(res.headers.location).toBe(`${g.origin}/mail?x=1`);
    await res.body.dump();
    const evil = await request(`http://127.0.0.1:${g.app.httpPort}//evil.example/`);
    expect(evil.headers.location).toBe(`${g.origin}/`);
    await evil.body.dump();
  });
});
