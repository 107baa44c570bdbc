/**
 * Expiry warnings: once per certificate and threshold, to administrators through the notifier
 * and to the user by mail, even with several nodes on one store running the job at once.
 * Real parts: SQLite files and DynamoDB Local shared by two store handles, the log notifier,
 * the SMTP transport and a real SMTP receiver.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateExpiryWarnings } from '../../../runtime/ca/expiry-warnings.js';
import { parseConfig } from '../../../runtime/config/schema.js';
import { LogNotifier } from '../../../runtime/notify/log-notifier.js';
import { SmtpMailer } from '../../../runtime/notify/smtp-mailer.js';
import { Metrics } from '../../../runtime/observability/metrics.js';
import { ContactAddressService } from '../../../runtime/services/contact-addresses.js';
import { openDynamoStore } from '../../../runtime/store/dynamodb/index.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';
import { ensureDevCertificates } from '../../../runtime/tls/dev-ca.js';
import { freshTable, startDynamoDbLocal, type DynamoDbLocal } from '../../support/dynamodb-local.js';
import { mailHeader, mailText, SmtpReceiver } from '../notify/smtp-receiver.js';
import { CaWorld, type CaNode } from './support.js';

const DAY = 86_400_000;

/** What the log notifier wrote: one entry per administrators' notification. */
class NotificationLog {
  readonly entries: Array<{ event: string; details: { serials: string[] }; body: string }> = [];
  readonly logger = pino(
    { level: 'info' },
    new Writable({
      write: (chunk, _enc, done) => {
        for (const line of String(chunk).split('\n').filter(Boolean)) {
          const parsed = JSON.parse(line) as { notification?: boolean; event: string; details: { serials: string[] }; body: string };
          if (parsed.notification) this.entries.push(parsed);
        }
        done();
      },
    }),
  );
  serials(): string[] {
    return this.entries.filter((e) => e.event === 'cert.expiring').flatMap((e) => e.details.serials);
  }
}

interface Cluster {
  readonly world: CaWorld;
  readonly stores: Store[];
  readonly nodes: CaNode[];
  readonly jobs: CertificateExpiryWarnings[];
  readonly notifications: NotificationLog;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

async function cluster(stores: Store[], relayPort: number, caFile: string): Promise<Cluster> {
  const world = await CaWorld.create({ clientCertificates: { lifetimeDays: 60, renewBeforeDays: 30 } });
  const notifications = new NotificationLog();
  const metrics = new Metrics({ namespace: 'Test', emit: false });
  const mailConfig = parseConfig({ notifications: { mail: { host: '127.0.0.1', port: relayPort, from: 'kanmon@example.test', caFile } } }).notifications.mail!;
  const nodes = stores.map((store) => world.node(store));
  const jobs = nodes.map(
    (node, i) =>
      new CertificateExpiryWarnings({
        certificates: node.certificates,
        users: node.users,
        contacts: new ContactAddressService({ documents: stores[i]!.documents, audit: node.audit, now: world.now }),
        documents: stores[i]!.documents,
        notifier: new LogNotifier(notifications.logger),
        mailer: new SmtpMailer({ config: mailConfig, logger: pino({ level: 'silent' }) }),
        audit: node.audit,
        thresholdsDays: world.config.notifications.certificateExpiryDays,
        renewBeforeDays: world.config.clientCertificates.renewBeforeDays,
        onExpiringCount: (n) => metrics.gauge('clientCertificatesExpiring', {}, n),
        organisation: 'Example Corp',
        holder: `node-${i}`,
        logger: pino({ level: 'silent' }),
        now: world.now,
      }),
  );
  return {
    world,
    stores,
    nodes,
    jobs,
    notifications,
    metrics,
    async close() {
      for (const s of stores) await s.close().catch(() => undefined);
      await world.close();
    },
  };
}

/** Every job of every node at once, a few rounds, as the hourly timers of a pair might collide. */
async function race(jobs: CertificateExpiryWarnings[], rounds = 3): Promise<number> {
  let ran = 0;
  for (let r = 0; r < rounds; r++) {
    const results = await Promise.all(jobs.flatMap((job) => [job.runOnce(), job.runOnce()]));
    ran += results.filter((x) => x.ran).length;
  }
  return ran;
}

function describeExpiry(name: string, openPair: () => Promise<Store[]>) {
  describe(`certificate expiry warnings (${name})`, () => {
    let relay: SmtpReceiver;
    let caFile: string;
    let c: Cluster;

    beforeAll(async () => {
      const tlsWorld = await CaWorld.create();
      const dev = await ensureDevCertificates(join(tlsWorld.dir, 'relay'), { hostnames: ['relay.example.test'] });
      caFile = tlsWorld.file('relay-ca.pem', dev.caCertPem);
      relay = await SmtpReceiver.start({ tls: { cert: dev.certPem, key: dev.keyPem } });
      c = await cluster(await openPair(), relay.port, caFile);
    });
    afterAll(async () => {
      await c?.close();
      await relay?.close();
    });

    it('warns administrators and the user once per threshold, whichever node runs, and counts what expires', async () => {
      const [a, b] = c.nodes as [CaNode, CaNode];
      const alice = await a.users.addUser({ username: 'alice', displayName: '山田 花子', actor: 'test' });
      const bob = await a.users.addUser({ username: 'bob', actor: 'test' });
      await new ContactAddressService({ documents: c.stores[1]!.documents, audit: b.audit, now: c.world.now }).set(alice, 'hanako@example.test');
      const aliceCert = await a.certificates.issueForUser(alice, { deviceLabel: 'ノート PC' });
      const bobCert = await b.certificates.issueForUser(bob, { deviceLabel: 'desktop' });
      const renewedCert = await a.certificates.issueForUser(bob, { deviceLabel: 'tablet' });
      const shared = await b.certificates.issueShared('kiosk-1');

      // Nothing is near expiry yet: every run is quiet.
      await race(c.jobs);
      expect(c.notifications.serials()).toEqual([]);

      // 35 days on: 25 days left (inside 30). The tablet's certificate was renewed, so only its successor counts.
      c.world.clock += 35 * DAY;
      await a.certificates.renew(renewedCert.certificate.serial);
      const runs = await race(c.jobs);
      expect(runs).toBeGreaterThan(0);
      const first = c.notifications.serials();
      expect([...first].sort()).toEqual([aliceCert.certificate.serial, bobCert.certificate.serial, shared.certificate.serial].sort());
      expect(c.metrics.read('clientCertificatesExpiring', {})).toBe(4);

      // Alice has an address: one mail, in both languages, without any password; bob has none.
      const mails = await relay.waitFor(1);
      await new Promise((r) => setTimeout(r, 200));
      expect(relay.messages).toHaveLength(1);
      expect(mails[0]!.to).toEqual(['hanako@example.test']);
      expect(mailHeader(mails[0]!.raw, 'Subject')).toContain('expires in 25 day(s)');
      const text = mailText(mails[0]!.raw);
      expect(text).toContain('端末「ノート PC」');
      expect(text).toContain(aliceCert.certificate.serial);
      expect(text).not.toContain(aliceCert.password);

      // Later runs inside the same threshold say nothing new.
      c.world.clock += 2 * DAY;
      await race(c.jobs);
      expect(c.notifications.serials()).toHaveLength(3);

      // 6 days left: the 7-day threshold, once more each.
      c.world.clock += 17 * DAY;
      await race(c.jobs);
      const all = c.notifications.serials();
      expect(all).toHaveLength(6);
      for (const serial of new Set(all)) expect(all.filter((s) => s === serial)).toHaveLength(2);
      await relay.waitFor(2);
      expect(mailHeader(relay.messages[1]!.raw, 'Subject')).toContain('expires in 6 day(s)');
      // Audited once per warning, on whichever node sent it.
      const audited = (await a.audit.tail({ limit: 200 })).filter((e) => e.type === 'cert.expiry-warning');
      expect(audited).toHaveLength(6);
      expect(c.notifications.entries.find((e) => e.event === 'cert.expiring')!.body).toContain('kanmon cert renew --serial');
    });
  });
}

describeExpiry('two SQLite handles on one file', async () => {
  const world = await CaWorld.create();
  const file = join(world.dir, 'shared.db');
  return [await openSqliteStore({ file }), await openSqliteStore({ file })];
});

describe('on DynamoDB Local', () => {
  let local: DynamoDbLocal;
  beforeAll(async () => {
    local = await startDynamoDbLocal();
  }, 120_000);
  afterAll(async () => {
    await local?.stop();
  });
  describeExpiry('two clients on one table', async () => {
    const table = await freshTable(local.endpoint, 'kanmon-expiry');
    return [await openDynamoStore({ table, endpoint: local.endpoint }), await openDynamoStore({ table, endpoint: local.endpoint })];
  });
});
