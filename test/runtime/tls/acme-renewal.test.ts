/**
 * Two Kanmon nodes on one store and one pebble: one order at a time under the store lease,
 * the node that did not order answering the validation and serving the new certificate,
 * renewal from 30 days before expiry, a swap that keeps open connections, and a refused order
 * that leaves the old certificate in service, backs off and is reported.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KanmonApp } from '../../../runtime/app.js';
import { runCommand } from '../../../runtime/cli/commands.js';
import { openSecretBox } from '../../../runtime/secrets/index.js';
import { ServerCertificateDocuments } from '../../../runtime/tls/server-certificate-documents.js';
import { RENEWAL_BACKOFF_FIRST_MS, ServerCertificateService } from '../../../runtime/tls/server-certificate-service.js';
import { CollectedNotifications, GATEWAY, eventually, handshake, startAcmeNode } from './acme-support.js';
import { freePort, startPebble, type Pebble } from './pebble.js';

const DAY = 86_400_000;
let pebble: Pebble;
let root: string;
let dataDir: string;
let a: KanmonApp;
let b: KanmonApp;
const portsA = { port: 0, httpPort: 0 };
const portsB = { port: 0, httpPort: 0 };
const notesB = new CollectedNotifications();

const servedSerial = async (app: KanmonApp) => (await handshake(app.port, GATEWAY, root)).cert.serialNumber.toLowerCase();
const storedSerial = async () => (await a.services.serverCertificates.status()).certificate!.serial;

/** A node without a listener whose clock reads `clock.now` (like `kanmon cert server renew` on a machine). */
async function serviceAt(clock: { now: number }, opts: { extraDomain?: string } = {}) {
  const notifier = new CollectedNotifications();
  const secrets = await openSecretBox(a.config);
  const tls = a.config.tls.source === 'acme' && opts.extraDomain ? { ...a.config.tls, domains: [...a.config.tls.domains, opts.extraDomain] } : a.config.tls;
  const service = new ServerCertificateService({
    tls,
    documents: a.store.documents,
    certificates: new ServerCertificateDocuments(a.store.documents, secrets),
    audit: (input) => a.services.audit.record(input),
    logger: pino({ level: 'silent' }),
    notifier,
    now: () => clock.now,
    acmePoll: { minMs: 100, maxMs: 500 },
  });
  return { service, notifier };
}

beforeAll(async () => {
  [portsA.port, portsA.httpPort, portsB.port, portsB.httpPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // Pebble validates on node A's ports only; node B is never reached by it.
  pebble = await startPebble({ httpPort: portsA.httpPort, tlsPort: portsA.port });
  root = await pebble.issuingRoot();
  // One store (the SQLite file and secret key of one data directory) shared by both nodes.
  dataDir = mkdtempSync(join(tmpdir(), 'kanmon-acme-pair-'));
  [a, b] = await Promise.all([
    startAcmeNode({ pebble, dataDir, ...portsA, challenge: 'http-01' }),
    startAcmeNode({ pebble, dataDir, ...portsB, challenge: 'http-01', notifier: notesB }),
  ]);
  await Promise.all([a.serverCertificate!.whenLoaded(), b.serverCertificate!.whenLoaded()]);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await pebble?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('two nodes on one store', () => {
  it('starting together, place exactly one order and serve the same certificate', async () => {
    expect(pebble.ordersPlaced()).toBe(1);
    expect(pebble.certificatesIssued()).toBe(1);
    const serial = await storedSerial();
    expect(await servedSerial(a)).toBe(serial);
    expect(await servedSerial(b)).toBe(serial);
  });

  it('racing to renew at the same moment, place exactly one order; the other is told the lease is busy', async () => {
    const before = pebble.ordersPlaced();
    const outcomes = await Promise.all([a.serverCertificate!.renewNow({ force: true }), b.serverCertificate!.renewNow({ force: true })]);
    expect(outcomes.map((o) => o!.action).sort()).toEqual(['busy', 'renewed']);
    expect(pebble.ordersPlaced()).toBe(before + 1);
    const serial = await storedSerial();
    await eventually(() => servedSerial(a), (s) => s === serial, 'node A serving the new certificate');
    await eventually(() => servedSerial(b), (s) => s === serial, 'node B serving the new certificate');
  });

  it('a node that did not order answers the validation from the store and serves the result without a restart', async () => {
    const old = await servedSerial(a);
    const outcome = await b.serverCertificate!.renewNow({ force: true });
    expect(outcome!.action).toBe('renewed');
    const status = await a.services.serverCertificates.status();
    // Node B ordered; pebble only ever reaches node A, which answered from the store.
    expect(status.renewal.lastOrderBy).toBe(b.serverCertificate!.orderHolder);
    expect(status.renewal.lastOrderBy).not.toBe(a.serverCertificate!.orderHolder);
    expect(pebble.log()).toContain(`${GATEWAY}:${portsA.httpPort}/.well-known/acme-challenge/`);
    expect(pebble.log()).not.toContain(`:${portsB.httpPort}/`);
    const serial = await eventually(() => servedSerial(a), (s) => s !== old, 'node A serving the certificate node B obtained');
    expect(serial).toBe(await storedSerial());
  });
});

describe('renewal window', () => {
  it('does not order more than 30 days before expiry, and orders inside the window', async () => {
    const current = (await a.services.serverCertificates.status()).certificate!;
    const clock = { now: current.notAfter - 31 * DAY };
    const { service } = await serviceAt(clock);
    const before = pebble.ordersPlaced();
    expect((await service.renewIfDue()).action).toBe('not-due');
    expect(pebble.ordersPlaced()).toBe(before);
    clock.now = current.notAfter - 29 * DAY;
    const outcome = await service.renewIfDue();
    expect(outcome.action).toBe('renewed');
    expect(pebble.ordersPlaced()).toBe(before + 1);
    // The renewed certificate reaches both running nodes.
    const serial = await storedSerial();
    expect(serial).not.toBe(current.serial);
    await eventually(() => servedSerial(a), (s) => s === serial, 'node A serving the renewed certificate');
    await eventually(() => servedSerial(b), (s) => s === serial, 'node B serving the renewed certificate');
  });
});

describe('hot reload', () => {
  it('keeps an open connection through a certificate swap, and new connections get the new certificate', async () => {
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: root, servername: GATEWAY });
    const get = () =>
      new Promise<{ status: number; reused: boolean; serial: string }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port: a.port, path: '/.kanmon/login', agent, headers: { host: GATEWAY } }, (res) => {
          const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber.toLowerCase();
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket, serial }));
        });
        req.once('error', reject);
        req.end();
      });
    try {
      const first = await get();
      expect(first.status).toBeLessThan(500);
      const outcome = await b.serverCertificate!.renewNow({ force: true });
      expect(outcome!.action).toBe('renewed');
      const serial = await storedSerial();
      await eventually(() => servedSerial(a), (s) => s === serial, 'node A serving the new certificate');
      const second = await get();
      expect(second.reused).toBe(true);
      expect(second.status).toBe(first.status);
      // The open connection keeps the session it was opened with.
      expect(second.serial).toBe(first.serial);
      expect(second.serial).not.toBe(serial);
    } finally {
      agent.destroy();
    }
  });
});

describe('a refused order', () => {
  it('keeps the old certificate in service, backs off without retrying, counts, notifies and shows the error', async () => {
    const inService = await servedSerial(a);
    const before = pebble.ordersPlaced();
    await pebble.breakDns();
    try {
      const outcome = await b.serverCertificate!.renewNow({ force: true });
      expect(outcome!.action).toBe('failed');
      expect(pebble.ordersPlaced()).toBe(before + 1);
      // Both nodes still serve the certificate they had.
      expect(await servedSerial(a)).toBe(inService);
      expect(await servedSerial(b)).toBe(inService);
      expect(b.metrics.read('serverCertificateRenewalFailures', {})).toBe(1);
      const failed = notesB.sent.filter((n) => n.event === 'tls.renewal.failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]!.severity).toBe('warning');
      expect(failed[0]!.message).toContain('The certificate in service stays');

      const status = await a.services.serverCertificates.status();
      expect(status.renewal.consecutiveFailures).toBe(1);
      expect(status.renewal.lastError).toBeTruthy();
      expect(status.renewal.nextAttemptAt! - status.renewal.lastAttemptAt!).toBeGreaterThanOrEqual(RENEWAL_BACKOFF_FIRST_MS - 60_000);

      // A renewal that is due (here: a name was added to the config) still waits for the shared
      // back-off on every node: no retry storm. After it, the next attempt goes ahead.
      const clock = { now: status.renewal.nextAttemptAt! - 1000 };
      const { service, notifier } = await serviceAt(clock, { extraDomain: 'new.kanmon.test' });
      const waiting = await service.renewIfDue();
      expect(waiting).toEqual({ action: 'backing-off', nextAttemptAt: status.renewal.nextAttemptAt });
      expect(pebble.ordersPlaced()).toBe(before + 1);
      clock.now = status.renewal.nextAttemptAt! + 1000;
      const retried = await service.renewIfDue();
      expect(retried.action).toBe('failed');
      expect(pebble.ordersPlaced()).toBe(before + 2);
      const again = await a.services.serverCertificates.status();
      expect(again.renewal.consecutiveFailures).toBe(2);
      expect(again.renewal.nextAttemptAt! - clock.now).toBe(2 * RENEWAL_BACKOFF_FIRST_MS);
      // Reminded at most daily: the second failure of the streak sends nothing new.
      expect(notifier.sent).toEqual([]);

      // `kanmon cert server status` shows the failure.
      const lines: string[] = [];
      expect(await runCommand(['cert', 'server', 'status'], a.services, a.config, { out: (l) => lines.push(l) })).toBe(0);
      const text = lines.join('\n');
      expect(text).toContain('source:            acme');
      expect(text).toContain(`names:             `);
      expect(text).toMatch(/last error:\s+.+\(2 failures in a row\)/);
      expect(text).toMatch(/next attempt:\s+not before \d{4}-/);
    } finally {
      await pebble.restoreDns();
    }
  });

  it('recovers with the next order, and says so', async () => {
    const lines: string[] = [];
    const code = await runCommand(['cert', 'server', 'renew'], b.services, b.config, { out: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/^renewed: /);
    expect(code).toBe(0);
    const status = await a.services.serverCertificates.status();
    expect(status.renewal.consecutiveFailures).toBe(0);
    expect(status.renewal.lastError).toBeUndefined();
    const serial = status.certificate!.serial;
    await eventually(() => servedSerial(a), (s) => s === serial, 'node A serving the recovered certificate');
  });
});
