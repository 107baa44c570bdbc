import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { USAGE } from '../../../runtime/cli/commands.js';
import { parseConfig } from '../../../runtime/config/schema.js';
import { openLocalSecretBox } from '../../../runtime/secrets/index.js';
import { createServices, type Services } from '../../../runtime/services/index.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';
import { openssl, run } from './support.js';
import { runCliInProcess, type CliRun } from '../../support/cli.js';

let dir: string;
let store: Store;
let services: Services;
let config: ReturnType<typeof parseConfig>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-cert-cli-'));
  config = parseConfig({ dataDir: dir, server: { publicOrigin: 'https://gate.example.test' }, ca: { commonName: 'Example Devices CA', organization: 'Example K.K.' } });
  store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  services = createServices({ config, store, secrets: await openLocalSecretBox(dir), logger: pino({ level: 'silent' }) });
  for (const name of ['aiko', 'ben', 'chika']) await services.users.addUser({ username: name });
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function kanmon(...argv: string[]): Promise<CliRun> {
  return runCliInProcess(services, config, argv);
}

function passwordOf(text: string): string {
  return text.match(/PKCS#12 password \(shown once, stored nowhere\): (\S+)/)![1]!;
}

describe('kanmon ca', () => {
  it('shows the CA (made on first use) and its certificate as PEM, never the key', async () => {
    const { code, text } = await kanmon('ca', 'show');
    expect(code).toBe(0);
    expect(text).toMatch(/subject: +O=Example K\.K\., CN=Example Devices CA/);
    expect(text).toContain('EC P-256');
    expect(text).not.toMatch(/PRIVATE KEY/);
    const pem = (await kanmon('ca', 'show', '--pem')).text;
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----$/);
    writeFileSync(join(dir, 'ca.pem'), `${pem}\n`);
  });

  it('writes the CRL as DER for openssl', async () => {
    const { text } = await kanmon('ca', 'crl', '--out', join(dir, 'first.crl'));
    expect(text).toContain('wrote');
    expect(await openssl('crl', '-inform', 'DER', '-in', join(dir, 'first.crl'), '-noout', '-CAfile', join(dir, 'ca.pem'))).toContain('verify OK');
    expect((await kanmon('ca', 'crl', '--pem')).text).toContain('-----BEGIN X509 CRL-----');
  });
});

describe('kanmon cert for one user', () => {
  it('issues to a file (0600, never over an existing one) and prints the password once', async () => {
    const out = join(dir, 'aiko.p12');
    const { code, text } = await kanmon('cert', 'issue', 'aiko', '--device', 'Work laptop', '--out', out);
    expect(code).toBe(0);
    expect(text).toMatch(/issued certificate [0-9a-f]{32} for aiko \(Work laptop, ec-p256\)/);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const info = await openssl('pkcs12', '-info', '-nokeys', '-in', out, '-passin', `pass:${passwordOf(text)}`);
    expect(info).toContain('MAC: sha256');
    // Refused before anything is issued: no certificate is left without its file.
    const before = (await services.clientCertificates.listForUser((await services.users.require('aiko')).id)).length;
    await expect(kanmon('cert', 'issue', 'aiko', '--out', out)).rejects.toBeInstanceOf(UsageError);
    expect(await services.clientCertificates.listForUser((await services.users.require('aiko')).id)).toHaveLength(before);
  });

  it('issues with a link by default, legacy and RSA on request', async () => {
    const { text } = await kanmon('cert', 'issue', 'ben', '--key-type', 'rsa-2048', '--legacy');
    expect(text).toMatch(/https:\/\/gate\.example\.test\/\.kanmon\/cert\/download\?token=[A-Za-z0-9_-]{43}/);
    expect(text).toContain('legacy 3DES/SHA-1 file');
    const token = text.match(/token=([A-Za-z0-9_-]{43})/)![1]!;
    const file = await services.clientCertificates.redeemDownloadLink(token, { ip: '192.0.2.1', userAgent: 'test' });
    writeFileSync(join(dir, 'ben.p12'), file.pkcs12);
    const info = await openssl('pkcs12', '-info', '-nokeys', '-in', join(dir, 'ben.p12'), '-passin', `pass:${passwordOf(text)}`);
    expect(info).toContain('pbeWithSHA1And3-KeyTripleDES-CBC');
  });

  it('lists, downloads again, and revokes a lost device; revoking again is harmless', async () => {
    const listed = (await kanmon('cert', 'list', 'aiko')).text;
    expect(listed).toMatch(/SERIAL +OWNER +DEVICE/);
    expect(listed).toMatch(/aiko +Work laptop +ec-p256 +active .* 2$/m);
    const again = join(dir, 'aiko-again.p12');
    expect((await kanmon('cert', 'download', 'aiko', '--out', again)).text).toContain('1 download(s) left');

    const serial = listed.match(/^([0-9a-f]{32}) +aiko/m)![1]!;
    const revoked = await kanmon('cert', 'revoke', 'aiko', '--reason', 'keyCompromise');
    expect(revoked.text).toContain(`${serial}: revoked`);
    expect(revoked.text).toContain('every node refuses them within 5 s');
    expect((await kanmon('cert', 'revoke', 'aiko')).text).toContain(`${serial}: already revoked`);
    expect((await kanmon('cert', 'list', 'aiko', '--json')).text).toContain('"revocationReason": "keyCompromise"');
    const crl = join(dir, 'after.crl');
    await kanmon('ca', 'crl', '--out', crl);
    expect(await openssl('crl', '-inform', 'DER', '-in', crl, '-noout', '-text')).toContain(serial.toUpperCase());
    await expect(kanmon('cert', 'revoke', 'aiko', '--reason', 'bored')).rejects.toBeInstanceOf(UsageError);
  });

  it('deletes a certificate, hiding it from the list unless --all', async () => {
    const serial = JSON.parse((await kanmon('cert', 'list', 'ben', '--json')).text)[0].serial as string;
    expect((await kanmon('cert', 'delete', '--serial', serial)).text).toContain(`${serial}: deleted`);
    expect((await kanmon('cert', 'list', 'ben')).text).toBe('no certificates');
    expect((await kanmon('cert', 'list', 'ben', '--all')).text).toMatch(/deleted .*\(cessationOfOperation\)/);
  });
});

describe('kanmon cert for shared devices, renewal and expiry', () => {
  it('issues, lists and revokes a shared certificate by label', async () => {
    const out = join(dir, 'kiosk.p12');
    expect((await kanmon('cert', 'issue', '--shared', '--label', 'kiosk-1', '--out', out)).text).toContain('for shared device kiosk-1');
    expect((await kanmon('cert', 'list', '--shared')).text).toMatch(/shared:kiosk-1 +kiosk-1/);
    expect((await kanmon('cert', 'revoke', '--shared', '--label', 'kiosk-1')).text).toContain('revoked 1 certificate(s)');
  });

  it('renews by serial and lists what is expiring', async () => {
    await kanmon('cert', 'issue', 'chika', '--device', 'phone', '--out', join(dir, 'chika.p12'));
    const serial = JSON.parse((await kanmon('cert', 'list', 'chika', '--json')).text)[0].serial as string;
    expect((await kanmon('cert', 'list', '--expiring')).text).toBe('no certificates');
    expect((await kanmon('cert', 'list', '--expiring', '--days', '400')).text).toContain(serial);
    const renewed = await kanmon('cert', 'renew', '--serial', serial, '--out', join(dir, 'chika-2.p12'));
    expect(renewed.text).toMatch(new RegExp(`renewed ${serial} as [0-9a-f]{32} for chika \\(phone\\)`));
    expect(passwordOf(renewed.text)).toMatch(/^[2-9a-z-]{23}$/);
  });
});

describe('kanmon cert with a CSV', () => {
  it('issues to a zip and a separate password sheet, revokes twice harmlessly, and deletes; a missing user fails alone', async () => {
    const csv = join(dir, 'users.csv');
    writeFileSync(csv, 'username\naiko\nben\nnobody\n');
    const zip = join(dir, 'batch.zip');
    const issued = await kanmon('cert', 'issue', '--csv', csv, '--zip', zip, '--device', 'company pc');
    expect(issued.code).toBe(1);
    expect(issued.text).toMatch(/^aiko +issued +[0-9a-f]{32}/m);
    expect(issued.text).toMatch(/^nobody +failed +- +no user named "nobody"/m);
    expect(issued.text).toContain('2 of 3 user(s) done, 1 failed');
    expect(statSync(zip).mode & 0o777).toBe(0o600);
    const sheet = readFileSync(join(dir, 'batch-passwords.csv'), 'utf8');
    expect(sheet).toMatch(/aiko,aiko,company pc,aiko-company-pc-[0-9a-f]{8}\.p12,[2-9a-z-]{23},/);
    expect((await run('unzip', ['-Z1', zip])).stdout.split('\n').filter((l) => l.endsWith('.p12'))).toHaveLength(2);

    writeFileSync(csv, 'username\naiko\nben\n');
    const first = await kanmon('cert', 'revoke', '--csv', csv, '--json');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.lines.slice(0, -2).join('\n')).map((r: { outcome: string }) => r.outcome)).toEqual(['revoked 1', 'revoked 1']);
    const second = await kanmon('cert', 'revoke', '--csv', csv);
    expect(second.code).toBe(0);
    expect(second.text).toMatch(/^aiko +nothing to revoke/m);
    expect((await kanmon('cert', 'delete', '--csv', csv)).text).toContain('2 of 2 user(s) done');
  });

  it('documents every certificate and CA command in the usage text', () => {
    for (const c of ['cert issue', 'cert list', 'cert download', 'cert revoke', 'cert delete', 'cert renew', 'ca show', 'ca crl', '--csv', '--shared']) expect(USAGE).toContain(c);
  });
});
