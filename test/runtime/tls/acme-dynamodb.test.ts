/**
 * The pair as on AWS: two nodes on one DynamoDB Local table and one pebble. Starting together
 * and racing to renew, they place exactly one order each time; the node that did not order
 * answers the validation (pebble reaches only node A) and serves the new certificate.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KanmonApp } from '../../../runtime/app.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { GATEWAY, eventually, handshake, startAcmeNode } from './acme-support.js';
import { freePort, startPebble, type Pebble } from './pebble.js';

let ddb: DynamoDbLocal;
let pebble: Pebble;
let root: string;
let a: KanmonApp;
let b: KanmonApp;
const dirs: string[] = [];

const servedSerial = async (app: KanmonApp) => (await handshake(app.port, GATEWAY, root)).cert.serialNumber.toLowerCase();

beforeAll(async () => {
  ddb = await startDynamoDbLocal();
  const table = await freshTable(ddb.endpoint, 'kanmon-acme');
  const [portA, httpA, portB, httpB] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  pebble = await startPebble({ httpPort: httpA, tlsPort: portA });
  root = await pebble.issuingRoot();
  // Each node its own data directory; the local secret box's key is the pair's shared secret here (KMS on AWS).
  const shared = mkdtempSync(join(tmpdir(), 'kanmon-acme-ddb-'));
  dirs.push(shared);
  const extra = { store: { kind: 'dynamodb' as const, table, endpoint: ddb.endpoint } };
  [a, b] = await Promise.all([
    startAcmeNode({ pebble, dataDir: shared, port: portA, httpPort: httpA, extra }),
    startAcmeNode({ pebble, dataDir: shared, port: portB, httpPort: httpB, extra }),
  ]);
  await Promise.all([a.serverCertificate!.whenLoaded(), b.serverCertificate!.whenLoaded()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await pebble?.stop();
  await ddb?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('two nodes on DynamoDB', () => {
  it('starting together, place exactly one order and serve the same certificate', async () => {
    expect(pebble.ordersPlaced()).toBe(1);
    const serial = (await a.services.serverCertificates.status()).certificate!.serial;
    expect(await servedSerial(a)).toBe(serial);
    expect(await servedSerial(b)).toBe(serial);
  });

  it('racing to renew, place exactly one order, and both serve the result', async () => {
    const before = pebble.ordersPlaced();
    const old = await servedSerial(a);
    const outcomes = await Promise.all([a.serverCertificate!.renewNow({ force: true }), b.serverCertificate!.renewNow({ force: true })]);
    expect(outcomes.map((o) => o!.action).sort()).toEqual(['busy', 'renewed']);
    expect(pebble.ordersPlaced()).toBe(before + 1);
    const serial = (await a.services.serverCertificates.status()).certificate!.serial;
    expect(serial).not.toBe(old);
    await eventually(() => servedSerial(a), (s) => s === serial, 'node A serving the new certificate');
    await eventually(() => servedSerial(b), (s) => s === serial, 'node B serving the new certificate');
  });

  it('node B orders, node A answers and serves', async () => {
    const old = await servedSerial(a);
    expect((await b.serverCertificate!.renewNow({ force: true }))!.action).toBe('renewed');
    expect((await a.services.serverCertificates.status()).renewal.lastOrderBy).toBe(b.serverCertificate!.orderHolder);
    await eventually(() => servedSerial(a), (s) => s !== old, 'node A serving the certificate node B obtained');
  });
});
