/**
 * A route's forwarder as built from config: its rewrite rules take effect, and a route
 * without rules forwards untouched.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { closeServer, listen, send, values } from './harness.js';
import { routeGatewaysPerTest, type RouteInput } from './route-harness.js';

const { cleanups, gateway } = routeGatewaysPerTest();

async function echoPath() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-powered-by': 'legacy' });
    res.end(req.url);
  });
  const port = await listen(server);
  cleanups.push(() => closeServer(server));
  return `http://127.0.0.1:${port}`;
}

describe('route forwarder from config', () => {
  it("applies the route's rewrite rules", async () => {
    const gw = await gateway({
      match: { pathPrefix: '/wiki' },
      upstream: await echoPath(),
      rewrite: { path: { stripPrefix: '/wiki' }, responseHeaders: [{ id: 'no-powered-by', remove: 'X-Powered-By' }] },
    } as unknown as RouteInput);
    const reply = await send(`${gw.url}/wiki/Main_Page`);
    expect(reply.body.toString()).toBe('/Main_Page');
    expect(values(reply.rawHeaders, 'x-powered-by')).toEqual([]);
  });

  it('forwards a route without rules untouched', async () => {
    const gw = await gateway({ match: { pathPrefix: '/wiki' }, upstream: await echoPath() });
    const reply = await send(`${gw.url}/wiki/Main_Page`);
    expect(reply.body.toString()).toBe('/wiki/Main_Page');
    expect(values(reply.rawHeaders, 'x-powered-by')).toEqual(['legacy']);
  });
});
