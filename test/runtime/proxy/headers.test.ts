import { describe, expect, it } from 'vitest';
import { downstreamResponseHeaders, downstreamUpgradeHeaders, upstreamRequestHeaders } from '../../../runtime/proxy/headers.js';
import { CONTEXT, names, values } from './harness.js';

const build = (raw: string[], upgrade?: string) =>
  upstreamRequestHeaders(raw, CONTEXT, { host: 'app.internal:8080', ...(upgrade ? { upgrade } : {}) });

describe('upstreamRequestHeaders', () => {
  it('strips every client-sent x-kanmon-* header whatever its case, including names the gateway does not set', () => {
    const { headers } = build([
      'X-Kanmon-User', 'mallory',
      'x-kanmon-groups', 'admins',
      'X-KANMON-AUTH', 'passkey+mtls',
      'X-Kanmon-Jwt', 'forged',
      'X-Kanmon-Future-Claim', 'x',
      'x-kanmon-user', 'second',
    ]);
    expect(values(headers, 'x-kanmon-user')).toEqual(['alice']);
    expect(values(headers, 'x-kanmon-groups')).toEqual(['staff,admins']);
    expect(values(headers, 'x-kanmon-auth')).toEqual(['passkey']);
    expect(values(headers, 'x-kanmon-jwt')).toEqual([CONTEXT.identityHeaders['X-Kanmon-Jwt']]);
    expect(values(headers, 'x-kanmon-future-claim')).toEqual([]);
  });

  it("removes Kanmon's own cookies (session, language) and keeps the application's, in order", () => {
    const { headers } = build([
      'Cookie', '__Host-kanmon-session=s3cret; theme=dark; kanmon-lang=ja; JSESSIONID=abc',
      'Cookie', 'kanmon-future=1;sid=42 ;  ; flag',
    ]);
    expect(values(headers, 'cookie')).toEqual(['theme=dark; JSESSIONID=abc', 'sid=42; flag']);
    expect(headers.join('\n')).not.toContain('s3cret');
  });

  it('drops a Cookie header that held only Kanmon cookies, and leaves one without any untouched', () => {
    expect(values(build(['Cookie', '__Host-kanmon-session=s3cret; kanmon-lang=en']).headers, 'cookie')).toEqual([]);
    // Names are case-sensitive (RFC 6265): these are the application's, not Kanmon's.
    const untouched = 'Kanmon-Lang=x; __host-kanmon-session=y;odd  spacing=1';
    expect(values(build(['cookie', untouched]).headers, 'cookie')).toEqual([untouched]);
  });

  it('strips identity headers spelled with underscores, which CGI-style backends read as dashes', () => {
    const { headers } = build(['X_Kanmon_User', 'mallory', 'x-kanmon_groups', 'admins', 'X_Forwarded_For', '6.6.6.6']);
    expect(names(headers).filter((n) => n.includes('_'))).toEqual([]);
  });

  it('strips client-certificate headers of every proxy dialect: the certificate is only what the TLS handshake carried', () => {
    const spoofed = [
      'X-SSL-Client-Cert', '-----BEGIN CERTIFICATE-----',
      'X-SSL-Client-Verify', 'SUCCESS',
      'X-SSL-Client-S-DN', 'CN=alice',
      'ssl-client-cert', 'x',
      'SSL_CLIENT_S_DN_CN', 'alice',
      'X-Client-Cert', 'x',
      'X-Client-Verify', 'SUCCESS',
      'X-Client-DN', 'CN=alice',
      'X-Forwarded-Client-Cert', 'Hash=abc;URI=urn:kanmon:user:1',
      'Client-Cert', ':MIIB:',
      'Client-Cert-Chain', ':MIIC:',
      'X-ARR-ClientCert', 'MIIB',
      'X-Amzn-Mtls-Clientcert-Leaf', 'MIIB',
    ];
    const { headers } = build(['Accept', 'text/html', ...spoofed, 'X-Client-Name', 'kept']);
    const sent = names(headers).map((n) => n.toLowerCase());
    for (let i = 0; i < spoofed.length; i += 2) expect(sent).not.toContain(spoofed[i]!.toLowerCase());
    // Names that merely start alike are not certificate headers.
    expect(values(headers, 'x-client-name')).toEqual(['kept']);
    expect(values(headers, 'accept')).toEqual(['text/html']);
  });

  it('replaces X-Forwarded-For with the address Kanmon saw instead of appending to a spoofable one', () => {
    const { headers } = build(['X-Forwarded-For', '6.6.6.6, 10.0.0.1', 'x-forwarded-for', '7.7.7.7', 'Forwarded', 'for=6.6.6.6', 'X-Real-IP', '6.6.6.6']);
    expect(values(headers, 'x-forwarded-for')).toEqual(['203.0.113.7']);
    expect(values(headers, 'x-real-ip')).toEqual(['203.0.113.7']);
    expect(values(headers, 'forwarded')).toEqual([]);
  });

  it('sets X-Forwarded-Proto and X-Forwarded-Host from the edge, not from the client', () => {
    const { headers } = build(['X-Forwarded-Proto', 'http', 'X-Forwarded-Host', 'evil.example', 'X-Forwarded-Port', '1']);
    expect(values(headers, 'x-forwarded-proto')).toEqual(['https']);
    expect(values(headers, 'x-forwarded-host')).toEqual(['groupware.example.jp']);
    expect(values(headers, 'x-forwarded-port')).toEqual([]);
  });

  it('drops hop-by-hop headers and every header the client listed in Connection', () => {
    const { headers } = build([
      'Connection', 'keep-alive, X-Hop-Secret',
      'connection', 'X-Other-Hop',
      'Keep-Alive', 'timeout=5',
      'TE', 'trailers',
      'Trailer', 'X-Checksum',
      'Upgrade', 'h2c',
      'Proxy-Authorization', 'Basic Zm9vOmJhcg==',
      'Proxy-Connection', 'keep-alive',
      'X-Hop-Secret', '1',
      'X-Other-Hop', '2',
      'Accept', 'text/html',
    ]);
    const sent = names(headers);
    for (const gone of ['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'x-hop-secret', 'x-other-hop']) {
      expect(sent).not.toContain(gone);
    }
    expect(values(headers, 'accept')).toEqual(['text/html']);
  });

  it("sends the upstream's host unless told to preserve the client's", () => {
    const { headers } = build(['Host', 'groupware.example.jp']);
    expect(values(headers, 'host')).toEqual(['app.internal:8080']);
  });

  it('notices a body from Content-Length or Transfer-Encoding, and drops a Content-Length that chunking overrides', () => {
    expect(build(['Content-Length', '0']).hasBody).toBe(false);
    expect(build([]).hasBody).toBe(false);
    expect(build(['Content-Length', '12']).hasBody).toBe(true);
    const chunked = build(['Transfer-Encoding', 'chunked', 'Content-Length', '12']);
    expect(chunked.hasBody).toBe(true);
    expect(names(chunked.headers)).not.toContain('content-length');
    expect(names(chunked.headers)).not.toContain('transfer-encoding');
  });

  it('drops Expect, which Node has already answered', () => {
    expect(names(build(['Expect', '100-continue', 'Content-Length', '3']).headers)).not.toContain('expect');
  });

  it('keeps the Upgrade value and re-announces it for an upgrade request', () => {
    const { headers } = build(['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k', 'Sec-WebSocket-Version', '13'], 'websocket');
    expect(values(headers, 'connection')).toEqual(['Upgrade']);
    expect(values(headers, 'upgrade')).toEqual(['websocket']);
    expect(values(headers, 'sec-websocket-key')).toEqual(['k']);
  });
});

describe('downstreamResponseHeaders', () => {
  it('drops hop-by-hop headers and those the upstream listed in Connection, keeping repeats', () => {
    const out = downstreamResponseHeaders([
      Buffer.from('Connection'), Buffer.from('close, X-Internal'),
      Buffer.from('X-Internal'), Buffer.from('secret'),
      Buffer.from('Keep-Alive'), Buffer.from('timeout=5'),
      Buffer.from('Transfer-Encoding'), Buffer.from('chunked'),
      Buffer.from('Proxy-Authenticate'), Buffer.from('Basic'),
      Buffer.from('Set-Cookie'), Buffer.from('a=1; Path=/'),
      Buffer.from('Set-Cookie'), Buffer.from('b=2; Path=/'),
      Buffer.from('Content-Type'), Buffer.from('text/plain'),
    ]);
    expect(out).toEqual(['Set-Cookie', 'a=1; Path=/', 'Set-Cookie', 'b=2; Path=/', 'Content-Type', 'text/plain']);
  });

  it('passes header bytes through unchanged (latin1 round trip)', () => {
    const value = Buffer.from([0x66, 0xe9, 0x74, 0xe9]);
    const out = downstreamResponseHeaders([Buffer.from('X-Name'), value]);
    expect(Buffer.from(out[1]!, 'latin1')).toEqual(value);
  });

  it('restores Connection and Upgrade on a 101 answer', () => {
    const out = downstreamUpgradeHeaders(['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 'abc'], 'websocket');
    expect(values(out, 'connection')).toEqual(['Upgrade']);
    expect(values(out, 'upgrade')).toEqual(['websocket']);
    expect(values(out, 'sec-websocket-accept')).toEqual(['abc']);
  });
});
