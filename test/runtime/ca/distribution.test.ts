/**
 * Handing a certificate's file to its user: the download link by mail (through the SMTP
 * transport to a real SMTP receiver) or on a printed letter, from the CLI and the service.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { parseConfig } from '../../../runtime/config/schema.js';
import { openLocalSecretBox } from '../../../runtime/secrets/index.js';
import { createServices, type Services } from '../../../runtime/services/index.js';
import { ServiceError } from '../../../runtime/services/errors.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';
import { ensureDevCertificates } from '../../../runtime/tls/dev-ca.js';
import { mailHeader, mailText, SmtpReceiver } from '../notify/smtp-receiver.js';
import { runCliInProcess, type CliRun } from '../../support/cli.js';

let dir: string;
let store: Store;
let services: Services;
let config: ReturnType<typeof parseConfig>;
let relay: SmtpReceiver;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-cert-mail-'));
  const dev = await ensureDevCertificates(join(dir, 'relay'), { hostnames: ['relay.example.test'] });
  relay = await SmtpReceiver.start({ tls: { cert: dev.certPem, key: dev.keyPem }, credentials: { user: 'kanmon', pass: 'relay-secret' } });
  process.env.KANMON_TEST_SMTP_PASSWORD = 'relay-secret';
  config = parseConfig({
    dataDir: dir,
    server: { publicOrigin: 'https://gate.example.test' },
    ca: { organization: 'Example K.K.' },
    notifications: { mail: { host: '127.0.0.1', port: relay.port, from: 'Kanmon <kanmon@example.test>', username: 'kanmon', passwordEnv: 'KANMON_TEST_SMTP_PASSWORD', caFile: dev.caCertPath } },
  });
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  services = createServices({ config, store, secrets: await openLocalSecretBox(dir), logger: pino({ level: 'silent' }) });
  await services.users.addUser({ username: 'haruto', displayName: '佐藤 陽翔' });
  await services.users.addUser({ username: 'mio' });
});
afterAll(async () => {
  await relay?.close();
  await store?.close();
  delete process.env.KANMON_TEST_SMTP_PASSWORD;
  rmSync(dir, { recursive: true, force: true });
});

function kanmon(...argv: string[]): Promise<CliRun> {
  return runCliInProcess(services, config, argv);
}

describe('certificate distribution', () => {
  it('kanmon cert issue --mail sends the single-use link to the user\'s address, in both languages, without the password', async () => {
    expect((await kanmon('cert', 'contact', 'haruto', 'haruto@example.test')).text).toBe('haruto: haruto@example.test');
    const { code, text } = await kanmon('cert', 'issue', 'haruto', '--device', 'ノート PC', '--mail');
    expect(code).toBe(0);
    expect(text).toMatch(/mailed a download link to haruto@example\.test/);
    const password = text.match(/stored nowhere\): (\S+)/)![1]!;
    const [mail] = await relay.waitFor(1);
    expect(mail!.tls).toBe(true);
    expect(mail!.authUser).toBe('kanmon');
    expect(mail!.to).toEqual(['haruto@example.test']);
    expect(mailHeader(mail!.raw, 'Subject')).toBe('端末証明書のダウンロード / Your device certificate (ノート PC)');
    const body = mailText(mail!.raw);
    expect(body).toContain('佐藤 陽翔 (haruto) 様');
    expect(body).toContain('Dear 佐藤 陽翔 (haruto),');
    expect(body).not.toContain(password);
    const url = body.match(/https:\/\/gate\.example\.test\/\.kanmon\/cert\/download\?token=[A-Za-z0-9_-]{43}/)![0];
    // The mailed link is a real one: it redeems once for the file.
    const token = new URL(url).searchParams.get('token')!;
    const file = await services.clientCertificates.redeemDownloadLink(token, { ip: '127.0.0.1', userAgent: 'test' });
    expect(file.pkcs12.length).toBeGreaterThan(500);
    await expect(services.clientCertificates.redeemDownloadLink(token, { ip: '127.0.0.1', userAgent: 'test' })).rejects.toBeInstanceOf(ServiceError);
    const audit = (await services.audit.tail({ limit: 20 })).find((e) => e.type === 'cert.mail');
    expect(audit).toMatchObject({ result: 'success', username: 'haruto', details: { to: 'haruto@example.test' } });
  });

  it('--to mails another address; without any address, or with a hostile one, nothing is issued or sent from the CLI', async () => {
    const before = relay.messages.length;
    const mio = await services.users.require('mio');
    await expect(kanmon('cert', 'issue', 'mio', '--mail', '--to', 'mio@example.test\r\nBcc: evil@example.test')).rejects.toBeInstanceOf(UsageError);
    await expect(kanmon('cert', 'issue', 'mio', '--mail', '--to', 'a@example.test, b@example.test')).rejects.toBeInstanceOf(UsageError);
    await expect(kanmon('cert', 'issue', 'mio', '--to', 'x@example.test')).rejects.toBeInstanceOf(UsageError);
    await expect(kanmon('cert', 'issue', 'mio', '--mail', '--link')).rejects.toBeInstanceOf(UsageError);
    await expect(kanmon('cert', 'issue', 'mio', '--mail')).rejects.toThrow(/no e-mail address/);
    await expect(kanmon('cert', 'contact', 'mio', 'not an address')).rejects.toBeInstanceOf(ServiceError);
    expect(await services.clientCertificates.listForUser(mio.id)).toHaveLength(0);
    expect(relay.messages.length).toBe(before);
    // The service refuses the same things for the console.
    const issued = await services.clientCertificates.issueForUser(mio, { deviceLabel: 'tablet' });
    expect(await services.certificateDistribution.mailDownloadLink(issued.certificate.serial, {}).catch((e: unknown) => (e as Error).message)).toMatch(/no e-mail address/);
    expect(await services.certificateDistribution.mailDownloadLink(issued.certificate.serial, { to: 'x@example.test\nBcc: y@example.test' }).catch((e: unknown) => (e as ServiceError).code)).toBe('invalid-input');
    expect(await services.certificateDistribution.mailDownloadLink('not-a-serial!', { to: 'x@example.test' }).catch((e: unknown) => (e as ServiceError).code)).toBe('invalid-input');
    expect(relay.messages.length).toBe(before);
    const { text } = await kanmon('cert', 'download', 'mio', '--mail', '--to', 'mio.private@example.test');
    expect(text).toContain('mailed a download link to mio.private@example.test');
    const mails = await relay.waitFor(before + 1);
    expect(mails.at(-1)!.to).toEqual(['mio.private@example.test']);
  });

  it('a relay that refuses the recipient is reported and audited as a failure', async () => {
    const c = await services.clientCertificates.issueShared('reception-1');
    await relay.close();
    const err = await services.certificateDistribution.mailDownloadLink(c.certificate.serial, { to: 'desk@example.test' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as Error).message).toMatch(/could not be mailed/);
    const audit = (await services.audit.tail({ limit: 20 })).find((e) => e.type === 'cert.mail');
    expect(audit).toMatchObject({ result: 'failure', reason: 'mail-unreachable' });
    relay = await SmtpReceiver.start();
  });

  it('kanmon cert download --letter writes a printable letter with the link and QR code, never the password', async () => {
    const path = join(dir, 'haruto-letter.html');
    const { text } = await kanmon('cert', 'download', 'haruto', '--letter', path);
    expect(text).toContain('wrote letter');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const letter = readFileSync(path, 'utf8');
    expect(letter).toContain('端末証明書のご案内');
    expect(letter).toContain('Your device certificate');
    expect(letter).toMatch(/<svg role="img"[^>]*class="qr"/);
    expect(letter).toMatch(/id="letter-link">https:\/\/gate\.example\.test\/\.kanmon\/cert\/download\?token=[A-Za-z0-9_-]{43}</);
    expect(letter).toContain('ノート PC');
    expect(letter).toContain("default-src 'none'");
    expect(letter).not.toMatch(/<script/);
    // An existing file is never replaced.
    await expect(kanmon('cert', 'download', 'haruto', '--letter', path)).rejects.toBeInstanceOf(UsageError);
  });
});
