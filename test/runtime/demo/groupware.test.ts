import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DOWNLOAD_BYTES, downloadSha256, startDemoGroupware, type DemoGroupware } from '../../../runtime/demo/index.js';

let demo: DemoGroupware;
beforeAll(async () => {
  demo = await startDemoGroupware();
});
afterAll(() => demo.close());

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${demo.url}${path}`, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('demo groupware', () => {
  it('listens on 127.0.0.1 on a free port by default', () => {
    expect(demo.url).toBe(`http://127.0.0.1:${demo.port}`);
    expect(demo.port).toBeGreaterThan(0);
  });

  it('greets the user named by X-Kanmon-User, escaped, and links to the other pages', async () => {
    const reply = await request('/', { headers: { 'X-Kanmon-User': '<alice>', 'X-Kanmon-Groups': 'staff' } });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/html; charset=utf-8');
    const html = reply.body.toString();
    expect(html).toContain('&#60;alice&#62;');
    expect(html).not.toContain('<alice>');
    expect(html).toContain('x-kanmon-groups');
    for (const link of ['href="headers"', 'href="form"', 'href="download/10mb"', 'href="ws-test"']) expect(html).toContain(link);
  });

  it('shows percent-encoded group names decoded', async () => {
    const groups = ['経理部', 'staff'].map(encodeURIComponent).join(',');
    const reply = await request('/', { headers: { 'X-Kanmon-User': 'alice', 'X-Kanmon-Groups': groups } });
    expect(reply.body.toString()).toContain('経理部, staff');
  });

  it('says so when no identity arrived', async () => {
    const html = (await request('/')).body.toString();
    expect(html).toContain('No X-Kanmon-User header arrived');
  });

  it('returns every request header it received as JSON at /headers', async () => {
    const reply = await request('/headers?x=1', { headers: { 'X-Kanmon-User': 'alice', 'X-Custom': 'value' } });
    expect(reply.status).toBe(200);
    const json = JSON.parse(reply.body.toString()) as { method: string; url: string; headers: Record<string, string> };
    expect(json.method).toBe('GET');
    expect(json.url).toBe('/headers?x=1');
    expect(json.headers).toMatchObject({ 'x-kanmon-user': 'alice', 'x-custom': 'value', host: `127.0.0.1:${demo.port}` });
  });

  it('shows a form and echoes a POSTed form, escaped', async () => {
    const form = (await request('/form')).body.toString();
    expect(form).toContain('<form method="post" action="form">');
    const body = new URLSearchParams({ subject: '<script>alert(1)</script>', message: '日本語 & "quotes"' }).toString();
    const reply = await request('/form', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(reply.status).toBe(200);
    const html = reply.body.toString();
    expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('日本語 &#38; &#34;quotes&#34;');
  });

  it('refuses a form in another encoding, and one too large', async () => {
    expect((await request('/form', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(415);
    const big = `subject=${'x'.repeat(70 * 1024)}`;
    expect((await request('/form', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: big })).status).toBe(413);
  });

  it('streams a deterministic 10 MiB download with Content-Length', async () => {
    const { status, length, bytes, sha256 } = await new Promise<{ status: number; length?: string; bytes: number; sha256: string }>((resolve, reject) => {
      http
        .get(`${demo.url}/download/10mb`, { agent: false }, (res) => {
          const hash = createHash('sha256');
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            hash.update(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], bytes, sha256: hash.digest('hex') }));
        })
        .on('error', reject);
    });
    expect(status).toBe(200);
    expect(length).toBe(String(DOWNLOAD_BYTES));
    expect(bytes).toBe(10 * 1024 * 1024);
    expect(sha256).toBe(downloadSha256());
    // The pattern is byte i = i % 251; check the digest against an independent construction.
    const independent = createHash('sha256');
    const step = Buffer.alloc(251 * 1024);
    for (let i = 0; i < step.length; i++) step[i] = i % 251;
    for (let left = DOWNLOAD_BYTES; left > 0; left -= step.length) independent.update(step.subarray(0, Math.min(left, step.length)));
    expect(sha256).toBe(independent.digest('hex'));
  });

  it('echoes WebSocket messages at /ws and refuses upgrades elsewhere', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${demo.port}/ws`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const echoed = await new Promise<string>((resolve) => {
      ws.once('message', (data: Buffer) => resolve(data.toString()));
      ws.send('hello, 関門');
    });
    expect(echoed).toBe('hello, 関門');
    ws.close();

    const refused = await new Promise<number>((resolve) => {
      const other = new WebSocket(`ws://127.0.0.1:${demo.port}/elsewhere`);
      other.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      other.once('error', () => resolve(-1));
    });
    expect(refused).toBe(404);
  });

  it('serves /ws-test with an external script and no inline script, under a script-src self policy', async () => {
    const page = await request('/ws-test');
    const html = page.body.toString();
    expect(html).toContain('<script src="ws-test.js" defer></script>');
    expect(html.match(/<script[^>]*>([^<]*)<\/script>/g)?.every((tag) => /<script src="[^"]+"[^>]*><\/script>/.test(tag))).toBe(true);
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    const script = await request('/ws-test.js');
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.body.toString()).toContain('new WebSocket(');
  });

  it('answers 404 for unknown paths and 405 for wrong methods', async () => {
    expect((await request('/nope')).status).toBe(404);
    const wrong = await request('/headers', { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET, HEAD');
  });
});
