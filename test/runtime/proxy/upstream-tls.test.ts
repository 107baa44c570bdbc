/**
 * TLS toward https upstreams, configured per route: verification against the system CAs or an
 * internal CA file, SNI, a client certificate Kanmon presents, and the explicit, logged opt-out.
 */
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../runtime/config/schema.js';
import { UpstreamTlsFileError, createRouteForwarder } from '../../../runtime/proxy/route-forwarder.js';
import { closeServer, listen, send } from './harness.js';
import { routeGatewaysPerTest, captureLogs, routeFrom, type RouteGateway } from './route-harness.js';
import { createTestPki, type Issued, type TestCa, type TestPki } from './test-pki.js';

let pki: TestPki;
let corpCa: TestCa;
let otherCa: TestCa;
let clientCa: TestCa;
let serverForIp: Issued;
let serverForName: Issued;
let foreignServer: Issued;
let gatewayClient: Issued;
let selfSigned: Issued;

beforeAll(() => {
  pki = createTestPki();
  corpCa = pki.createCa('corp-ca', '/O=Example Corp/CN=Example Corp Internal CA');
  otherCa = pki.createCa('other-ca', '/CN=Some Other CA');
  clientCa = pki.createCa('client-ca', '/CN=Upstream Client CA');
  serverForIp = corpCa.issue('server-ip', { cn: '127.0.0.1', san: ['IP:127.0.0.1'], usage: 'serverAuth' });
  serverForName = corpCa.issue('server-name', { cn: 'groupware.corp.internal', san: ['DNS:groupware.corp.internal'], usage: 'serverAuth' });
  foreignServer = otherCa.issue('server-foreign', { cn: '127.0.0.1', san: ['IP:127.0.0.1'], usage: 'serverAuth' });
  gatewayClient = clientCa.issue('kanmon-client', { cn: 'kanmon-gateway', usage: 'clientAuth' });
  selfSigned = pki.selfSigned('self-signed', ['IP:127.0.0.1']);
});
afterAll(() => pki.remove());

const { cleanups, gateway } = routeGatewaysPerTest();

interface Seen {
  servername: string | false | null | undefined;
  peerCn: string | string[] | undefined;
}

/** An https upstream answering "secure ok" and recording the SNI and client certificate of each request. */
async function httpsUpstream(identity: Issued, opts: { requireClientCertFrom?: TestCa } = {}): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = https.createServer(
    {
      cert: identity.cert,
      key: identity.key,
      ...(opts.requireClientCertFrom ? { requestCert: true, rejectUnauthorized: true, ca: opts.requireClientCertFrom.caPem } : {}),
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      seen.push({ servername: socket.servername, peerCn: peer && 'subject' in peer ? peer.subject?.CN : undefined });
      res.end('secure ok');
    },
  );
  const port = await listen(server);
  cleanups.push(() => closeServer(server));
  return { port, seen };
}

function upstreamErrors(gw: RouteGateway): Record<string, unknown>[] {
  return gw.logs.filter((l) => l.msg === 'upstream error');
}

describe('upstream TLS: verification', () => {
  it('verifies an upstream against the internal CA named in caFile', async () => {
    const up = await httpsUpstream(serverForIp);
    const gw = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { caFile: corpCa.caFile } });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe('secure ok');
  });

  it('refuses an internally signed upstream by default, since only the system CAs are trusted, as a 502 that names nothing', async () => {
    const up = await httpsUpstream(serverForIp);
    const gw = await gateway({ upstream: `https://127.0.0.1:${up.port}` });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(502);
    expect(up.seen).toEqual([]);
    const text = reply.body.toString();
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toContain(String(up.port));
    expect(text).not.toMatch(/certificate|UNABLE_TO|SELF_SIGNED|verify/i);
    expect(upstreamErrors(gw)).toMatchObject([{ kind: 'connect', route: 'app' }]);
  });

  it('refuses an upstream whose certificate comes from another CA than the configured one', async () => {
    const up = await httpsUpstream(foreignServer);
    const gw = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { caFile: corpCa.caFile } });
    expect((await send(`${gw.url}/`)).status).toBe(502);
    expect(up.seen).toEqual([]);
  });

  it('refuses a self-signed upstream unless insecureSkipVerify is set, which logs a warning at every start', async () => {
    const up = await httpsUpstream(selfSigned);
    const strict = await gateway({ upstream: `https://127.0.0.1:${up.port}` });
    expect((await send(`${strict.url}/`)).status).toBe(502);
    expect(strict.logs.filter((l) => l.level === 40 && String(l.msg).includes('insecureSkipVerify'))).toEqual([]);

    const lax = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { insecureSkipVerify: true } });
    expect((await send(`${lax.url}/`)).status).toBe(200);
    const warnings = lax.logs.filter((l) => l.level === 40 && String(l.msg).includes('insecureSkipVerify'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ route: 'app' });

    // Every start warns again: building the route's forwarder is what a start does.
    const { logger, lines } = captureLogs();
    const route = routeFrom({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { insecureSkipVerify: true } });
    for (let i = 0; i < 2; i++) await createRouteForwarder(route, { upstream: route.upstream, logger }).close();
    expect(lines.filter((l) => String(l.msg).includes('insecureSkipVerify'))).toHaveLength(2);
  });
});

describe('upstream TLS: SNI', () => {
  it("sends the upstream URL's host name as SNI by default", async () => {
    const localhostCert = corpCa.issue('server-localhost', { cn: 'localhost', san: ['DNS:localhost'], usage: 'serverAuth' });
    const up = await httpsUpstream(localhostCert);
    const gw = await gateway({ upstream: `https://localhost:${up.port}`, upstreamTls: { caFile: corpCa.caFile } });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(200);
    expect(up.seen).toEqual([{ servername: 'localhost', peerCn: undefined }]);
  });

  it('sends the configured servername and checks the certificate against it, for an upstream reached by address', async () => {
    const up = await httpsUpstream(serverForName);
    const named = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { caFile: corpCa.caFile, servername: 'groupware.corp.internal' } });
    expect((await send(`${named.url}/`)).status).toBe(200);
    expect(up.seen.map((s) => s.servername)).toEqual(['groupware.corp.internal']);

    // The same certificate does not name the address, so without the servername it is refused.
    const unnamed = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { caFile: corpCa.caFile } });
    expect((await send(`${unnamed.url}/`)).status).toBe(502);
    expect(up.seen).toHaveLength(1);
  });
});

describe('upstream TLS: client certificate toward the upstream', () => {
  it('presents the configured client certificate to an upstream that requires one', async () => {
    const up = await httpsUpstream(serverForIp, { requireClientCertFrom: clientCa });
    const gw = await gateway({
      upstream: `https://127.0.0.1:${up.port}`,
      upstreamTls: { caFile: corpCa.caFile, clientCertFile: gatewayClient.certFile, clientKeyFile: gatewayClient.keyFile },
    });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(200);
    expect(up.seen).toEqual([{ servername: false, peerCn: 'kanmon-gateway' }]);
  });

  it('gets 502 from an upstream that requires a client certificate when none is configured', async () => {
    const up = await httpsUpstream(serverForIp, { requireClientCertFrom: clientCa });
    const gw = await gateway({ upstream: `https://127.0.0.1:${up.port}`, upstreamTls: { caFile: corpCa.caFile } });
    const reply = await send(`${gw.url}/`);
    expect(reply.status).toBe(502);
    expect(up.seen).toEqual([]);
  });
});

describe('upstream TLS: configuration', () => {
  it('reports a TLS file that cannot be read at start-up, naming the route and option', () => {
    const route = routeFrom({ upstream: 'https://10.0.0.5:8443', upstreamTls: { caFile: `${pki.dir}/missing.pem` } });
    const { logger } = captureLogs();
    expect(() => createRouteForwarder(route, { upstream: route.upstream, logger })).toThrow(UpstreamTlsFileError);
    expect(() => createRouteForwarder(route, { upstream: route.upstream, logger })).toThrow(
      `routes: route "app" option 'upstreamTls.caFile' must name a readable PEM file, got "${pki.dir}/missing.pem" (ENOENT)`,
    );
  });

  it('refuses upstreamTls on an http upstream, half a client key pair, and insecureSkipVerify with a CA file, all at once', () => {
    const r = validateConfig({
      routes: [
        { id: 'a', match: { pathPrefix: '/a' }, upstream: 'http://10.0.0.5:8080', upstreamTls: { caFile: '/etc/ca.pem' } },
        { id: 'b', match: { pathPrefix: '/b' }, upstream: 'https://10.0.0.6', upstreamTls: { clientCertFile: '/etc/c.pem' } },
        { id: 'c', match: { pathPrefix: '/c' }, upstream: 'https://10.0.0.7', upstreamTls: { caFile: '/etc/ca.pem', insecureSkipVerify: true } },
        { id: 'd', match: { pathPrefix: '/d' }, upstream: 'https://10.0.0.8', upstreamTls: { servername: 'not a name', verify: false } },
      ],
    });
    expect(r.ok ? [] : r.errors).toEqual([
      `routes[0]: option 'upstreamTls' applies only to an https:// upstream, got upstream "http://10.0.0.5:8080"`,
      `routes[1].upstreamTls: options 'clientCertFile' and 'clientKeyFile' must be set together, got only clientCertFile`,
      `routes[2].upstreamTls: option 'insecureSkipVerify' must not be combined with 'caFile' (it would ignore it), got true`,
      `routes[3].upstreamTls: option 'verify' is not known (known: caFile, servername, clientCertFile, clientKeyFile, insecureSkipVerify)`,
      `routes[3].upstreamTls: option 'servername' must be a host name, got "not a name"`,
    ]);
  });
});
