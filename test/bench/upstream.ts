/**
 * The bench's upstream: fixed 1 KiB and 100 KiB bodies from memory, keep-alive, nothing else,
 * so that what the proxies add is what gets measured. Run as its own process (pinned by the
 * caller); prints {"port":…} on stdout once listening.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const BODIES: Readonly<Record<string, Buffer>> = {
  '/1k': Buffer.alloc(1024, 'k'),
  '/100k': Buffer.alloc(100 * 1024, 'c'),
};

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
