import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type MailConfig } from '../../../runtime/config/schema.js';
import { createMailer } from '../../../runtime/notify/create-mailer.js';
import { cleanMailAddress, MailDeliveryError } from '../../../runtime/notify/mailer.js';
import { SmtpMailer } from '../../../runtime/notify/smtp-mailer.js';
import { ensureDevCertificates } from '../../../runtime/tls/dev-ca.js';
import { mailHeader, mailText, SmtpReceiver } from './smtp-receiver.js';

const silent = pino({ level: 'silent' });

function mailConfig(port: number, extra: Record<string, unknown> = {}): MailConfig {
  const config = parseConfig({ notifications: { kind: 'log', mail: { host: '127.0.0.1', port, from: 'Kanmon <kanmon@example.test>', ...extra } } });
  return config.notifications.mail!;
}

describe('SMTP mail transport', () => {
  let dir: string;
  let tlsFiles: { cert: string; key: string; caFile: string };
  let otherCa: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kanmon-smtp-'));
    const dev = await ensureDevCertificates(join(dir, 'relay'), { hostnames: ['relay.example.test'] });
    tlsFiles = { cert: dev.certPem, key: dev.keyPem, caFile: dev.caCertPath };
    otherCa = (await ensureDevCertificates(join(dir, 'other'), { hostnames: ['other.example.test'] })).caCertPath;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('upgrades with STARTTLS, authenticates, and delivers Japanese and English text intact', async () => {
    const relay = await SmtpReceiver.start({ tls: tlsFiles, credentials: { user: 'kanmon', pass: 's3cret' } });
    const mailer = new SmtpMailer({ config: mailConfig(relay.port, { username: 'kanmon', passwordEnv: 'SMTP_PASSWORD', caFile: tlsFiles.caFile }), password: 's3cret', logger: silent });
    try {
      const text = '端末証明書のダウンロード\nDownload your device certificate: https://gate.example.test/x';
      await mailer.send({ to: 'hanako@example.test', subject: '端末証明書 / Device certificate', text });
      const [mail] = await relay.waitFor(1);
      expect(mail!.tls).toBe(true);
      expect(mail!.authUser).toBe('kanmon');
      expect(mail!.from).toBe('kanmon@example.test');
      expect(mail!.to).toEqual(['hanako@example.test']);
      expect(mailHeader(mail!.raw, 'Subject')).toBe('端末証明書 / Device certificate');
      expect(mailText(mail!.raw).replace(/\r\n/g, '\n').trim()).toBe(text);
      // The password went only inside TLS: the commands before STARTTLS name no AUTH.
      const beforeTls = relay.commands.slice(0, relay.commands.indexOf('STARTTLS'));
      expect(beforeTls.some((c) => c.startsWith('AUTH'))).toBe(false);
    } finally {
      mailer.close();
      await relay.close();
    }
  });

  it('"starttls" sends nothing to a relay that does not offer STARTTLS', async () => {
    const relay = await SmtpReceiver.start();
    const mailer = new SmtpMailer({ config: mailConfig(relay.port, { caFile: tlsFiles.caFile }), logger: silent });
    try {
      await expect(mailer.send({ to: 'a@example.test', subject: 's', text: 'link' })).rejects.toBeInstanceOf(MailDeliveryError);
      expect(relay.messages).toHaveLength(0);
      expect(relay.commands.some((c) => c.startsWith('MAIL'))).toBe(false);
    } finally {
      mailer.close();
      await relay.close();
    }
  });

  it('refuses a relay whose certificate does not chain to the configured CA', async () => {
    const relay = await SmtpReceiver.start({ tls: tlsFiles });
    const mailer = new SmtpMailer({ config: mailConfig(relay.port, { caFile: otherCa }), logger: silent });
    try {
      const err = await mailer.send({ to: 'a@example.test', subject: 's', text: 'link' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MailDeliveryError);
      expect((err as MailDeliveryError).reason).toBe('tls');
      expect(relay.messages).toHaveLength(0);
    } finally {
      mailer.close();
      await relay.close();
    }
  });

  it('refuses hostile recipients before talking to the relay, and a subject cannot add headers', async () => {
    const relay = await SmtpReceiver.start({ tls: tlsFiles });
    const mailer = new SmtpMailer({ config: mailConfig(relay.port, { caFile: tlsFiles.caFile }), logger: silent });
    try {
      for (const to of ['a@example.test\r\nBcc: evil@example.test', 'a@example.test, b@example.test', 'Hanako <a@example.test>', `${'a'.repeat(250)}@example.test`, '', 'no-at-sign', '<a@example.test>']) {
        const err = await mailer.send({ to, subject: 's', text: 't' }).catch((e: unknown) => e);
        expect((err as MailDeliveryError).reason).toBe('invalid-recipient');
      }
      expect(relay.commands).toHaveLength(0);
      await mailer.send({ to: 'a@example.test', subject: 'Hello\r\nBcc: evil@example.test', text: 'body' });
      const [mail] = await relay.waitFor(1);
      expect(mail!.to).toEqual(['a@example.test']);
      expect(mailHeader(mail!.raw, 'Bcc')).toBeUndefined();
      expect(mailHeader(mail!.raw, 'Subject')).toBe('Hello Bcc: evil@example.test');
    } finally {
      mailer.close();
      await relay.close();
    }
  });

  it('reports a recipient the relay refuses', async () => {
    const relay = await SmtpReceiver.start({ tls: tlsFiles, refuse: ['gone@example.test'] });
    const mailer = new SmtpMailer({ config: mailConfig(relay.port, { caFile: tlsFiles.caFile }), logger: silent });
    try {
      const err = await mailer.send({ to: 'gone@example.test', subject: 's', text: 't' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MailDeliveryError);
      expect(relay.messages).toHaveLength(0);
    } finally {
      mailer.close();
      await relay.close();
    }
  });

  it('takes the password from the environment only, and warns about plain text at start', () => {
    expect(() => createMailer(mailConfig(25, { username: 'u', passwordEnv: 'KANMON_TEST_UNSET_PASSWORD' }), silent, {})).toThrow(/KANMON_TEST_UNSET_PASSWORD/);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }));
    createMailer(mailConfig(25, { security: 'none' }), logger)!.close();
    expect(lines.join('')).toMatch(/"level":40.*security is \\"none\\"/);
    expect(createMailer(undefined, silent)).toBeUndefined();
  });

  it('config: every mail problem is reported at once, and plain-text AUTH is refused', () => {
    expect(() => parseConfig({ notifications: { mail: { host: 'bad host', from: 'x', security: 'none', username: 'u', port: 0, extra: 1 } } })).toThrow(
      /option 'host'[\s\S]*option 'port'[\s\S]*option 'from'[\s\S]*'username' and 'passwordEnv'[\s\S]*plain text/,
    );
    expect(() => parseConfig({ notifications: { certificateExpiryDays: [0, 'x'] } })).toThrow(/certificateExpiryDays/);
    expect(parseConfig({}).notifications.certificateExpiryDays).toEqual([30, 7, 1]);
    expect(parseConfig({ notifications: { certificateExpiryDays: [1, 14, 14] } }).notifications.certificateExpiryDays).toEqual([14, 1]);
  });

  it('accepts plain addresses only', () => {
    expect(cleanMailAddress(' hanako.yamada+cert@example.co.jp ')).toBe('hanako.yamada+cert@example.co.jp');
    for (const bad of [undefined, 42, 'a@b', 'a@-b.test', 'a b@example.test', 'a@example.test\n', '"q"@example.test']) expect(cleanMailAddress(bad)).toBeUndefined();
  });
});
