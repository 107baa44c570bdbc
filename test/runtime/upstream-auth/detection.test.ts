/**
 * How Kanmon sees that an upstream wants a login, through a real Kanmon in front of a real
 * upstream on port 0: a marker in a 200 HTML body (and only in HTML), a configured status;
 * and API-header injection from a shared secret.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../../runtime/store/types.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';

/** An app that answers an unknown session with its login page and 200, as many portals do. */
function markerApp() {
  const sessions = new Set<string>();
  let next = 0;
  let signIns = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const sid = /(?:^|; )SID=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      const url = req.url ?? '/';
      if (url.startsWith('/api-key/')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ apiKey: req.headers['x-api-key'] ?? null }));
      }
      if (url === '/login' && req.method === 'POST') {
        if (new URLSearchParams(body).get('password') !== 'pw') {
          res.writeHead(200, { 'content-type': 'text/html' });
          return res.end('<div id="loginbox"><form method="post"><input name="username"><input type="password" name="password"></form></div>');
        }
        signIns++;
        const id = `s${++next}`;
        sessions.add(id);
        res.writeHead(302, { location: '/', 'set-cookie': `SID=${id}; Path=/` });
        return res.end();
      }
      const signedIn = sid !== undefined && sessions.has(sid);
      if (url === '/data') {
        res.writeHead(signedIn ? 200 : 440, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ session: signedIn ? sid : null }));
      }
      if (url === '/doc.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ text: 'this mentions id="loginbox" but is data' }));
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(signedIn ? `<p id="who">session ${sid}</p>` : '<div id="loginbox"><form method="post" action="/login"><input name="username"><input type="password" name="password"></form></div>');
    });
  });
  return { server, sessions, stats: () => ({ signIns }) };
}

describe('seeing that the upstream wants a login', () => {
  let h: KanmonHarness;
  let app: ReturnType<typeof markerApp>;
  let user: User;
  let cookie: string;
  beforeAll(async () => {
    app = markerApp();
    await new Promise<void>((r) => app.server.listen(0, '127.0.0.1', r));
    const upstream = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    h = await KanmonHarness.start({
      routes: [
        {
          id: 'portal',
          match: { pathPrefix: '/' },
          upstream,
          upstreamAuth: { kind: 'form', loginUrl: '/login', usernameTemplate: '{username}', detect: { redirectToLogin: false, statuses: [440], bodyMarker: 'id="loginbox"' } },
        },
        { id: 'keyed', match: { pathPrefix: '/api-key' }, upstream, upstreamAuth: { kind: 'header', header: 'X-API-Key', valuePrefix: 'k-' } },
      ],
    });
    user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
    await h.app.services.upstreamCredentials.set(h.app.services.upstreamCredentials.route('portal'), { kind: 'user', userId: user.id }, { secret: 'pw' }, { actor: 'test' });
    cookie = await h.sessionCookie(user);
  });
  afterAll(async () => {
    await h?.close();
    app.server.closeAllConnections();
    await new Promise((r) => (app.server as Server).close(r));
  });

  it('signs in again when a 200 HTML page carries the login marker, and replays the request', async () => {
    const first = await h.get('/page', { cookie });
    expect(first.text).toBe('<p id="who">session s1</p>');
    app.sessions.clear();
    const again = await h.get('/page', { cookie });
    expect(again.status).toBe(200);
    expect(again.text).toBe('<p id="who">session s2</p>');
    expect(app.stats().signIns).toBe(2);
  });

  it('signs in again on a configured status', async () => {
    app.sessions.clear();
    const res = await h.get('/data', { cookie, headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ session: 's3' });
  });

  it('does not look for the marker in answers that are not HTML', async () => {
    const before = app.stats().signIns;
    const res = await h.get('/doc.json', { cookie, headers: { accept: 'application/json' } });
    expect(res.json().text).toContain('id="loginbox"');
    expect(app.stats().signIns).toBe(before);
  });

  it('stops, instead of looping, when the upstream keeps asking right after a sign-in', async () => {
    // Every session the app hands out is forgotten at once: the sign-in "works" but never sticks.
    const add = app.sessions.add.bind(app.sessions);
    app.sessions.add = (v: string) => (add(v), app.sessions.delete(v), app.sessions);
    try {
      const fresh = await h.sessionCookie(user);
      const res = await h.get('/page', { cookie: fresh });
      expect(res.status).toBe(502);
      expect(res.text).toContain('still asks for a sign-in');
    } finally {
      app.sessions.add = add;
    }
  });

  it('injects the shared API key, replacing whatever the client sent', async () => {
    const missing = await h.get('/api-key/echo', { cookie, headers: { accept: 'application/json' } });
    expect(missing.status).toBe(503);
    await h.app.services.upstreamCredentials.set(h.app.services.upstreamCredentials.route('keyed'), { kind: 'shared' }, { secret: 'secret' }, { actor: 'test' });
    const res = await h.get('/api-key/echo', { cookie, headers: { accept: 'application/json', 'x-api-key': 'forged' } });
    expect(res.json()).toEqual({ apiKey: 'k-secret' });
  });
});
