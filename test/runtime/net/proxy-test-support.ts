import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** A throwaway self-signed P-256 certificate for "localhost", made by the openssl CLI. */
export function makeSelfSignedCert(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-proxy-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens a TCP connection to 127.0.0.1:port, optionally from another loopback address. */
export function openTcp(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    socket.setNoDelay(true);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Writes `data` one byte per TCP segment, yielding to the event loop between bytes. */
export async function writeByteByByte(socket: Socket, data: Buffer): Promise<void> {
  for (const byte of data) {
    await new Promise<void>((resolve, reject) => socket.write(Buffer.from([byte]), (err) => (err ? reject(err) : resolve())));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Starts TLS over an existing socket, trusting `ca`. */
export function startTls(socket: Socket, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, ca, servername: 'localhost' });
    tls.once('secureConnect', () => {
      tls.removeListener('error', reject);
      resolve(tls);
    });
    tls.once('error', reject);
  });
}

export interface Answer {
  readonly status: number;
  readonly body: string;
}

/**
 * Sends requests one after another over one TLS connection (keep-alive), through an agent that
 * owns exactly that connection.
 */
export async function requestsOverTls(
  tls: TLSSocket,
  requests: ReadonlyArray<{ readonly path: string; readonly method?: string; readonly body?: Buffer }>,
): Promise<Answer[]> {
  let handedOut = false;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  (agent as unknown as { createConnection: () => TLSSocket }).createConnection = () => {
    if (handedOut) throw new Error('the agent asked for a second connection: keep-alive did not hold');
    handedOut = true;
    return tls;
  };
  const answers: Answer[] = [];
  try {
    for (const r of requests) {
      answers.push(
        await new Promise<Answer>((resolve, reject) => {
          const req = request(
            { host: 'localhost', path: r.path, method: r.method ?? 'GET', agent, headers: r.body ? { 'content-length': r.body.length } : {} },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
              res.on('error', reject);
            },
          );
          req.on('error', reject);
          req.end(r.body);
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return answers;
}

/** Resolves when the peer closes the connection, with whatever it sent first. */
export function waitForClose(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** The shared free-port helper, offered here beside the other helpers the proxy tests import. */
export { freePort } from '../../support/ports.js';
