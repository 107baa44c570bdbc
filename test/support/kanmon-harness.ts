import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Agent, request } from 'undici';
import type { KanmonConfigInput } from '../../runtime/config/schema.js';
import { startKanmon, type KanmonApp } from '../../runtime/app.js';
import { SESSION_COOKIE } from '../../runtime/services/sessions.js';
import type { User } from '../../runtime/store/types.js';
import { SoftAuthenticator } from './soft-authenticator.js';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json<T = any>(): T;
}

export interface RequestOptions {
  readonly cookie?: string;
  /** Origin header for POSTs; defaults to the app's own origin. `null` sends none. */
  readonly origin?: string | null;
  readonly headers?: Record<string, string>;
  readonly contentType?: string;
  /** Send this exact body instead of JSON-encoding `body`. */
  readonly raw?: string | Buffer;
}

/**
 * A real Kanmon on a free port with real TLS, and an HTTP client that trusts its
 * development CA. Each harness has its own data directory and SQLite file.
 */
export class KanmonHarness {
  private constructor(
    readonly app: KanmonApp,
    readonly dataDir: string,
    private readonly agent: Agent,
  ) {}

  static async start(config: KanmonConfigInput = {}): Promise<KanmonHarness> {
    const dataDir = mkdtempSync(join(tmpdir(), 'kanmon-test-'));
    const app = await startKanmon({
      dataDir,
      log: { level: 'silent' },
      routes: [{ id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' }],
      ...config,
      server: { port: 0, host: '127.0.0.1', ...(config.server ?? {}) },
    });
    const agent = new Agent({ connect: { ca: readFileSync(app.devCaCertPath!), servername: 'localhost' } });
    return new KanmonHarness(app, dataDir, agent);
  }

  get origin(): string {
    return this.app.url;
  }

  async get(path: string, opts: RequestOptions = {}): Promise<HttpAnswer> {
    return this.send('GET', path, undefined, opts);
  }

  async post(path: string, body?: unknown, opts: RequestOptions = {}): Promise<HttpAnswer> {
    return this.send('POST', path, body, opts);
  }

  async send(method: string, path: string, body: unknown, opts: RequestOptions = {}): Promise<HttpAnswer> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.cookie) headers.cookie = opts.cookie;
    let payload: string | Buffer | undefined;
    if (method !== 'GET' && method !== 'HEAD') {
      if (opts.origin !== null) headers.origin = opts.origin ?? this.origin;
      payload = opts.raw ?? JSON.stringify(body ?? {});
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const res = await request(`https://127.0.0.1:${this.app.port}${path}`, {
      method: method as 'GET',
      headers: { host: `localhost:${this.app.port}`, ...headers },
      ...(payload !== undefined ? { body: payload } : {}),
      dispatcher: this.agent,
    });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      headers: res.headers as Record<string, string | string[] | undefined>,
      text,
      json: () => JSON.parse(text),
    };
  }

  /** A raw WebSocket handshake over TLS; resolves with everything the client got until the connection closed. */
  handshake(path: string, cookie?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: this.app.port, servername: 'localhost', ca: readFileSync(this.app.devCaCertPath!) }, () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: localhost:${this.app.port}\r\n${cookie ? `Cookie: ${cookie}\r\n` : ''}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
        );
      });
      let data = '';
      socket.setTimeout(10_000, () => socket.destroy(new Error(`no end of the answer to ${path}: ${data}`)));
      socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
  }

  /** Signs a user in without a ceremony (for gateway tests); returns the Cookie header value. */
  async sessionCookie(user: User, methods: readonly string[] = ['passkey']): Promise<string> {
    const { cookie } = await this.app.services.sessions.start(user, methods, { ip: '127.0.0.1', userAgent: 'test' });
    return cookie;
  }

  /** Enrolls the bootstrap administrator with a software authenticator through the HTTP API. */
  async enrollAdmin(authenticator: SoftAuthenticator, username = 'admin'): Promise<{ cookie: string; user: User }> {
    const link = await this.app.services.enrollment.createBootstrapLink();
    if (!link) throw new Error('store already has users');
    const options = (await this.post('/.kanmon/api/enroll/options', { token: link.token, username })).json();
    const response = authenticator.register(options);
    const res = await this.post('/.kanmon/api/enroll/verify', { token: link.token, response, name: 'test key' });
    if (res.status !== 200) throw new Error(`enrollment failed: ${res.status} ${res.text}`);
    const user = (await this.app.services.users.require(username))!;
    return { cookie: sessionCookieFrom(res)!, user };
  }

  async close(): Promise<void> {
    await this.agent.close();
    await this.app.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** The `name=value` of the session cookie a response set, if any. */
export function sessionCookieFrom(res: HttpAnswer): string | undefined {
  const raw = res.headers['set-cookie'];
  const all = Array.isArray(raw) ? raw : raw ? [raw] : [];
  const hit = all.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  return hit?.split(';')[0];
}

export function softAuthenticatorFor(h: KanmonHarness, opts: ConstructorParameters<typeof SoftAuthenticator>[0] = {}): SoftAuthenticator {
  return new SoftAuthenticator({ origin: h.origin, ...opts });
}
