/**
 * The README's worked example, "an app that sets cookies for .corp.local and links to itself",
 * run as written (apart from the upstream address and public host) against a real upstream
 * that behaves like that groupware, in Shift_JIS and gzip.
 */
import zlib from 'node:zlib';
import { afterEach, expect, it } from 'vitest';
import { answer, get, PUBLIC_ORIGIN, setup, type Setup } from './harness.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const INTERNAL = 'http://groupware.corp.local';

it('an app that sets cookies for .corp.local, redirects and links to its internal name works under /groupware', async () => {
  s = await setup({
    internalUrls: [INTERNAL],
    path: { stripPrefix: '/groupware', addPrefix: '/gw' },
    htmlUrls: true,
    cookies: { domain: 'host-only', sameSite: 'Lax' },
    requestHeaders: [{ id: 'origin-check', replace: 'Origin', pattern: '^https://gate\\.example\\.jp$', with: INTERNAL }],
    responseHeaders: [{ remove: 'X-Powered-By' }],
    body: { replace: [{ id: 'js-api-base', literal: `${INTERNAL}/gw/api`, with: '{{publicOrigin}}/groupware/api' }] },
  });
  s.answers.set('/gw/mail', (req, res) => {
    if (req.headers.origin !== INTERNAL) {
      res.writeHead(403);
      res.end('origin check failed');
      return;
    }
    res.writeHead(302, { location: `${INTERNAL}/gw/login`, 'set-cookie': 'SID=s3cr3t; Domain=.corp.local; Path=/gw; HttpOnly', 'x-powered-by': 'PHP/5.2' });
    res.end();
  });
  const page = `<html><head><meta charset="Shift_JIS"></head><body><img src="${INTERNAL}/gw/img/a.png"><a href="/gw/top">トップ</a><script>var api = "${INTERNAL}/gw/api";</script></body></html>`;
  const sjis = Buffer.concat([...page].map((c) => (c.charCodeAt(0) < 0x80 ? Buffer.from(c) : sjisOf(c))));
  s.answers.set('/gw/login', answer(200, { 'content-type': 'text/html', 'content-encoding': 'gzip' }, zlib.gzipSync(sjis)));

  const redirect = await get(`${s.proxyUrl}/groupware/mail?id=1`, { headers: { Origin: 'https://gate.example.jp' } });
  expect(s.received[0]!.url).toBe('/gw/mail?id=1');
  expect(redirect.status).toBe(302);
  expect(redirect.header('location')).toBe(`${PUBLIC_ORIGIN}/groupware/login`);
  expect(redirect.all('set-cookie')).toEqual(['SID=s3cr3t; Path=/groupware; HttpOnly; Secure; SameSite=Lax']);
  expect(redirect.header('x-powered-by')).toBeUndefined();

  const login = await get(`${s.proxyUrl}/groupware/login`);
  expect(login.header('content-encoding')).toBe('gzip');
  const text = new TextDecoder('shift_jis').decode(zlib.gunzipSync(login.body));
  expect(text).toBe(
    `<html><head><meta charset="Shift_JIS"></head><body><img src="${PUBLIC_ORIGIN}/groupware/img/a.png"><a href="/groupware/top">トップ</a><script>var api = "${PUBLIC_ORIGIN}/groupware/api";</script></body></html>`,
  );
  expect(s.errors).toEqual([]);
});

function sjisOf(c: string): Buffer {
  const decoder = new TextDecoder('shift_jis', { fatal: true });
  for (let l = 0x81; l <= 0x9f; l++) {
    for (let t = 0x40; t <= 0xfc; t++) {
      try {
        if (decoder.decode(Uint8Array.from([l, t])) === c) return Buffer.from([l, t]);
      } catch {
        // not a valid pair
      }
    }
  }
  throw new Error(`no Shift_JIS bytes for ${c}`);
}
