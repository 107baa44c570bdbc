/**
 * WebSocket handshakes on routes with upstreamAuth carry the sign-in's upstream headers: the
 * jar's session cookie for a form login (signing in first when the jar is empty), the
 * Authorization for HTTP Basic. Refusals are bare status lines. A real Kanmon with TLS and
 * SQLite, and a real upstream with a login form that accepts upgrades only with its session.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import type { User } from '../../../runtime/store/types.js';

const PASSWORD = 'upstream-secret';

/** The upstream: a login form, a session cookie, and upgrades that echo what they were sent. */
class FormApp {
  readonly sessions = new Set<string>();
  logins = 0;
  server!: Server;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const url = req.url ?? '/';
      if (url === '/app/login' && req.method === 'GET') {
        const body = '<!doctype html><form method="post" action="/app/login"><input name="username"><input type="password" name="password"><button>Sign in</button></form>';
        res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      if (url === '/app/login' && req.method === 'POST') {
        let raw = '';
        req.on('data', (d) => (raw += d));
        req.on('end', () => {
          const form = new URLSearchParams(raw);
          if (form.get('password') !== PASSWORD) {
            res.writeHead(200, { 'content-type': 'text/html', 'content-length': 0 });
            res.end();
            return;
          }
          this.logins++;
          const sid = `s${this.logins}${Math.random().toString(36).slice(2, 8)}`;
          this.sessions.add(sid);
          res.writeHead(302, { location: '/app/', 'set-cookie': `sid=${sid}; Path=/; HttpOnly`, 'content-length': 0 });
          res.end();
        });
        return;
      }
      const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      if (sid && this.sessions.has(sid)) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4 });
        res.end('home');
        return;
      }
      res.writeHead(302, { location: '/app/login', 'content-length': 0 });
      res.end();
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      const basic = req.url?.startsWith('/basic') && req.headers.authorization === `Basic ${Buffer.from(`svc:${PASSWORD}`).toString('base64')}`;
      if (!basic && !(sid && this.sessions.has(sid))) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      // Past the handshake the tunnel is raw bytes: say what arrived, then close.
      socket.end(`${JSON.stringify({ cookie: req.headers.cookie ?? null, authorization: req.headers.authorization ?? null })}\n`);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

let app: FormApp;
let h: KanmonHarness;
let user: User;
let cookie: string;

beforeAll(async () => {
  app = new FormApp();
  const upstream = await app.start();
  h = await KanmonHarness.start({
    routes: [
      { id: 'chat', match: { pathPrefix: '/app' }, upstream, upstreamAuth: { kind: 'form', loginUrl: '/app/login', credentials: 'shared' } },
      { id: 'feed', match: { pathPrefix: '/basic' }, upstream, upstreamAuth: { kind: 'basic', credentials: 'shared' } },
      { id: 'mine', match: { pathPrefix: '/mine' }, upstream, upstreamAuth: { kind: 'form', loginUrl: '/mine/login', credentials: 'user' } },
    ],
  });
  const creds = h.app.services.upstreamCredentials;
  await creds.set(creds.route('chat'), { kind: 'shared' }, { username: 'svc', secret: PASSWORD }, { actor: 'test' });
  await creds.set(creds.route('feed'), { kind: 'shared' }, { username: 'svc', secret: PASSWORD }, { actor: 'test' });
  user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
  cookie = await h.sessionCookie(user);
});
afterAll(async () => {
  await h?.close();
  await app?.close();
});

function echoed(answer: string): { cookie: string | null; authorization: string | null } {
  const line = answer.split('\r\n\r\n')[1]!.trim();
  return JSON.parse(line) as { cookie: string | null; authorization: string | null };
}

describe('WebSocket upgrades on routes with upstream sign-in', () => {
  it('a form-login route: Kanmon signs in first, and the handshake carries the jar session, not the Kanmon cookie', async () => {
    const before = app.logins;
    const answer = await h.handshake('/app/socket', `${cookie}; theme=dark`);
    expect(answer).toMatch(/^HTTP\/1\.1 101 /);
    expect(app.logins).toBe(before + 1);
    const seen = echoed(answer);
    expect(seen.cookie).toMatch(/(?:^|; )sid=s\d+/);
    expect(seen.cookie).toContain('theme=dark');
    expect(seen.cookie).not.toContain('__Host-kanmon-session');

    // The next handshake and a page load share that upstream session: no second sign-in.
    const again = await h.handshake('/app/socket', cookie);
    expect(echoed(again).cookie).toBe(/sid=[^;]+/.exec(seen.cookie!)![0]);
    expect((await h.get('/app/', { cookie })).text).toBe('home');
    expect(app.logins).toBe(before + 1);
  });

  it('a Basic route: the handshake carries the Authorization', async () => {
    const answer = await h.handshake('/basic/socket', cookie);
    expect(answer).toMatch(/^HTTP\/1\.1 101 /);
    expect(echoed(answer).authorization).toBe(`Basic ${Buffer.from(`svc:${PASSWORD}`).toString('base64')}`);
  });

  it("the upstream's refusal of an ended session is relayed, and the next page load signs in again", async () => {
    app.sessions.clear();
    const refused = await h.handshake('/app/socket', cookie);
    expect(refused).toMatch(/^HTTP\/1\.1 401 /);
    const logins = app.logins;
    expect((await h.get('/app/', { cookie })).text).toBe('home');
    expect(app.logins).toBe(logins + 1);
    expect(await h.handshake('/app/socket', cookie)).toMatch(/^HTTP\/1\.1 101 /);
  });

  it('refuses without a session (401), without stored credentials (403), and with a forged session cookie (401)', async () => {
    expect(await h.handshake('/app/socket')).toMatch(/^HTTP\/1\.1 401 /);
    expect(await h.handshake('/mine/socket', cookie)).toMatch(/^HTTP\/1\.1 403 /);
    expect(await h.handshake('/app/socket', '__Host-kanmon-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).toMatch(/^HTTP\/1\.1 401 /);
    // A browser cookie named like the upstream's cannot stand in for the jar's.
    app.sessions.add('forged');
    const logins = app.logins;
    const answer = await h.handshake('/app/socket', `${cookie}; sid=forged`);
    expect(answer).toMatch(/^HTTP\/1\.1 101 /);
    expect(echoed(answer).cookie).not.toContain('sid=forged');
    expect(app.logins).toBe(logins);
  });
});
