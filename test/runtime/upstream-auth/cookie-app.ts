/**
 * A legacy app for the cookie jar tests: a form login (any user name, password "pw") whose
 * session id is long and random, so a test can look for it anywhere (a stored document, a log
 * line). With `maxAgeSeconds`, every answer under /app/ sets the session cookie again with a
 * fresh Max-Age, as apps with a sliding session do. Its own sessions never expire: a cookie
 * Kanmon stops sending shows as a new sign-in.
 *
 * /app/ says who is signed in and with which session id; /app/rotate gives the session a new
 * id; /app/logout ends it.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CookieApp {
  readonly server: Server;
  readonly url: string;
  readonly stats: { signIns: number; logouts: number; requests: number };
  /** Session id → user name. */
  readonly sessions: Map<string, string>;
  close(): Promise<void>;
}

export async function startCookieApp(opts: { readonly maxAgeSeconds?: number } = {}): Promise<CookieApp> {
  const sessions = new Map<string, string>();
  const stats = { signIns: 0, logouts: 0, requests: 0 };
  const attrs = `Path=/app; HttpOnly${opts.maxAgeSeconds !== undefined ? `; Max-Age=${opts.maxAgeSeconds}` : ''}`;
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      stats.requests++;
      const url = req.url ?? '/';
      if (url === '/app/login' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<form method="post" action="/app/login"><input name="username"><input type="password" name="password"></form>');
      }
      if (url === '/app/login' && req.method === 'POST') {
        const form = new URLSearchParams(body);
        if (form.get('password') !== 'pw') return res.writeHead(302, { location: '/app/login' }).end();
        stats.signIns++;
        const sid = randomBytes(24).toString('hex');
        sessions.set(sid, form.get('username') ?? '');
        return res.writeHead(302, { location: '/app/', 'set-cookie': `SID=${sid}; ${attrs}` }).end();
      }
      const sid = /(?:^|; )SID=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      const who = sid !== undefined ? sessions.get(sid) : undefined;
      if (url === '/app/logout') {
        if (sid && sessions.delete(sid)) stats.logouts++;
        return res.writeHead(302, { location: '/app/login', 'set-cookie': 'SID=; Path=/app; Max-Age=0' }).end();
      }
      if (who === undefined) return res.writeHead(302, { location: '/app/login' }).end();
      let current = sid!;
      if (url === '/app/rotate') {
        sessions.delete(current);
        current = randomBytes(24).toString('hex');
        sessions.set(current, who);
      }
      const headers: Record<string, string> = { 'content-type': 'text/html' };
      if (opts.maxAgeSeconds !== undefined || current !== sid) headers['set-cookie'] = `SID=${current}; ${attrs}`;
      res.writeHead(200, headers);
      res.end(`<p id="who">${who}</p><p id="sid">${current}</p>`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    sessions,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
