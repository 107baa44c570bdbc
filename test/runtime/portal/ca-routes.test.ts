import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { openssl, pemOf } from '../ca/support.js';
import { Scratch } from '../ca/mtls-support.js';
import type { User } from '../../../runtime/store/types.js';

/** The CA's public endpoints and the one-time certificate download, against a real node. */
describe('portal: CA certificate, CRL and certificate download', () => {
  let h: KanmonHarness;
  let scratch: Scratch;
  let hanako: User;

  beforeAll(async () => {
    h = await KanmonHarness.start({ ca: { commonName: 'Example Client CA' } });
    scratch = new Scratch();
    hanako = await h.app.services.users.addUser({ username: 'hanako' });
  });

  afterAll(async () => {
    await h?.close();
    scratch?.close();
  });

  /** Issues a certificate and a download link for it. */
  async function link(): Promise<{ token: string; password: string; serial: string }> {
    const issued = await h.app.services.clientCertificates.issueForUser(hanako, { deviceLabel: 'laptop' });
    const l = await h.app.services.clientCertificates.createDownloadLink(issued.certificate.serial);
    return { token: l.token, password: issued.password, serial: issued.certificate.serial };
  }

  const redeem = (token: string, origin?: string | null) =>
    h.post('/.kanmon/cert/download', undefined, { raw: `token=${encodeURIComponent(token)}`, contentType: 'application/x-www-form-urlencoded', ...(origin !== undefined ? { origin } : {}) });

  it('serves the CA certificate as PEM, and as DER with ?format=der', async () => {
    const pem = await h.get('/.kanmon/ca/cert');
    expect(pem.status).toBe(200);
    expect(pem.headers['content-type']).toMatch(/^application\/x-pem-file/);
    expect(pem.text).toBe(await h.app.services.ca.certificatePem());
    expect(await openssl('x509', '-in', scratch.file('ca.pem', pem.text), '-noout', '-subject')).toMatch(/CN ?= ?Example Client CA/);
    const der = await h.get('/.kanmon/ca/cert?format=der');
    expect(der.headers['content-type']).toBe('application/pkix-cert');
    // The harness reads bodies as text: compare the length of the DER bytes.
    const expected = Buffer.from(await h.app.services.ca.certificateDer());
    expect(Number(der.headers['content-length'])).toBe(expected.length);
  });

  it('serves the CRL as DER (application/pkix-crl), signed by the CA and with a nextUpdate', async () => {
    const res = await h.get('/.kanmon/ca/crl');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/pkix-crl');
    const crl = scratch.file('ca.crl', pemOf(await h.app.services.ca.crlDer(), 'X509 CRL'));
    const ca = scratch.file('ca2.pem', await h.app.services.ca.certificatePem());
    const out = await openssl('crl', '-in', crl, '-CAfile', ca, '-noout', '-nextupdate');
    expect(out).toMatch(/verify OK/);
    expect(out).toMatch(/nextUpdate=/);
  });

  it('opening a download link shows a confirmation page with install steps, and downloads nothing', async () => {
    const { token } = await link();
    for (const lang of ['en', 'ja'] as const) {
      const page = await h.get(`/.kanmon/cert/download?token=${token}`, { headers: { 'accept-language': lang } });
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['cache-control']).toBe('no-store');
      expect(page.text).toContain('method="post" action="/.kanmon/cert/download"');
      expect(page.text).toContain(`value="${token}"`);
      for (const os of ['windows', 'macos', 'ios', 'android']) expect(page.text).toContain(`id="install-${os}"`);
      expect(page.text).not.toMatch(/<script>(?!<)/);
      expect(page.text).toContain(lang === 'ja' ? '端末証明書のダウンロード' : 'Download your device certificate');
    }
  });

  it('a same-origin POST redeems the link once for the PKCS#12 file, as an attachment', async () => {
    const { token, serial } = await link();
    const res = await h.send('POST', '/.kanmon/cert/download', undefined, { raw: `token=${token}`, contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-pkcs12');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="hanako-laptop-[0-9a-f]{8}\.p12"$/);
    expect(res.headers['cache-control']).toBe('no-store');
    // The harness reads bodies as text: the bytes are checked with openssl in the next test.
    expect(Number(res.headers['content-length'])).toBeGreaterThan(500);
    const again = await redeem(token);
    expect(again.status).toBe(410);
    expect(again.text).toContain('id="cert-download-gone"');
    // The link was the only way in; the certificate itself stays valid.
    expect((await h.app.services.clientCertificates.listForUser(hanako.id)).find((c) => c.serial === serial)?.status).toBe('active');
  });

  it('the downloaded bytes are a PKCS#12 openssl reads with the password', async () => {
    const { token, password } = await link();
    const { request, Agent } = await import('undici');
    const { readFileSync } = await import('node:fs');
    const agent = new Agent({ connect: { ca: readFileSync(h.app.devCaCertPath!), servername: 'localhost' } });
    try {
      const res = await request(`https://127.0.0.1:${h.app.port}/.kanmon/cert/download`, {
        method: 'POST',
        headers: { host: `localhost:${h.app.port}`, origin: h.origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${token}`,
        dispatcher: agent,
      });
      expect(res.statusCode).toBe(200);
      const p12 = scratch.file('dl.p12', Buffer.from(await res.body.arrayBuffer()));
      const info = await openssl('pkcs12', '-in', p12, '-passin', `pass:${password}`, '-info', '-nokeys');
      expect(info).toMatch(/MAC: sha256/);
      expect(info).toMatch(/subject=.*hanako/);
    } finally {
      await agent.close();
    }
  });

  it('used, unknown and malformed links get a clear 410 page in both languages', async () => {
    const unknown = await redeem('A'.repeat(43));
    expect(unknown.status).toBe(410);
    expect(unknown.text).toContain('id="cert-download-gone"');
    const malformed = await h.get('/.kanmon/cert/download?token=nope', { headers: { 'accept-language': 'ja' } });
    expect(malformed.status).toBe(410);
    expect(malformed.text).toContain('このダウンロードリンクは使用できません');
    const missing = await h.get('/.kanmon/cert/download');
    expect(missing.status).toBe(410);
  });

  it('a cross-site POST (or one without Origin) is refused and does not use up the link', async () => {
    const { token } = await link();
    expect((await redeem(token, 'https://evil.example')).status).toBe(403);
    expect((await redeem(token, null)).status).toBe(403);
    expect((await redeem(token)).status).toBe(200);
  });

  it('a link to a certificate revoked since is gone', async () => {
    const { token, serial } = await link();
    await h.app.services.clientCertificates.revoke(serial);
    expect((await redeem(token)).status).toBe(410);
  });
});
