import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsvRows, parseUsernameCsv } from '../../../runtime/ca/csv.js';
import { CaWorld, openssl, run, type CaNode } from './support.js';

const USERS = 200;
let world: CaWorld;
let node: CaNode;
let names: string[];

beforeAll(async () => {
  world = await CaWorld.create({ clientCertificates: { maxActivePerUser: 2 } });
  node = world.node();
  names = Array.from({ length: USERS }, (_, i) => `user${String(i).padStart(3, '0')}`);
  for (const name of names) await node.users.addUser({ username: name, displayName: `社員 ${name}` });
});
afterAll(async () => {
  await world.close();
});

describe('bulk operations on 200 users, read from a CSV', () => {
  it('issues one certificate per user, with a zip of PKCS#12 files and a separate password sheet', async () => {
    const csv = `username,display name\r\n${names.map((n) => `${n},"社員, ${n}"`).join('\r\n')}\r\nnobody,Missing Person\r\n`;
    const listed = parseUsernameCsv(csv);
    expect(listed).toHaveLength(USERS + 1);

    const { results, zip, passwordSheetCsv } = await node.bulk.issue(listed, { deviceLabel: 'company laptop', actor: 'admin' });
    expect(results).toHaveLength(USERS + 1);
    expect(results.map((r) => r.username)).toEqual(listed);
    expect(results.filter((r) => r.ok)).toHaveLength(USERS);
    for (const r of results.slice(0, USERS)) expect(r).toMatchObject({ ok: true, outcome: 'issued', serials: [expect.stringMatching(/^[4-7][0-9a-f]{31}$/)] });
    expect(results.at(-1)).toMatchObject({ username: 'nobody', ok: false, error: { code: 'not-found' } });

    const zipPath = world.file('bulk.zip', zip);
    expect((await run('unzip', ['-t', zipPath])).stdout).toContain('No errors detected');
    await run('unzip', ['-q', zipPath, '-d', join(world.dir, 'bulk')]);
    const files = readdirSync(join(world.dir, 'bulk'));
    expect(files.filter((f) => f.endsWith('.p12'))).toHaveLength(USERS);
    expect(files).toContain('index.csv');
    const index = readFileSync(join(world.dir, 'bulk', 'index.csv'), 'utf8');
    expect(index).not.toMatch(/password/i);

    // The sheet pairs every file with its password; the zip itself holds no password.
    const sheet = parseCsvRows(passwordSheetCsv.replace(/^\uFEFF/, ''));
    expect(sheet[0]).toEqual(['username', 'display name', 'device', 'file', 'password', 'serial', 'expires']);
    expect(sheet).toHaveLength(USERS + 1);
    const caPath = world.file('ca.pem', await node.ca.certificatePem());
    for (const row of [sheet[1]!, sheet[100]!, sheet[USERS]!]) {
      const [username, , device, file, password] = row as [string, string, string, string, string];
      expect(device).toBe('company laptop');
      const path = join(world.dir, 'bulk', file);
      const info = await openssl('pkcs12', '-info', '-nokeys', '-in', path, '-passin', `pass:${password}`);
      expect(info).toContain(`friendlyName: ${username} (company laptop)`);
      const certPem = await openssl('pkcs12', '-in', path, '-passin', `pass:${password}`, '-nokeys', '-clcerts');
      const certPath = world.file(`${username}.pem`, certPem.slice(certPem.indexOf('-----BEGIN')));
      expect(await openssl('verify', '-CAfile', caPath, certPath)).toContain(': OK');
    }
    // Each zip entry was that issuance's first download.
    expect((await node.audit.tail({ limit: 1000 })).filter((e) => e.type === 'cert.download' && e.result === 'success')).toHaveLength(USERS);
  });

  it('downloads the files still waiting, per user, and says so for users with none', async () => {
    const { results, zip } = await node.bulk.download([...names.slice(0, 150), 'nobody']);
    expect(results).toHaveLength(151);
    expect(results.slice(0, 150).every((r) => r.ok && r.outcome === 'downloaded 1' && r.serials.length === 1)).toBe(true);
    expect(results[150]).toMatchObject({ ok: false, error: { code: 'not-found' } });
    const listing = (await run('unzip', ['-Z1', world.file('again.zip', zip)])).stdout.trim().split('\n');
    expect(listing.filter((f) => f.endsWith('.p12'))).toHaveLength(150);
  });

  it('keeps the per-user limit in bulk: a user at the limit gets a failed result, the others are issued', async () => {
    await node.certificates.issueForUser((await node.users.get('user007'))!);
    const { results } = await node.bulk.issue(['user006', 'user007', 'user008']);
    expect(results.map((r) => [r.username, r.ok, r.error?.code])).toEqual([
      ['user006', true, undefined],
      ['user007', false, 'conflict'],
      ['user008', true, undefined],
    ]);
  });

  it('revokes every active certificate of every user; running it again is harmless', async () => {
    const first = await node.bulk.revoke(names, { reason: 'affiliationChanged', actor: 'admin' });
    expect(first).toHaveLength(USERS);
    expect(first.every((r) => r.ok && r.serials.length >= 1 && r.outcome.startsWith('revoked'))).toBe(true);
    const revokedSerials = first.flatMap((r) => r.serials);
    const again = await node.bulk.revoke(names, { reason: 'affiliationChanged' });
    expect(again).toHaveLength(USERS);
    expect(again.every((r) => r.ok && r.outcome === 'nothing to revoke' && r.serials.length === 0)).toBe(true);

    const crl = await openssl('crl', '-inform', 'DER', '-noout', '-text', '-in', world.file('bulk.crl', await node.ca.crlDer()));
    for (const serial of revokedSerials) expect(crl).toContain(serial.toUpperCase());
    const revokeEvents = (await node.audit.tail({ limit: 1000 })).filter((e) => e.type === 'cert.revoke');
    expect(revokeEvents).toHaveLength(revokedSerials.length);
  });

  it('deletes every certificate of every user; running it again is harmless', async () => {
    const first = await node.bulk.delete([...names, 'nobody']);
    expect(first).toHaveLength(USERS + 1);
    expect(first.slice(0, USERS).every((r) => r.ok && r.outcome.startsWith('deleted'))).toBe(true);
    expect(first[USERS]).toMatchObject({ ok: false, error: { code: 'not-found' } });
    const again = await node.bulk.delete(names);
    expect(again.every((r) => r.ok && r.outcome === 'nothing to delete')).toBe(true);
    expect(await node.certificates.listForUser((await node.users.get('user000'))!.id)).toEqual([]);
  });
});
