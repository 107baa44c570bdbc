/**
 * "Bare forwarder" bench case: a node https server handing every request straight to the
 * forwarder with fixed identity headers, no session or policy. The gap between this and the
 * full Kanmon case is what authentication costs. Prints {"url":…} once listening.
 *
 * Usage: forwarder-node.ts <upstream-url> <cert.pem> <key.pem> [plain]
 * With "plain", the server speaks plain HTTP (the TLS-offloaded comparison).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createForwarder } from '../../runtime/proxy/index.js';

const [upstream, certFile, keyFile, transport] = process.argv.slice(2);
const plain = transport === 'plain';
if (!upstream || !certFile || !keyFile) throw new Error('usage: forwarder-node.ts <upstream-url> <cert.pem> <key.pem>');

const forwarder = createForwarder({ upstream, preserveHost: false });
const identityHeaders = Object.freeze({ 'X-Kanmon-User': 'bench', 'X-Kanmon-Groups': 'bench', 'X-Kanmon-Auth': 'passkey' });
const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
  forwarder.forward(req, res, {
    clientIp: req.socket.remoteAddress ?? '',
    publicHost: req.headers.host ?? '',
    identityHeaders,
    requestId: '-',
  });
};
const server = plain ? http.createServer(handler) : https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `${plain ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void forwarder.close().then(() => process.exit(0)));
});
