/**
 * Body rewriting through the forwarder against a real upstream: literal and regex rules,
 * content types, gzip/deflate/br bodies made with node:zlib, Shift_JIS and EUC-JP pages,
 * streaming, the buffer cap, and failures that must leave the body as the upstream sent it.
 */
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { answer, get, PUBLIC_ORIGIN, setup, type Setup } from './harness.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const HTML = 'text/html; charset=utf-8';

describe('body replacements', () => {
  it('literal and regex rules apply in the listed order; Content-Length goes, a strong ETag becomes weak', async () => {
    s = await setup({
      body: {
        replace: [
          { literal: 'http://intranet.corp.local', with: '{{publicOrigin}}' },
          { id: 'version', regex: 'v(\\d+)\\.(\\d+)', flags: 'i', with: 'version $1-$2' },
        ],
      },
    });
    const page = '<script>var base = "http://intranet.corp.local/api";</script><p>V1.2 and v3.4</p>';
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-length': String(Buffer.byteLength(page)), etag: '"abc"' }, page));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.body.toString()).toBe(`<script>var base = "${PUBLIC_ORIGIN}/api";</script><p>version 1-2 and version 3-4</p>`);
    expect(res.header('content-length')).toBeUndefined();
    expect(res.header('etag')).toBe('W/"abc"');
    expect(s.errors).toEqual([]);
  });

  it('only listed content types are rewritten (default HTML, CSS, JavaScript, JSON)', async () => {
    s = await setup({ body: { replace: [{ literal: 'corp.local', with: 'example.jp' }] } });
    for (const [path, type] of [['/a.css', 'text/css'], ['/a.js', 'text/javascript; charset=utf-8'], ['/a.json', 'application/json'], ['/a.png', 'image/png'], ['/a.txt', 'text/plain']] as const) {
      s.answers.set(path, answer(200, { 'content-type': type }, 'host corp.local'));
    }
    const bodies = await Promise.all(['/a.css', '/a.js', '/a.json', '/a.png', '/a.txt'].map(async (p) => (await get(`${s!.proxyUrl}${p}`)).body.toString()));
    expect(bodies).toEqual(['host example.jp', 'host example.jp', 'host example.jp', 'host corp.local', 'host corp.local']);
  });

  it('a configured contentTypes list replaces the default', async () => {
    s = await setup({ body: { contentTypes: ['text/plain'], replace: [{ literal: 'a', with: 'b' }] } });
    s.answers.set('/t', answer(200, { 'content-type': 'text/plain' }, 'aaa'));
    s.answers.set('/h', answer(200, { 'content-type': 'text/html' }, 'aaa'));
    expect((await get(`${s.proxyUrl}/t`)).body.toString()).toBe('bbb');
    expect((await get(`${s.proxyUrl}/h`)).body.toString()).toBe('aaa');
  });

  it('a literal split across upstream chunks is still found', async () => {
    s = await setup({ body: { replace: [{ literal: 'http://intranet.corp.local/', with: '/' }] } });
    const page = 'x'.repeat(3000) + '<a href="http://intranet.corp.local/a">' + 'y'.repeat(3000);
    s.answers.set('/', answer(200, { 'content-type': HTML }, page, 7));
    expect((await get(`${s.proxyUrl}/`)).body.toString()).toBe(page.replace('http://intranet.corp.local/', '/'));
  });

  it('HEAD answers lose their Content-Length when the body would be rewritten', async () => {
    s = await setup({ body: { replace: [{ literal: 'a', with: 'bb' }] } });
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-length': '3' }));
    const res = await get(`${s.proxyUrl}/`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.header('content-length')).toBeUndefined();
  });
});

describe('compressed bodies', () => {
  const page = `<html><body>${'<p>intranet.corp.local は社内サーバです</p>'.repeat(500)}</body></html>`;
  const expected = page.split('intranet.corp.local').join('gate.example.jp');
  const cases = [
    ['gzip', (b: Buffer) => zlib.gzipSync(b), (b: Buffer) => zlib.gunzipSync(b)],
    ['deflate', (b: Buffer) => zlib.deflateSync(b), (b: Buffer) => zlib.inflateSync(b)],
    ['br', (b: Buffer) => zlib.brotliCompressSync(b), (b: Buffer) => zlib.brotliDecompressSync(b)],
  ] as const;
  for (const [coding, compress, decompress] of cases) {
    it(`${coding}: decoded, rewritten and encoded again with the same coding`, async () => {
      s = await setup({ body: { replace: [{ literal: 'intranet.corp.local', with: 'gate.example.jp' }] } });
      const body = compress(Buffer.from(page));
      s.answers.set('/', answer(200, { 'content-type': HTML, 'content-encoding': coding, 'content-length': String(body.length) }, body, 1000));
      const res = await get(`${s.proxyUrl}/`);
      expect(res.header('content-encoding')).toBe(coding);
      expect(decompress(res.body).toString()).toBe(expected);
      expect(s.errors).toEqual([]);
    });
  }

  it('raw deflate (no zlib header), as some servers send it, is recognised and written back raw', async () => {
    s = await setup({ body: { replace: [{ literal: 'intranet.corp.local', with: 'gate.example.jp' }] } });
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-encoding': 'deflate' }, zlib.deflateRawSync(Buffer.from(page))));
    const res = await get(`${s.proxyUrl}/`);
    expect(zlib.inflateRawSync(res.body).toString()).toBe(expected);
  });

  it('requests ask the upstream only for codings the rewriter can undo', async () => {
    s = await setup({ body: { replace: [{ literal: 'a', with: 'b' }] } });
    s.answers.set('/', answer(200, { 'content-type': 'text/plain' }, 'ok'));
    await get(`${s.proxyUrl}/`, { headers: { 'accept-encoding': 'zstd, br;q=1.0, gzip, compress' } });
    expect(s.received[0]!.headers['accept-encoding']).toBe('br;q=1.0, gzip');
  });

  it('an unknown coding passes unchanged with a warning', async () => {
    s = await setup({ body: { replace: [{ literal: 'a', with: 'b' }] } });
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-encoding': 'zstd' }, 'aaa'));
    expect((await get(`${s.proxyUrl}/`)).body.toString()).toBe('aaa');
    expect(s.warnings.map((w) => w.ruleId)).toEqual(['body']);
  });

  it('a corrupt gzip body is sent exactly as the upstream wrote it, and the failure is reported', async () => {
    s = await setup({ body: { replace: [{ literal: 'a', with: 'b' }] } });
    const corrupt = Buffer.concat([zlib.gzipSync(Buffer.from('aaaa')).subarray(0, 10), Buffer.from('not deflate data at all')]);
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-encoding': 'gzip' }, corrupt));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.status).toBe(200);
    expect(res.body.equals(corrupt)).toBe(true);
    expect(s.errors).toHaveLength(1);
    expect(s.errors[0]!.ruleId).toBe('body');
    expect(s.errors[0]!.message).toContain('GET /');
  });
});

describe('charsets', () => {
  const sjis = new TextDecoder('shift_jis');
  const eucjp = new TextDecoder('euc-jp');
  // Bytes for "社内ポータル: intranet.corp.local ①" in each charset, built by hand-checked decoding below.
  function encodeWith(decoder: TextDecoder, text: string, candidates: (c: string) => number[][]): Buffer {
    const out: number[] = [];
    for (const c of text) {
      if (c.charCodeAt(0) < 0x80) {
        out.push(c.charCodeAt(0));
        continue;
      }
      const bytes = candidates(c).find((b) => {
        try {
          return new TextDecoder(decoder.encoding, { fatal: true }).decode(Uint8Array.from(b)) === c;
        } catch {
          return false;
        }
      });
      if (!bytes) throw new Error(`no bytes for ${c}`);
      out.push(...bytes);
    }
    return Buffer.from(out);
  }
  const sjisPairs = (c: string) => {
    void c;
    const all: number[][] = [];
    for (let l = 0x81; l <= 0xfc; l++) for (let t = 0x40; t <= 0xfc; t++) all.push([l, t]);
    return all;
  };
  const eucPairs = () => {
    const all: number[][] = [];
    for (let l = 0xa1; l <= 0xfe; l++) for (let t = 0xa1; t <= 0xfe; t++) all.push([l, t]);
    return all;
  };
  const text = '<p>社内ポータル: intranet.corp.local ① ﾊﾝｶｸ</p>';

  it('Shift_JIS (from Content-Type): unchanged text keeps its bytes, the replacement is written in Shift_JIS', async () => {
    s = await setup({ body: { replace: [{ literal: 'intranet.corp.local', with: 'ゲート' }] } });
    const halfwidth = (c: string) => (c >= '\uff61' && c <= '\uff9f' ? [[c.charCodeAt(0) - 0xff61 + 0xa1]] : sjisPairs(c));
    const body = encodeWith(sjis, text, halfwidth);
    s.answers.set('/', answer(200, { 'content-type': 'text/html; charset=Shift_JIS' }, body, 5));
    const res = await get(`${s.proxyUrl}/`);
    expect(sjis.decode(res.body)).toBe(text.replace('intranet.corp.local', 'ゲート'));
    const expectedBytes = encodeWith(sjis, text.replace('intranet.corp.local', 'ゲート'), halfwidth);
    expect(res.body.equals(expectedBytes)).toBe(true);
    expect(s.errors).toEqual([]);
  });

  it('EUC-JP declared only in <meta charset> is found and kept', async () => {
    s = await setup({ body: { replace: [{ literal: 'intranet.corp.local', with: '関門' }] } });
    const page = `<html><head><meta http-equiv="Content-Type" content="text/html; charset=EUC-JP"></head><body>${text}</body></html>`;
    const halfwidth = (c: string) => (c >= '\uff61' && c <= '\uff9f' ? [[0x8e, c.charCodeAt(0) - 0xff61 + 0xa1]] : eucPairs());
    const body = encodeWith(eucjp, page, halfwidth);
    s.answers.set('/', answer(200, { 'content-type': 'text/html' }, body));
    const res = await get(`${s.proxyUrl}/`);
    expect(eucjp.decode(res.body)).toBe(page.replace('intranet.corp.local', '関門'));
    expect(res.body.equals(encodeWith(eucjp, page.replace('intranet.corp.local', '関門'), halfwidth))).toBe(true);
  });

  it('a replacement character Shift_JIS cannot hold becomes a character reference in HTML, with a warning', async () => {
    s = await setup({ body: { replace: [{ literal: 'X', with: '😀' }] } });
    s.answers.set('/', answer(200, { 'content-type': 'text/html; charset=shift_jis' }, encodeWith(sjis, '社X', sjisPairs)));
    const res = await get(`${s.proxyUrl}/`);
    expect(sjis.decode(res.body)).toBe('社&#128512;');
    expect(s.warnings.some((w) => w.ruleId === 'body' && /shift_jis/.test(w.message))).toBe(true);
  });

  it('bytes that are not the declared charset: the body is sent unchanged and the failure reported with the request', async () => {
    s = await setup({ body: { replace: [{ literal: 'a', with: 'b' }] } });
    const bad = Buffer.from([0x61, 0x61, 0xff, 0xfe, 0x61]);
    s.answers.set('/bad', answer(200, { 'content-type': HTML }, bad));
    const res = await get(`${s.proxyUrl}/bad?x=1`);
    expect(res.body.equals(bad)).toBe(true);
    expect(s.errors).toHaveLength(1);
    expect(s.errors[0]!.ruleId).toBe('body');
    expect(s.errors[0]!.message).toContain('GET /bad?x=1 (request req-rw-1)');
  });

  it('a UTF-8 byte order mark survives', async () => {
    s = await setup({ body: { replace: [{ literal: 'a', with: 'b' }] } });
    s.answers.set('/', answer(200, { 'content-type': 'text/css' }, Buffer.from('\ufeffa{}')));
    const res = await get(`${s.proxyUrl}/`);
    expect([...res.body.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(res.body.subarray(3).toString()).toBe('b{}');
  });
});

describe('streaming and the buffer cap', () => {
  it('literal rules stream: the client has rewritten bytes before the upstream has finished', async () => {
    s = await setup({ body: { replace: [{ literal: 'corp.local', with: 'example.jp' }] } });
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    s.answers.set('/', (_req, res) => {
      res.writeHead(200, { 'content-type': HTML });
      res.write('corp.local '.repeat(10_000));
      // The rest only comes once the client has seen data: a buffering rewriter would wait forever.
      void finished.then(() => res.end('end corp.local'));
    });
    const res = await get(`${s.proxyUrl}/`, { onFirstData: finish });
    expect(res.body.toString()).toBe(`${'example.jp '.repeat(10_000)}end example.jp`);
  });

  it('a regex rule buffers; a body beyond maxBufferBytes passes unchanged with a warning', async () => {
    s = await setup({ body: { maxBufferBytes: 4096, replace: [{ regex: 'corp\\.local', with: 'example.jp' }] } });
    const small = 'corp.local '.repeat(100);
    const large = 'corp.local '.repeat(1000);
    s.answers.set('/small', answer(200, { 'content-type': HTML }, small, 100));
    s.answers.set('/large', answer(200, { 'content-type': HTML }, large, 100));
    expect((await get(`${s.proxyUrl}/small`)).body.toString()).toBe(small.split('corp.local').join('example.jp'));
    expect((await get(`${s.proxyUrl}/large`)).body.toString()).toBe(large);
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings[0]!.message).toMatch(/maxBufferBytes \(4096\).*GET \/large|GET \/large.*maxBufferBytes \(4096\)/);
  });

  it('the cap counts decompressed bytes, so a small gzip bomb passes unchanged instead of filling memory', async () => {
    s = await setup({ body: { maxBufferBytes: 65536, replace: [{ regex: 'x', with: 'y' }] } });
    const bomb = zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024, 'x'));
    s.answers.set('/', answer(200, { 'content-type': HTML, 'content-encoding': 'gzip' }, bomb));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.body.equals(bomb)).toBe(true);
    expect(s.warnings.map((w) => w.ruleId)).toEqual(['body']);
  });

  it('a body regex that runs too long is abandoned: the page arrives unchanged and the rule id is reported', async () => {
    s = await setup({ body: { regexTimeoutMs: 50, replace: [{ id: 'greedy', regex: '(x|x)*y', with: 'z' }] } });
    const page = 'x'.repeat(5000);
    s.answers.set('/', answer(200, { 'content-type': HTML }, page));
    const res = await get(`${s.proxyUrl}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(page);
    expect(s.errors.map((e) => e.ruleId)).toEqual(['greedy']);
    expect(s.errors[0]!.message).toMatch(/longer than 50 ms/);
  });
});
