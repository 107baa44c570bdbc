/**
 * Rewriting of everything but the body, each rule kind on its own, through the real forwarder
 * against a real upstream: paths, request headers, response headers, redirects, cookies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { validateRoutes } from '../../../runtime/config/routes.js';
import { createRouteRewriter } from '../../../runtime/rewrite/index.js';
import { answer, get, PUBLIC_ORIGIN, setup, type Setup } from './harness.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

function receivedHeader(index: number, name: string): string[] {
  const raw = s!.received[index]!.rawHeaders;
  return raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name ? [raw[i + 1]!] : []));
}

describe('no rules', () => {
  it('a route without a rewrite section gets no rewriter, so it takes the plain path', () => {
    const errors: string[] = [];
    const [route] = validateRoutes([{ id: 'plain', upstream: 'http://127.0.0.1:1' }], errors);
    expect(errors).toEqual([]);
    expect(createRouteRewriter(route!, { publicOrigin: PUBLIC_ORIGIN, upstreamOrigin: 'http://127.0.0.1:1', onRuleError: () => undefined })).toBeUndefined();
  });
});

describe('paths', () => {
  it('strips the public prefix and adds the upstream one, keeping the query', async () => {
    s = await setup({ path: { stripPrefix: '/wiki', addPrefix: '/app' } });
    s.answers.set('/app/page', answer(200, { 'content-type': 'text/plain' }, 'ok'));
    const res = await get(`${s.proxyUrl}/wiki/page?x=1&y=%2F`);
    expect(res.status).toBe(200);
    expect(s.received[0]!.url).toBe('/app/page?x=1&y=%2F');
  });

  it('the bare prefix maps to the upstream root, and a path outside the prefix is only given the added prefix', async () => {
    s = await setup({ path: { stripPrefix: '/wiki', addPrefix: '/app' } });
    s.answers.set('/app/', answer(200, {}, 'root'));
    s.answers.set('/app/wikipedia', answer(200, {}, 'other'));
    await get(`${s.proxyUrl}/wiki`);
    await get(`${s.proxyUrl}/wikipedia`);
    expect(s.received.map((r) => r.url)).toEqual(['/app/', '/app/wikipedia']);
  });

  it('root-relative redirects under the added prefix come back under the public prefix', async () => {
    s = await setup({ path: { stripPrefix: '/wiki', addPrefix: '/app' } });
    s.answers.set('/app/edit', answer(302, { location: '/app/login?next=%2Fapp%2Fedit' }));
    const res = await get(`${s.proxyUrl}/wiki/edit`);
    expect(res.header('location')).toBe('/wiki/login?next=%2Fapp%2Fedit');
  });
});

describe('request headers', () => {
  it('set, remove and replace by regex apply in the listed order', async () => {
    s = await setup({
      requestHeaders: [
        { set: 'X-App-Tenant', value: 'corp' },
        { remove: 'X-Debug' },
        { id: 'origin-to-internal', replace: 'Origin', pattern: '^https://gate\\.example\\.jp', with: 'http://intranet.corp.local' },
        { replace: 'X-App-Tenant', pattern: 'corp', with: 'corp-jp' },
      ],
    });
    s.answers.set('/form', answer(200, {}, 'ok'));
    await get(`${s.proxyUrl}/form`, { headers: { 'X-App-Tenant': 'spoofed', 'X-Debug': '1', Origin: 'https://gate.example.jp' } });
    expect(receivedHeader(0, 'x-app-tenant')).toEqual(['corp-jp']);
    expect(receivedHeader(0, 'x-debug')).toEqual([]);
    expect(receivedHeader(0, 'origin')).toEqual(['http://intranet.corp.local']);
    // Kanmon's own assertions are untouched.
    expect(receivedHeader(0, 'x-kanmon-user')).toEqual(['alice']);
  });

  it('a regex that backtracks catastrophically is abandoned: the header passes unchanged and the rule is reported', async () => {
    // (a|a)* passes the static check (no quantifier inside the group) but is exponential on "aaaa…c".
    s = await setup({ requestHeaders: [{ id: 'slow', replace: 'X-Token', pattern: '^(a|a)*b$', with: 'x' }], body: { regexTimeoutMs: 50 } });
    s.answers.set('/', answer(200, {}, 'ok'));
    const value = `${'a'.repeat(40)}c`;
    const res = await get(`${s.proxyUrl}/`, { headers: { 'X-Token': value } });
    expect(res.status).toBe(200);
    expect(receivedHeader(0, 'x-token')).toEqual([value]);
    expect(s.errors).toHaveLength(1);
    expect(s.errors[0]!.ruleId).toBe('slow');
    expect(s.errors[0]!.message).toMatch(/longer than 50 ms/);
  });
});

describe('response headers', () => {
  it('set replaces every header of that name and remove drops them', async () => {
    s = await setup({ responseHeaders: [{ set: 'X-Frame-Options', value: 'DENY' }, { remove: 'Server' }, { remove: 'X-Powered-By' }] });
    s.answers.set('/', answer(200, { 'x-frame-options': ['ALLOWALL', 'SAMEORIGIN'], server: 'Apache/2.2.3', 'x-powered-by': 'PHP/5.2' }, 'ok'));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.all('x-frame-options')).toEqual(['DENY']);
    expect(res.all('server')).toEqual([]);
    expect(res.all('x-powered-by')).toEqual([]);
  });
});

describe('redirects', () => {
  it("Location, Content-Location and Refresh naming the upstream's own URL become public", async () => {
    s = await setup({});
    const own = s.upstreamUrl;
    s.answers.set('/a', answer(302, { location: `${own}/login?next=/a#top` }));
    s.answers.set('/b', answer(200, { 'content-location': `${own}/b.ja.html`, refresh: `5; url=${own}/next` }, 'ok'));
    const a = await get(`${s.proxyUrl}/a`);
    expect(a.header('location')).toBe(`${PUBLIC_ORIGIN}/login?next=/a#top`);
    const b = await get(`${s.proxyUrl}/b`);
    expect(b.header('content-location')).toBe(`${PUBLIC_ORIGIN}/b.ja.html`);
    expect(b.header('refresh')).toBe(`5; url=${PUBLIC_ORIGIN}/next`);
  });

  it('listed internal URLs are rewritten too, host case and default port ignored; other sites are left alone', async () => {
    s = await setup({ internalUrls: ['http://intranet.corp.local', 'https://portal.corp.local:8443'] });
    s.answers.set('/a', answer(302, { location: 'http://INTRANET.corp.local:80/top' }));
    s.answers.set('/b', answer(302, { location: 'https://portal.corp.local:8443' }));
    s.answers.set('/c', answer(302, { location: 'https://login.microsoftonline.com/x' }));
    s.answers.set('/d', answer(302, { location: 'http://intranet.corp.local.evil.example/x' }));
    expect((await get(`${s.proxyUrl}/a`)).header('location')).toBe(`${PUBLIC_ORIGIN}/top`);
    expect((await get(`${s.proxyUrl}/b`)).header('location')).toBe(`${PUBLIC_ORIGIN}/`);
    expect((await get(`${s.proxyUrl}/c`)).header('location')).toBe('https://login.microsoftonline.com/x');
    expect((await get(`${s.proxyUrl}/d`)).header('location')).toBe('http://intranet.corp.local.evil.example/x');
  });

  it('an upstream with a base path maps URLs under it to the public root', async () => {
    s = await setup({}, { upstreamPath: '/portal' });
    s.answers.set('/portal/a', answer(302, { location: `${s.upstreamUrl}/home` }));
    expect((await get(`${s.proxyUrl}/a`)).header('location')).toBe(`${PUBLIC_ORIGIN}/home`);
  });

  it('Refresh without a URL, with a quoted URL, or hostile and long is handled without harm', async () => {
    s = await setup({});
    const hostile = `1${' '.repeat(8000)};${' '.repeat(8000)}x`;
    s.answers.set('/a', answer(200, { refresh: '5' }, 'ok'));
    s.answers.set('/b', answer(200, { refresh: `0;URL='${s.upstreamUrl}/q'` }, 'ok'));
    s.answers.set('/c', answer(200, { refresh: hostile }, 'ok'));
    expect((await get(`${s.proxyUrl}/a`)).header('refresh')).toBe('5');
    expect((await get(`${s.proxyUrl}/b`)).header('refresh')).toBe(`0;URL='${PUBLIC_ORIGIN}/q'`);
    expect((await get(`${s.proxyUrl}/c`)).header('refresh')).toBe(hostile);
    expect(s.errors).toEqual([]);
  });

  it('redirects: false leaves Location alone', async () => {
    s = await setup({ redirects: false });
    s.answers.set('/a', answer(302, { location: `${s.upstreamUrl}/x` }));
    expect((await get(`${s.proxyUrl}/a`)).header('location')).toBe(`${s.upstreamUrl}/x`);
  });
});

describe('cookies', () => {
  it('drops an internal Domain, maps Path, enforces Secure and adds SameSite only when missing', async () => {
    s = await setup({ path: { stripPrefix: '/wiki', addPrefix: '/app' } });
    s.answers.set('/app/login', answer(200, {
      'set-cookie': [
        'SID=abc; Domain=.corp.local; Path=/app; HttpOnly',
        'lang=ja; path=/app/settings; SameSite=Strict; secure',
        'other=1; Path=/elsewhere',
      ],
    }, 'ok'));
    const res = await get(`${s.proxyUrl}/wiki/login`);
    expect(res.all('set-cookie')).toEqual([
      'SID=abc; Path=/wiki; HttpOnly; Secure; SameSite=Lax',
      'lang=ja; Path=/wiki/settings; SameSite=Strict; secure',
      'other=1; Path=/elsewhere; Secure; SameSite=Lax',
    ]);
  });

  it('an app that sets cookies for .corp.local: Domain becomes the configured public domain', async () => {
    s = await setup({ cookies: { domain: '.example.jp', sameSite: 'Strict' } });
    s.answers.set('/', answer(200, { 'set-cookie': ['SSO=t; Domain=corp.local', 'local=1', '__Host-x=1; Path=/; Domain=corp.local'] }, 'ok'));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.all('set-cookie')).toEqual([
      'SSO=t; Domain=.example.jp; Secure; SameSite=Strict',
      'local=1; Secure; SameSite=Strict',
      '__Host-x=1; Path=/; Secure; SameSite=Strict',
    ]);
  });

  it('cookies: false leaves Set-Cookie as the upstream sent it', async () => {
    s = await setup({ cookies: false });
    s.answers.set('/', answer(200, { 'set-cookie': 'SID=abc; Domain=.corp.local' }, 'ok'));
    expect((await get(`${s.proxyUrl}/`)).all('set-cookie')).toEqual(['SID=abc; Domain=.corp.local']);
  });
});
