/**
 * The bench's Node upstream (`--upstream node`): fixed bodies from memory, keep-alive, nothing
 * else. Run as its own process (pinned by the caller); prints {"port":…} once listening.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BODIES } from './bodies.js';

const server = http.createServer((req, res) => {
  const body = BODIES[req.url ?? ''];
  if (!body) {
    res.writeHead(404, { 'content-length': 0 });
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
