import { connect as tcpConnect } from 'node:net';
import { connect } from 'node:tls';
import { buildProxyV2Header } from '../../../runtime/net/proxy-protocol.js';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../../runtime/store/types.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { caSignedOutsideStore, curl, eventually, foreignCertificates, sClient, Scratch, startEchoUpstream, TlsClient, type ClientIdentity } from './mtls-support.js';
import { openssl } from './support.js';

/**
 * The TLS listener with client certificates from Kanmon's CA (RFC 8446 §4.3.2, §4.4.2), against
 * a real node: what the handshake asks for, what each kind of certificate proves per route, and
 * that nothing but the handshake's own certificate counts.
 */
describe('mTLS listener, policy enforcement', () => {
  let h: KanmonHarness;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let scratch: Scratch;
  let alice: User;
  let bob: User;
  let aliceCookie: string;
  let aliceP12: { pfx: Buffer; passphrase: string };
  let bobP12: { pfx: Buffer; passphrase: string };
  let kioskP12: { pfx: Buffer; passphrase: string };
  let aliceSerial: string;
  const clients: TlsClient[] = [];
  const client = (identity: ClientIdentity) => {
    const c = new TlsClient(h, identity);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    scratch = new Scratch();
    h = await KanmonHarness.start({
      routes: [
        { id: 'payroll', match: { pathPrefix: '/payroll' }, upstream: upstream.url, policy: { factors: [['passkey', 'mtls']] } },
        { id: 'kiosk', match: { pathPrefix: '/kiosk' }, upstream: upstream.url, policy: { factors: [['mtls']] } },
        { id: 'finance-kiosk', match: { pathPrefix: '/finance-kiosk' }, upstream: upstream.url, policy: { factors: [['mtls']], allowGroups: ['finance'] } },
        { id: 'wiki', match: { pathPrefix: '/' }, upstream: upstream.url },
      ],
      clientCertificates: { statusCacheSeconds: 1 },
    });
    const users = h.app.services.users;
    alice = await users.addUser({ username: 'alice' });
    bob = await users.addUser({ username: 'bob' });
    aliceCookie = await h.sessionCookie(alice);
    const certs = h.app.services.clientCertificates;
    const p12 = async (issued: Awaited<ReturnType<typeof certs.issueShared>>) => ({
      pfx: Buffer.from((await certs.download(issued.certificate.serial)).pkcs12),
      passphrase: issued.password,
    });
    const aliceIssued = await certs.issueForUser(alice, { deviceLabel: 'laptop' });
    aliceSerial = aliceIssued.certificate.serial;
    aliceP12 = await p12(aliceIssued);
    bobP12 = await p12(await certs.issueForUser(bob, { deviceLabel: 'laptop' }));
    kioskP12 = await p12(await certs.issueShared('kiosk-1'));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await h?.close();
    await upstream?.close();
    scratch?.close();
  });

  it('asks every handshake for a certificate from Kanmon’s CA, and completes without one', async () => {
    // The CertificateRequest names the acceptable CAs (RFC 8446 §4.2.4); policy mode lets a client without one finish.
    const out = await sClient(h);
    expect(out).toMatch(/Acceptable client certificate CA names[\s\S]*CN ?= ?Kanmon Client CA/);
    expect(out).toMatch(/Verify return code: 0 \(ok\)/);
    expect(out).not.toMatch(/alert/i);
    // With the certificate (converted to PEM by openssl), the handshake carries it.
    const pem = scratch.file('alice-hs.pem', await openssl('pkcs12', '-in', scratch.file('alice-hs.p12', aliceP12.pfx), '-passin', `pass:${aliceP12.passphrase}`, '-nodes'));
    expect(await sClient(h, ['-cert', pem, '-key', pem])).toMatch(/Verify return code: 0 \(ok\)/);
  });

  it('passkey+mtls: a valid certificate of the signed-in user lets the request through, naming both factors', async () => {
    const res = await client(aliceP12).get('/payroll/report', { cookie: aliceCookie });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.text).headers;
    expect(seen['x-kanmon-user']).toBe('alice');
    expect(seen['x-kanmon-auth']).toBe('passkey,mtls');
  });

  it('passkey+mtls without a certificate: the page says a company device certificate is needed and how to get one', async () => {
    const res = await client(undefined).get('/payroll/report', { cookie: aliceCookie, headers: { 'accept-language': 'ja' } });
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="no-certificate"');
    expect(res.text).toContain('会社の端末証明書が必要です');
    expect(res.text).toContain('管理者に依頼');
    const en = await client(undefined).get('/payroll/report', { cookie: aliceCookie, headers: { 'accept-language': 'en' } });
    expect(en.text).toContain('A company device certificate is needed');
  });

  it('another user’s certificate does not count, and is audited', async () => {
    const res = await client(bobP12).get('/payroll/report', { cookie: aliceCookie });
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="certificate-other-user"');
    const ok = await eventually(async () => {
      const events = await h.app.store.audit.list({ limit: 50 });
      return events.some((e) => e.type === 'cert.present' && e.reason === 'certificate-other-user' && e.userId === alice.id);
    });
    expect(ok).toBe(true);
  });

  it('a shared certificate proves the device on a kiosk route without a session, named shared:<label>', async () => {
    const res = await client(kioskP12).get('/kiosk/board');
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.text).headers;
    expect(seen['x-kanmon-user']).toBe('shared:kiosk-1');
    expect(seen['x-kanmon-auth']).toBe('mtls');
    expect(seen['x-kanmon-jwt']).toMatch(/^ey/);
  });

  it('a user certificate on a kiosk route names its user', async () => {
    const res = await client(aliceP12).get('/kiosk/board');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).headers['x-kanmon-user']).toBe('alice');
  });

  it('a shared certificate on a route bound to a group of users is refused', async () => {
    const res = await client(kioskP12).get('/finance-kiosk/');
    expect(res.status).toBe(403);
    expect(res.text).not.toContain('certificate-required');
  });

  it('a kiosk route without any certificate shows the certificate page, not a login', async () => {
    const res = await client(undefined).get('/kiosk/board');
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="no-certificate"');
  });

  it('an expired certificate of Kanmon’s CA is refused', async () => {
    const expired = await caSignedOutsideStore(h, alice.id, new Date(Date.now() - 10 * 86_400_000), new Date(Date.now() - 86_400_000));
    const res = await client(expired).get('/kiosk/board');
    expect(res.status).toBe(403);
    expect(res.text).toContain('data-reason="certificate-invalid"');
  });

  it('a certificate from another CA, and a self-signed one, prove nothing', async () => {
    const foreign = await foreignCertificates(scratch);
    for (const identity of [{ cert: foreign.otherCa.cert, key: foreign.otherCa.key }, foreign.selfSigned]) {
      const res = await client(identity).get('/payroll/x', { cookie: aliceCookie });
      expect(res.status).toBe(403);
      expect(res.text).toContain('data-reason="certificate-invalid"');
    }
  });

  it('certificate headers sent by the client are never trusted, and never reach the backend', async () => {
    const pem = readFileSync(h.app.devCaCertPath!, 'utf8').replace(/\n/g, '');
    const spoof = {
      'x-ssl-client-cert': pem,
      'x-ssl-client-verify': 'SUCCESS',
      'x-client-cert': pem,
      'x-forwarded-client-cert': `Hash=00;URI=urn:kanmon:user:${alice.id}`,
      'ssl-client-s-dn': 'CN=alice',
      'client-cert': `:${Buffer.from('x').toString('base64')}:`,
    };
    const refused = await client(undefined).get('/kiosk/board', { headers: spoof });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('data-reason="no-certificate"');
    const passed = await client(undefined).get('/wiki', { cookie: aliceCookie, headers: spoof });
    expect(passed.status).toBe(200);
    const seen = Object.keys(JSON.parse(passed.text).headers);
    for (const name of Object.keys(spoof)) expect(seen).not.toContain(name);
  });

  it('curl with the PKCS#12 file (and with PEM converted by openssl) gets through; without it gets the page', async () => {
    const p12 = scratch.file('kiosk.p12', kioskP12.pfx);
    const ok = await curl(h, '/kiosk/board', ['--cert-type', 'P12', '--cert', `${p12}:${kioskP12.passphrase}`]);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).headers['x-kanmon-user']).toBe('shared:kiosk-1');
    const pem = scratch.file('kiosk.pem', await openssl('pkcs12', '-in', p12, '-passin', `pass:${kioskP12.passphrase}`, '-nodes'));
    expect((await curl(h, '/kiosk/board', ['--cert', pem])).status).toBe(200);
    const none = await curl(h, '/kiosk/board');
    expect(none.status).toBe(403);
    expect(none.body).toContain('data-reason="no-certificate"');
  });

  it('a resumed TLS session keeps the certificate of its first handshake, which is checked again on the new connection', async () => {
    const shared = await h.app.services.clientCertificates.issueShared('kiosk-resume');
    const pfx = Buffer.from((await h.app.services.clientCertificates.download(shared.certificate.serial)).pkcs12);
    const first = await rawGet(h, '/kiosk/board', { pfx, passphrase: shared.password });
    expect(first.answer).toMatch(/^HTTP\/1.1 200/);
    expect(first.session).toBeDefined();
    // No certificate offered this time: the resumed session (RFC 8446 §2.2) carries the first one.
    const resumed = await rawGet(h, '/kiosk/board', undefined, first.session);
    expect(resumed.reused).toBe(true);
    expect(resumed.answer).toMatch(/^HTTP\/1.1 200/);
    expect(resumed.answer).toContain('"x-kanmon-user":"shared:kiosk-resume"');
    await h.app.services.clientCertificates.revoke(shared.certificate.serial);
    const refused = await eventually(async () => (await rawGet(h, '/kiosk/board', undefined, first.session)).answer.startsWith('HTTP/1.1 403'));
    expect(refused).toBe(true);
  });

  it('a revoked certificate is refused within the status cache bound, on a kept-alive connection too', async () => {
    const c = client(aliceP12);
    expect((await c.get('/kiosk/board')).status).toBe(200);
    await h.app.services.clientCertificates.revoke(aliceSerial, { reason: 'keyCompromise' });
    // statusCacheSeconds is 1: poll for at most 6 s, over the same pooled connection.
    const refused = await eventually(async () => (await c.get('/kiosk/board')).status === 403);
    expect(refused).toBe(true);
    const fresh = await client(aliceP12).get('/kiosk/board');
    expect(fresh.status).toBe(403);
    expect(fresh.text).toContain('data-reason="certificate-invalid"');
    // Presenting it again is audited, with the certificate named.
    const audited = await eventually(async () => (await h.app.store.audit.list({ limit: 50 })).some((e) => e.type === 'cert.present' && e.reason === 'revoked' && e.details?.serial === aliceSerial));
    expect(audited).toBe(true);
  });
});

/** One request on a fresh TLS connection, optionally resuming `session`; the answer, the session ticket and whether it was reused. */
function rawGet(h: KanmonHarness, path: string, identity: ClientIdentity, session?: Buffer): Promise<{ answer: string; session?: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let reused = false;
    const socket = connect({ host: '127.0.0.1', port: h.app.port, servername: 'localhost', ca: readFileSync(h.app.devCaCertPath!), ...(identity ?? {}), ...(session ? { session } : {}) }, () => {
      reused = socket.isSessionReused();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${h.app.port}\r\nAccept: text/html\r\nConnection: close\r\n\r\n`);
    });
    socket.on('session', (s: Buffer) => (ticket = s));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve({ answer: data, reused, ...(ticket ? { session: ticket } : {}) }));
  });
}

describe('mTLS listener, reject-connection enforcement', () => {
  let h: KanmonHarness;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let scratch: Scratch;
  let p12: { pfx: Buffer; passphrase: string };
  let serial: string;
  let foreign: Awaited<ReturnType<typeof foreignCertificates>>;

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    scratch = new Scratch();
    foreign = await foreignCertificates(scratch);
    h = await KanmonHarness.start({
      routes: [{ id: 'kiosk', match: { pathPrefix: '/' }, upstream: upstream.url, policy: { factors: [['mtls']] } }],
      clientCertificates: { statusCacheSeconds: 1 },
      mtls: { enforcement: 'reject-connection', extraTrustedCaFiles: [scratch.file('extra-ca.pem', foreign.otherCa.caCert)] },
    });
    const certs = h.app.services.clientCertificates;
    const issued = await certs.issueShared('kiosk-2');
    serial = issued.certificate.serial;
    p12 = { pfx: Buffer.from((await certs.download(serial)).pkcs12), passphrase: issued.password };
  });

  afterAll(async () => {
    await h?.close();
    await upstream?.close();
    scratch?.close();
  });

  /** Completes a handshake and one request on a fresh connection; resolves 'refused' when the server ends it instead. */
  function handshake(identity: ClientIdentity): Promise<'served' | 'refused'> {
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: h.app.port, servername: 'localhost', ca: readFileSync(h.app.devCaCertPath!), ...(identity ?? {}) }, () => {
        socket.write(`GET / HTTP/1.1\r\nHost: localhost:${h.app.port}\r\nConnection: close\r\n\r\n`);
      });
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('error', () => resolve('refused'));
      socket.on('close', () => resolve(data.startsWith('HTTP/1.1 200') ? 'served' : 'refused'));
    });
  }

  it('serves a valid certificate of Kanmon’s CA', async () => {
    expect(await handshake(p12)).toBe('served');
  });

  it('fails the handshake without a certificate (openssl s_client sees the alert)', async () => {
    expect(await handshake(undefined)).toBe('refused');
    // TLS 1.3: the client has finished before the server judges its (missing) certificate, so
    // the alert may arrive after s_client has gone; what matters is that nothing is served.
    const out = await sClient(h, [], `GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    expect(out).not.toContain('HTTP/1.1');
    // TLS 1.2 refuses inside the handshake itself (RFC 5246 §7.4.6).
    const tls12 = await sClient(h, ['-tls1_2']);
    expect(tls12).toMatch(/alert handshake failure/i);
    expect(tls12).not.toMatch(/Verify return code: 0 \(ok\)[\s\S]*Protocol *: TLSv1.2/);
  });

  it('fails the handshake of a self-signed certificate, and lets an extra trusted CA’s certificate connect (routes still decide)', async () => {
    expect(await handshake(foreign.selfSigned)).toBe('refused');
    // It chains to an extra trusted CA, so the connection stands, but it proves no 'mtls' for a route.
    const answer = await new TlsClient(h, { cert: foreign.otherCa.cert, key: foreign.otherCa.key }).get('/');
    expect(answer.status).toBe(403);
  });

  it('refuses the connection of a revoked certificate within the cache bound', async () => {
    await h.app.services.clientCertificates.revoke(serial);
    expect(await eventually(async () => (await handshake(p12)) === 'refused')).toBe(true);
    const events = await h.app.store.audit.list({ limit: 50 });
    expect(events.some((e) => e.type === 'cert.present' && e.reason === 'revoked' && e.details?.enforcement === 'reject-connection')).toBe(true);
    const withCurl = await curl(h, '/', ['--cert-type', 'P12', '--cert', `${scratch.file('k2.p12', p12.pfx)}:${p12.passphrase}`]).catch((e: Error) => ({ status: 0, body: e.message }));
    expect(withCurl.status).toBe(0);
  });
});

describe('mTLS listener behind a load balancer (PROXY protocol v2)', () => {
  let h: KanmonHarness;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let p12: { pfx: Buffer; passphrase: string };

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    h = await KanmonHarness.start({
      server: { proxyProtocol: { enabled: true, allowedNetworks: ['127.0.0.0/8'] } },
      routes: [{ id: 'kiosk', match: { pathPrefix: '/' }, upstream: upstream.url, policy: { factors: [['mtls']] } }],
    });
    const certs = h.app.services.clientCertificates;
    const issued = await certs.issueShared('lobby');
    p12 = { pfx: Buffer.from((await certs.download(issued.certificate.serial)).pkcs12), passphrase: issued.password };
  });

  afterAll(async () => {
    await h?.close();
    await upstream?.close();
  });

  /** As the NLB does: a PROXY v2 header first, then the client's own TLS, here with raw HTTP on top. */
  function viaLoadBalancer(identity: ClientIdentity, extraHeaders = ''): Promise<string> {
    return new Promise((resolve, reject) => {
      const tcp = tcpConnect({ host: '127.0.0.1', port: h.app.port }, () => {
        tcp.write(buildProxyV2Header({ source: { address: '203.0.113.7', port: 50000 }, destination: { address: '127.0.0.1', port: h.app.port } }));
        const tls = connect({ socket: tcp, servername: 'localhost', ca: readFileSync(h.app.devCaCertPath!), ...(identity ?? {}) }, () => {
          tls.write(`GET /board HTTP/1.1\r\nHost: localhost:${h.app.port}\r\nAccept: text/html\r\n${extraHeaders}Connection: close\r\n\r\n`);
        });
        let data = '';
        tls.on('data', (chunk) => (data += chunk.toString()));
        tls.on('error', reject);
        tls.on('close', () => resolve(data));
      });
      tcp.on('error', reject);
    });
  }

  it('the certificate is the one the TLS handshake behind the PROXY header carried', async () => {
    const answer = await viaLoadBalancer(p12);
    expect(answer).toMatch(/^HTTP\/1.1 200/);
    const seen = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).headers;
    expect(seen['x-kanmon-user']).toBe('shared:lobby');
    expect(seen['x-forwarded-for']).toBe('203.0.113.7');
  });

  it('certificate headers claimed by the client count for nothing there either', async () => {
    const pem = (await h.app.services.ca.certificatePem()).replace(/\n/g, '');
    const answer = await viaLoadBalancer(undefined, `X-SSL-Client-Cert: ${pem}\r\nX-SSL-Client-Verify: SUCCESS\r\nX-Forwarded-Client-Cert: URI=urn:x\r\n`);
    expect(answer).toMatch(/^HTTP\/1.1 403/);
    expect(answer).toContain('data-reason="no-certificate"');
  });
});
