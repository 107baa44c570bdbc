/**
 * A small real SMTP receiver for tests (RFC 5321 with STARTTLS, RFC 3207, and AUTH PLAIN /
 * LOGIN, RFC 4954), on 127.0.0.1 and a port the OS picks. It keeps every message it accepts
 * and can decode the parts tests look at (headers with RFC 2047 words, base64 or
 * quoted-printable text bodies).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export interface ReceivedMail {
  readonly from: string;
  readonly to: readonly string[];
  /** The DATA as sent, dot-unstuffed, CRLF line ends. */
  readonly raw: string;
  /** Whether the transaction ran inside TLS. */
  readonly tls: boolean;
  readonly authUser?: string;
}

export interface SmtpReceiverOptions {
  /** Offer STARTTLS with this certificate. @default no STARTTLS */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Accept AUTH with exactly these credentials (only after STARTTLS when tls is set). */
  readonly credentials?: { readonly user: string; readonly pass: string };
  /** Recipients answered with 550. */
  readonly refuse?: readonly string[];
}

export class SmtpReceiver {
  readonly messages: ReceivedMail[] = [];
  /** Every command line received, for protocol assertions (AUTH lines are masked). */
  readonly commands: string[] = [];
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(opts: SmtpReceiverOptions = {}): Promise<SmtpReceiver> {
    let receiver!: SmtpReceiver;
    const server = createServer((socket) => receiver.session(socket, opts));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiver = new SmtpReceiver(server, (server.address() as { port: number }).port);
    return receiver;
  }

  /** Resolves when `count` messages have arrived. */
  async waitFor(count: number, timeoutMs = 10_000): Promise<ReceivedMail[]> {
    const until = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      if (Date.now() > until) throw new Error(`expected ${count} message(s), got ${this.messages.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.messages;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      (this.server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    });
  }

  private session(plain: Socket, opts: SmtpReceiverOptions): void {
    let socket: Socket = plain;
    let secure = false;
    let buffer = '';
    let from: string | undefined;
    let to: string[] = [];
    let data: string[] | undefined;
    let authUser: string | undefined;
    let pendingLogin: { user?: string } | undefined;
    const reply = (line: string) => socket.write(`${line}\r\n`);
    const reset = () => {
      from = undefined;
      to = [];
      data = undefined;
    };
    const onLine = (line: string) => {
      if (data) {
        if (line === '.') {
          this.messages.push({ from: from ?? '', to, raw: data.join('\r\n'), tls: secure, ...(authUser ? { authUser } : {}) });
          reset();
          reply('250 2.0.0 queued as test');
          return;
        }
        data.push(line.startsWith('.') ? line.slice(1) : line);
        return;
      }
      if (pendingLogin) {
        const value = Buffer.from(line, 'base64').toString('utf8');
        if (pendingLogin.user === undefined) {
          pendingLogin.user = value;
          reply(`334 ${Buffer.from('Password:').toString('base64')}`);
          return;
        }
        const ok = opts.credentials && pendingLogin.user === opts.credentials.user && value === opts.credentials.pass;
        if (ok) authUser = pendingLogin.user;
        pendingLogin = undefined;
        reply(ok ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication credentials invalid');
        return;
      }
      const verb = line.split(' ')[0]!.toUpperCase();
      this.commands.push(verb === 'AUTH' ? `AUTH ${line.split(' ')[1] ?? ''}` : line);
      switch (verb) {
        case 'EHLO':
        case 'HELO': {
          const ext = ['250-kanmon-test-receiver', '250-8BITMIME', '250-SMTPUTF8'];
          if (opts.tls && !secure) ext.push('250-STARTTLS');
          if (opts.credentials && (secure || !opts.tls)) ext.push('250-AUTH PLAIN LOGIN');
          ext.push('250 SIZE 10485760');
          socket.write(`${ext.join('\r\n')}\r\n`);
          return;
        }
        case 'STARTTLS': {
          if (!opts.tls || secure) return void reply('454 4.7.0 TLS not available');
          reply('220 2.0.0 Ready to start TLS');
          socket.removeAllListeners('data');
          const upgraded = new TLSSocket(socket, { isServer: true, cert: opts.tls.cert, key: opts.tls.key });
          socket = upgraded;
          secure = true;
          buffer = '';
          reset();
          authUser = undefined;
          upgraded.on('data', onData);
          upgraded.on('error', () => undefined);
          return;
        }
        case 'AUTH': {
          const [, mech, initial] = line.split(' ');
          if (!opts.credentials) return void reply('502 5.5.1 AUTH not offered');
          if (mech?.toUpperCase() === 'PLAIN') {
            const parts = Buffer.from(initial ?? '', 'base64').toString('utf8').split('\u0000');
            const ok = parts[1] === opts.credentials.user && parts[2] === opts.credentials.pass;
            if (ok) authUser = parts[1];
            return void reply(ok ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication credentials invalid');
          }
          if (mech?.toUpperCase() === 'LOGIN') {
            pendingLogin = {};
            return void reply(`334 ${Buffer.from('Username:').toString('base64')}`);
          }
          return void reply('504 5.5.4 Unrecognized authentication type');
        }
        case 'MAIL':
          if (opts.credentials && !authUser) return void reply('530 5.7.0 Authentication required');
          from = /<([^>]*)>/.exec(line)?.[1] ?? '';
          return void reply('250 2.1.0 OK');
        case 'RCPT': {
          const rcpt = /<([^>]*)>/.exec(line)?.[1] ?? '';
          if (opts.refuse?.includes(rcpt)) return void reply('550 5.1.1 No such user');
          to.push(rcpt);
          return void reply('250 2.1.5 OK');
        }
        case 'DATA':
          if (!from || to.length === 0) return void reply('503 5.5.1 Bad sequence of commands');
          data = [];
          return void reply('354 End data with <CR><LF>.<CR><LF>');
        case 'RSET':
          reset();
          return void reply('250 2.0.0 OK');
        case 'NOOP':
          return void reply('250 2.0.0 OK');
        case 'QUIT':
          reply('221 2.0.0 Bye');
          socket.end();
          return;
        default:
          reply('500 5.5.2 Command not recognized');
      }
    };
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let i;
      while ((i = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        onLine(Buffer.from(line, 'latin1').toString('utf8'));
      }
    };
    plain.on('data', onData);
    plain.on('error', () => undefined);
    reply('220 kanmon-test-receiver ESMTP');
  }
}

/** Header value by name (first one), unfolded and with RFC 2047 encoded words decoded. */
export function mailHeader(raw: string, name: string): string | undefined {
  const head = raw.split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  if (!line) return undefined;
  return decodeWords(line.slice(name.length + 1).trim());
}

function decodeWords(value: string): string {
  return value.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=\s*(?==\?)?/g, (_m, _cs: string, enc: string, text: string) =>
    enc.toUpperCase() === 'B'
      ? Buffer.from(text, 'base64').toString('utf8')
      : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'),
  );
}

/** The text body of a single-part message, decoded from its Content-Transfer-Encoding. */
export function mailText(raw: string): string {
  const [, ...rest] = raw.split('\r\n\r\n');
  const body = rest.join('\r\n\r\n');
  const encoding = (mailHeader(raw, 'Content-Transfer-Encoding') ?? '7bit').toLowerCase();
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    return Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  }
  return body;
}
