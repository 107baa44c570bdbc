/**
 * URL attributes in HTML (and url() in CSS): internal absolute URLs become public ones,
 * through the forwarder against a real upstream, including pages delivered a few bytes at a time.
 */
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { answer, get, PUBLIC_ORIGIN, setup, type Setup } from './harness.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const INTERNAL = 'http://intranet.corp.local';
const HTML = 'text/html; charset=utf-8';

const page = [
  '<!DOCTYPE html><html><head>',
  `<meta http-equiv="refresh" content="30; URL='${INTERNAL}/reload'">`,
  `<link rel=stylesheet href=${INTERNAL}/style.css>`,
  `<style>body { background: url("${INTERNAL}/bg.png") }</style>`,
  `<script>var api = "${INTERNAL}/api"; if (a < b) {}</script>`,
  '</head><body>',
  `<a href="${INTERNAL}/docs?a=1&amp;b=2" class="x">docs</a>`,
  `<A HREF='${INTERNAL.toUpperCase()}/up'>up</A>`,
  `<img src="//intranet.corp.local/logo.png" srcset="${INTERNAL}/a.png 1x, ${INTERNAL}/b.png 2x, https://cdn.example.com/c.png 3x">`,
  `<form action="${INTERNAL}/post" method=post><button formaction="${INTERNAL}/alt">go</button></form>`,
  `<div style="background-image: url(${INTERNAL}/div.png)">x</div>`,
  `<!-- <a href="${INTERNAL}/commented"> -->`,
  `<a href="https://www.example.com/">external</a> <a href="/relative">rel</a>`,
  `<p data-note="${INTERNAL}/not-a-url-attribute">text ${INTERNAL}/plain-text</p>`,
  '</body></html>',
].join('\n');

const expected = page
  .replace(`content="30; URL='${INTERNAL}/reload'"`, `content="30; URL='${PUBLIC_ORIGIN}/reload'"`)
  .replace(`href=${INTERNAL}/style.css`, `href=${PUBLIC_ORIGIN}/style.css`)
  .replace(`url("${INTERNAL}/bg.png")`, `url("${PUBLIC_ORIGIN}/bg.png")`)
  .replace(`"${INTERNAL}/docs?a=1&amp;b=2"`, `"${PUBLIC_ORIGIN}/docs?a=1&amp;b=2"`)
  .replace(`'${INTERNAL.toUpperCase()}/up'`, `'${PUBLIC_ORIGIN}/up'`)
  .replace('"//intranet.corp.local/logo.png"', '"//gate.example.jp/logo.png"')
  .replace(`"${INTERNAL}/a.png 1x, ${INTERNAL}/b.png 2x,`, `"${PUBLIC_ORIGIN}/a.png 1x, ${PUBLIC_ORIGIN}/b.png 2x,`)
  .replace(`action="${INTERNAL}/post"`, `action="${PUBLIC_ORIGIN}/post"`)
  .replace(`formaction="${INTERNAL}/alt"`, `formaction="${PUBLIC_ORIGIN}/alt"`)
  .replace(`url(${INTERNAL}/div.png)`, `url(${PUBLIC_ORIGIN}/div.png)`);

describe('URL attributes in HTML', () => {
  it('href, src, action, formaction, srcset, style url(), <style> and meta refresh; scripts, comments, text and other attributes untouched', async () => {
    s = await setup({ internalUrls: [INTERNAL], htmlUrls: true });
    s.answers.set('/', answer(200, { 'content-type': HTML }, page));
    const res = await get(`${s.proxyUrl}/`);
    // Every replacement in `expected` found its target: ten public URLs and one scheme-relative.
    expect(expected.split(PUBLIC_ORIGIN).length - 1).toBe(10);
    expect(expected).toContain('"//gate.example.jp/logo.png"');
    expect(res.body.toString()).toBe(expected);
    expect(s.errors).toEqual([]);
  });

  it('gives the same result when the page arrives three bytes at a time', async () => {
    s = await setup({ internalUrls: [INTERNAL], htmlUrls: true });
    s.answers.set('/', answer(200, { 'content-type': HTML }, page, 3));
    expect((await get(`${s.proxyUrl}/`)).body.toString()).toBe(expected);
  });

  it("the upstream's own URL is rewritten without being listed, and in a gzip body", async () => {
    s = await setup({ htmlUrls: true });
    const html = `<a href="${s.upstreamUrl}/x">x</a>`;
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-encoding': 'gzip' }, zlib.gzipSync(Buffer.from(html))));
    const res = await get(`${s.proxyUrl}/`);
    expect(zlib.gunzipSync(res.body).toString()).toBe(`<a href="${PUBLIC_ORIGIN}/x">x</a>`);
  });

  it('with path rules, root-relative links under the added prefix get the public prefix', async () => {
    s = await setup({ htmlUrls: true, path: { stripPrefix: '/wiki', addPrefix: '/app' } });
    s.answers.set('/app/', answer(200, { 'content-type': HTML }, '<a href="/app/page">p</a><img src="/static/x.png"><a href="/app">home</a>'));
    const res = await get(`${s.proxyUrl}/wiki/`);
    expect(res.body.toString()).toBe('<a href="/wiki/page">p</a><img src="/static/x.png"><a href="/wiki">home</a>');
  });

  it('CSS files get url() and @import rewritten', async () => {
    s = await setup({ internalUrls: [INTERNAL], htmlUrls: true });
    const css = `@import "${INTERNAL}/base.css";\n.a { background: url('${INTERNAL}/a.png') }\n.b { background: url(/b.png) }`;
    s.answers.set('/s.css', answer(200, { 'content-type': 'text/css' }, css, 4));
    const res = await get(`${s.proxyUrl}/s.css`);
    expect(res.body.toString()).toBe(css.split(INTERNAL).join(PUBLIC_ORIGIN));
  });

  it('hostile markup: an unterminated tag and a huge attribute pass through unchanged and complete', async () => {
    s = await setup({ internalUrls: [INTERNAL], htmlUrls: true });
    const hostile = `<a href="${INTERNAL}/ok">ok</a><div title="${'x'.repeat(300 * 1024)}`;
    s.answers.set('/', answer(200, { 'content-type': HTML }, hostile, 16 * 1024));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.body.toString()).toBe(hostile.replace(`${INTERNAL}/ok`, `${PUBLIC_ORIGIN}/ok`));
  });

  it('JSON bodies are not touched by URL rewriting alone', async () => {
    s = await setup({ internalUrls: [INTERNAL], htmlUrls: true });
    const json = JSON.stringify({ href: `${INTERNAL}/x` });
    s.answers.set('/j', answer(200, { 'content-type': 'application/json', 'content-length': String(json.length) }, json));
    const res = await get(`${s.proxyUrl}/j`);
    expect(res.body.toString()).toBe(json);
    expect(res.header('content-length')).toBe(String(json.length));
  });
});
