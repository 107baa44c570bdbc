/**
 * A TCP listener that reads a PROXY protocol v2 header (proxy-protocol.ts) before handing the
 * connection to an http.Server or https.Server that is not listening itself.
 *
 * Behind an AWS NLB with TLS passthrough the peer of every connection is the load balancer;
 * the client's address only arrives in the PROXY header. The header is believed only from
 * the configured load-balancer networks: anyone else who could reach the port could
 * otherwise claim any address, and defeat per-address throttling and the audit trail. So a
 * peer outside those networks is refused outright, and a connection from inside them must
 * start with a valid v2 header.
 */
import type { IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { createAddressMatcher, unmapIpv4 } from './cidr.js';
import { parseProxyV2, PROXY_V2_MAX_HEADER_BYTES, PROXY_V2_SIGNATURE, type ProxyAddress } from './proxy-protocol.js';

export type ProxyRefusalReason =
  /** The peer is not in `allowedNetworks`. */
  | 'peer-not-allowed'
  /** The header did not arrive completely within `headerTimeoutMs`. */
  | 'header-timeout'
  /** The first bytes were not a valid v2 header (v1 text, TLS, HTTP, malformed, too long). */
  | 'invalid-header';

export interface ProxyListenerOptions {
  readonly port: number;
  /** @default "0.0.0.0" */
  readonly host?: string;
  /** CIDRs of the load balancers, e.g. the VPC's CIDR. Everything else is refused. */
  readonly allowedNetworks: readonly string[];
  /**
   * Time a peer has to send the complete header. A load balancer sends it with its first
   * segment, so this only bounds connections that never will. @default 5000
   */
  readonly headerTimeoutMs?: number;
  /** @default PROXY_V2_MAX_HEADER_BYTES (1024) */
  readonly maxHeaderBytes?: number;
  /**
   * Accept connections without a header too, handed over unchanged: for the health port, which
   * the load balancer reaches with a header and a local health check without one. A header is
   * still believed only from allowedNetworks; from anywhere else it is refused. @default false
   */
  readonly headerOptional?: boolean;
  /** Called once per refused connection, before it is destroyed. Must not throw. */
  readonly onRefused?: (reason: ProxyRefusalReason, remoteAddress: string, detail?: string) => void;
}

/** What the PROXY header of a connection said, for a PROXY command over TCP/IPv4 or IPv6. */
export interface ProxiedConnection {
  readonly source: ProxyAddress;
  readonly destination: ProxyAddress;
}

/** Keyed by the raw TCP socket; entries go when the socket is collected. */
const proxied = new WeakMap<Socket, ProxiedConnection>();

/**
 * Listens on `opts.port` and feeds `target` with each accepted connection once its PROXY v2
 * header has been read, exactly as if `target` had accepted it itself.
 *
 * `target` must not listen on its own. Closing the returned server stops accepting; connections
 * already handed over belong to `target` (close them with `target.closeIdleConnections()` /
 * `closeAllConnections()`), and the returned server's close callback runs once they are gone.
 * `target.close()` afterwards stops the target's timeout checks (it reports
 * ERR_SERVER_NOT_RUNNING, since the target never listened).
 */
export async function listenWithProxyProtocol(target: Server, opts: ProxyListenerOptions): Promise<Server> {
  const allowed = createAddressMatcher(opts.allowedNetworks);
  const headerTimeoutMs = opts.headerTimeoutMs ?? 5000;
  const maxHeaderBytes = opts.maxHeaderBytes ?? PROXY_V2_MAX_HEADER_BYTES;
  if (!(headerTimeoutMs > 0)) throw new TypeError(`headerTimeoutMs must be a positive number of milliseconds, got ${headerTimeoutMs}`);
  if (opts.allowedNetworks.length === 0) {
    throw new TypeError('allowedNetworks must list the load balancers\' networks; with none, every connection would be refused');
  }

  const refuse = (socket: Socket, reason: ProxyRefusalReason, detail?: string) => {
    try {
      opts.onRefused?.(reason, unmapIpv4(socket.remoteAddress ?? ''), detail);
    } catch {
      // A logging callback must not take the listener down.
    }
    socket.destroy();
  };

  // pauseOnConnect: nothing is read from a peer before its address has been checked.
  const listener = createServer({ pauseOnConnect: true }, (socket) => {
    // The raw socket keeps a listener for its whole life: an error that arrives after the
    // handoff but before the target has attached its own must not become an uncaught exception.
    socket.on('error', ignore);
    const fromLoadBalancer = allowed(socket.remoteAddress);
    if (!fromLoadBalancer && !opts.headerOptional) {
      refuse(socket, 'peer-not-allowed');
      return;
    }
    readHeader(socket, fromLoadBalancer);
  });

  const readHeader = (socket: Socket, fromLoadBalancer: boolean) => {
    let received: Buffer = Buffer.alloc(0);
    let done = false;

    const finish = () => {
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onClose);
    };
    const timer = setTimeout(() => {
      if (done) return;
      finish();
      refuse(socket, 'header-timeout', `${received.length} bytes received`);
    }, headerTimeoutMs);
    timer.unref();

    const onEnd = () => {
      // The peer half-closed before a complete header: nothing can follow.
      if (done) return;
      finish();
      socket.destroy();
    };
    const onClose = () => {
      if (!done) finish();
    };

    const onReadable = () => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        const result = parseProxyV2(received, maxHeaderBytes);
        if (result.kind === 'incomplete') continue;
        finish();
        if (result.kind === 'invalid') {
          if (opts.headerOptional && !startsLikeProxyV2(received)) {
            // No header at all: the connection's own first bytes go to the target untouched.
            socket.unshift(received);
            target.emit('connection', socket);
          } else {
            refuse(socket, 'invalid-header', result.reason);
          }
          return;
        }
        if (!fromLoadBalancer) {
          refuse(socket, 'peer-not-allowed', 'PROXY header from outside the allowed networks');
          return;
        }
        // §2.2: LOCAL, and PROXY for AF_UNSPEC, carry no client; the real peer address stands.
        if (result.command === 'PROXY' && result.source && result.destination) {
          proxied.set(socket, {
            source: { address: unmapIpv4(result.source.address), port: result.source.port },
            destination: { address: unmapIpv4(result.destination.address), port: result.destination.port },
          });
        }
        // Whatever followed the header in the same read (a TLS ClientHello, an HTTP request)
        // goes back in front of the stream, so the target reads it as the connection's first
        // bytes. tls.Server's TLSSocket drains the raw socket's buffer when it starts reading,
        // and http.Server receives it through its 'data' listener, before any later bytes.
        const rest = received.subarray(result.headerLength);
        if (rest.length > 0) socket.unshift(rest);
        target.emit('connection', socket);
        return;
      }
    };

    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('close', onClose);
  };

  startConnectionTracking(target);

  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' }, () => {
      listener.removeListener('error', reject);
      resolve();
    });
  });
  return listener;
}

function startsLikeProxyV2(received: Buffer): boolean {
  const n = Math.min(received.length, PROXY_V2_SIGNATURE.length);
  return received.subarray(0, n).equals(PROXY_V2_SIGNATURE.subarray(0, n));
}

/**
 * The client address carried by the PROXY header of this connection, or undefined when the
 * connection had none (not behind the listener, or a LOCAL health check). Accepts the raw
 * socket or a TLSSocket made over it (Node keeps the raw socket as `_parent`).
 */
export function proxiedClientAddress(socket: Socket | undefined | null): string | undefined {
  return proxiedConnectionOf(socket)?.source.address;
}

/** Source and destination from the PROXY header of this connection, if it had one. */
export function proxiedConnectionOf(socket: Socket | undefined | null): ProxiedConnection | undefined {
  if (!socket) return undefined;
  const direct = proxied.get(socket);
  if (direct) return direct;
  const parent = (socket as Socket & { _parent?: unknown })._parent;
  return parent && typeof parent === 'object' ? proxied.get(parent as Socket) : undefined;
}

/**
 * The address to log, throttle and audit for a request: the client from the PROXY header when
 * there was one, else the peer, with IPv4-mapped IPv6 (::ffff:a.b.c.d) shown as IPv4.
 */
export function clientAddressOf(req: IncomingMessage): string {
  return proxiedClientAddress(req.socket) ?? unmapIpv4(req.socket?.remoteAddress ?? '');
}

/**
 * An http.Server only starts tracking its connections when it emits 'listening' (Node's
 * lib/_http_server.js, setupConnectionsTracking). Without that, a server fed through
 * emit('connection') never enforces headersTimeout or requestTimeout (so a slow client could
 * hold connections forever), and closeIdleConnections() / closeAllConnections() find nothing
 * to close. The target never listens itself, so start the tracking here, by calling that
 * listener alone rather than emitting 'listening' to everyone.
 */
function startConnectionTracking(target: Server): void {
  const setup = target.listeners('listening').find((fn) => fn.name === 'setupConnectionsTracking');
  // Calling it again later (should the target ever listen) is harmless: it replaces its interval.
  if (setup) (setup as (this: Server) => void).call(target);
}

function ignore(): void {}
