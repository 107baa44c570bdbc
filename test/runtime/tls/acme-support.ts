/** Kanmon nodes with tls.source "acme" against the pebble of test/runtime/tls/pebble.ts, and TLS probes. */
import { connect, type PeerCertificate } from 'node:tls';
import { pino } from 'pino';
import { startKanmon, type KanmonApp, type StartOptions } from '../../../runtime/app.js';
import type { KanmonConfigInput } from '../../../runtime/config/schema.js';
import type { Notification, Notifier } from '../../../runtime/notify/notifier.js';
import type { Pebble } from './pebble.js';

export const GATEWAY = 'gw.kanmon.test';
export const APP = 'app.kanmon.test';

/** Notifications a node sent, as delivered. */
export class CollectedNotifications implements Notifier {
  readonly sent: Notification[] = [];
  async notify(n: Notification): Promise<void> {
    this.sent.push(n);
  }
}

export interface AcmeNodeOptions {
  readonly pebble: Pebble;
  readonly dataDir: string;
  /** The TLS listener's port (pebble's tlsPort for the node TLS-ALPN-01 validations reach). */
  readonly port: number;
  /** The plain-HTTP listener's port; 0 for none. */
  readonly httpPort: number;
  readonly challenge?: 'http-01' | 'tls-alpn-01';
  readonly keyType?: 'ecdsa' | 'rsa';
  readonly tls?: Record<string, unknown>;
  readonly start?: StartOptions['serverCertificate'];
  readonly notifier?: Notifier;
  readonly extra?: KanmonConfigInput;
}

export async function startAcmeNode(o: AcmeNodeOptions): Promise<KanmonApp> {
  return startKanmon(
    {
      dataDir: o.dataDir,
      log: { level: 'silent' },
      server: { port: o.port, host: '127.0.0.1', httpPort: o.httpPort, publicOrigin: `https://${GATEWAY}` },
      tls: {
        source: 'acme',
        domains: [GATEWAY, APP],
        email: 'ops@kanmon.example',
        directoryUrl: o.pebble.directoryUrl,
        directoryCaFile: o.pebble.directoryCaFile,
        ...(o.challenge ? { challenge: o.challenge } : {}),
        ...(o.keyType ? { keyType: o.keyType } : {}),
        ...(o.tls ?? {}),
      } as KanmonConfigInput['tls'],
      routes: [{ id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' }],
      ...(o.extra ?? {}),
    },
    {
      logger: pino({ level: 'silent' }),
      ...(o.notifier ? { notifier: o.notifier } : {}),
      // Pebble validates at once (PEBBLE_VA_NOSLEEP); production keeps acme-client's 5-30 s polling.
      serverCertificate: { pollMs: 200, renewalCheckMs: 3_600_000, acmePoll: { minMs: 100, maxMs: 500 }, ...(o.start ?? {}) },
    },
  );
}

export interface Handshake {
  readonly cert: PeerCertificate;
  readonly authorized: boolean;
  readonly authorizationError?: string;
  readonly alpn: string | false;
}

/** One TLS handshake to 127.0.0.1:port with the given SNI, verified against `ca`. */
export function handshake(port: number, servername: string, ca: string | undefined, alpn?: string[]): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ...(ca ? { ca } : {}), rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => {
      const result: Handshake = {
        cert: socket.getPeerCertificate(),
        authorized: socket.authorized,
        ...(socket.authorizationError ? { authorizationError: String(socket.authorizationError) } : {}),
        alpn: socket.alpnProtocol ?? false,
      };
      socket.end();
      resolve(result);
    });
    socket.once('error', reject);
  });
}

export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > until) throw new Error(`${what}: still ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
