/**
 * An AAGUID allowlist end to end over HTTP: Kanmon started with a FIDO MDS-like BLOB from a
 * file, a user whose route lists one authenticator model, enrollment with 'direct'
 * attestation from a soft security key whose certificate chains to the root the BLOB names,
 * and the route letting that key's session in while an unproven one is asked to step up.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKanmon } from '../../../runtime/app.js';
import { MetadataBlobError } from '../../../runtime/webauthn/metadata-blob.js';
import { createTestCa, createTestMetadataService, issueAttestationCertificate, type TestCa, type TestLeaf, type TestMetadataService } from '../../support/attestation-ca.js';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor } from '../../support/kanmon-harness.js';

const KEY = '0b5a1e55-c0de-4b1d-9e5a-0000000000a1';
const REVOKED = '0b5a1e55-c0de-4b1d-9e5a-0000000000a2';

let dir: string;
let mds: TestMetadataService;
let ca: TestCa;
let leaf: TestLeaf;
let h: KanmonHarness;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kanmon-mds-app-'));
  mds = await createTestMetadataService();
  ca = await createTestCa('Kanmon Test Attestation CA');
  leaf = await issueAttestationCertificate(ca, KEY);
  writeFileSync(join(dir, 'mds.jwt'), mds.blob([
    { aaguid: KEY, description: 'Kanmon Test Key', attestationRoots: [ca.der] },
    { aaguid: REVOKED, description: 'Withdrawn Key', attestationRoots: [ca.der], statuses: ['REVOKED'] },
  ]));
  writeFileSync(join(dir, 'mds-root.pem'), mds.root.pem);
  h = await KanmonHarness.start({
    webauthn: { mdsBlobFile: join(dir, 'mds.jwt'), mdsRootCertFile: join(dir, 'mds-root.pem') },
    routes: [
      { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' },
      { id: 'vault', match: { pathPrefix: '/vault' }, upstream: 'demo', policy: { aaguidAllowlist: [KEY] } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function enroll(username: string, key: ReturnType<typeof softAuthenticatorFor>) {
  await h.app.services.users.addUser({ username });
  const link = await h.app.services.enrollment.createLink(username);
  const options = (await h.post('/.kanmon/api/enroll/options', { token: link.token })).json();
  return { options, res: await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register(options) }) };
}

describe('AAGUID allowlists with a metadata BLOB', () => {
  it('loads the BLOB at start and names its models', () => {
    expect(h.app.services.metadata.source).toMatchObject({ entries: 2, root: expect.stringContaining('Kanmon Test Metadata Root') });
    expect(h.app.services.metadata.nameOf(KEY)).toBe('Kanmon Test Key');
  });

  it('asks for direct attestation, trusts the key that chains to the listed root, and lets its session in', async () => {
    const key = softAuthenticatorFor(h, { aaguid: KEY, attachment: 'cross-platform', transports: ['usb'], attestation: { certificates: [leaf.der], privateKey: leaf.privateKey } });
    const { options, res } = await enroll('hiro', key);
    expect(options.attestation).toBe('direct');
    expect(options.authenticatorSelection.authenticatorAttachment).toBe('cross-platform');
    expect(res.status).toBe(200);
    const [credential] = await h.app.store.credentials.listByUser((await h.app.services.users.require('hiro')).id);
    expect(credential).toMatchObject({ aaguid: KEY, attestationFormat: 'packed', attestationTrusted: true, name: 'Kanmon Test Key' });
    const audit = (await h.app.services.audit.tail({ limit: 5 })).find((e) => e.type === 'enroll' && e.username === 'hiro');
    expect(audit?.details).toMatchObject({ attestationFormat: 'packed', attestationTrusted: true });
    expect((await h.get('/vault/', { cookie: sessionCookieFrom(res)! })).status).toBe(404); // forwarded: the demo has no /vault
  });

  it('asks a key of the listed model without a trusted attestation to step up', async () => {
    // Same AAGUID, self attestation: the model is claimed, not proven.
    const key = softAuthenticatorFor(h, { aaguid: KEY, attachment: 'cross-platform', transports: ['usb'] });
    const link = await (async () => {
      await h.app.services.users.addUser({ username: 'yui' });
      return h.app.services.enrollment.createLink('yui');
    })();
    const options = (await h.post('/.kanmon/api/enroll/options', { token: link.token })).json();
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register(options, { attestationFormat: 'packed-self' }) });
    expect(res.status).toBe(200);
    const step = await h.get('/vault/', { cookie: sessionCookieFrom(res)!, headers: { accept: 'text/html' } });
    expect(step.status).toBe(403);
    expect(step.text).toContain('data-reason="authenticator-not-attested"');
  });

  it('refuses to register a model the BLOB reports revoked', async () => {
    const revokedLeaf = await issueAttestationCertificate(ca, REVOKED);
    const key = softAuthenticatorFor(h, { aaguid: REVOKED, attachment: 'cross-platform', attestation: { certificates: [revokedLeaf.der], privateKey: revokedLeaf.privateKey } });
    const { res } = await enroll('sora', key);
    expect(res.status).toBe(400);
    const audit = await h.app.services.audit.tail({ limit: 5 });
    expect(audit.find((e) => e.type === 'enroll' && e.username === 'sora')).toMatchObject({ result: 'failure', reason: 'authenticator-refused' });
    expect(await h.app.store.credentials.listByUser((await h.app.services.users.require('sora')).id)).toEqual([]);
  });

  it('does not start with a BLOB whose signature does not verify', async () => {
    const forged = join(dir, 'forged.jwt');
    writeFileSync(forged, mds.blob([{ aaguid: KEY, description: 'x', attestationRoots: [ca.der] }], { tamper: true }));
    await expect(
      startKanmon({ dataDir: join(dir, 'data'), log: { level: 'silent' }, server: { port: 0, host: '127.0.0.1' }, webauthn: { mdsBlobFile: forged, mdsRootCertFile: join(dir, 'mds-root.pem') } }),
    ).rejects.toBeInstanceOf(MetadataBlobError);
  });
});
