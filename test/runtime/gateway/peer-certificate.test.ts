import { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { PresentedCertificateCheck } from '../../../runtime/ca/index.js';
import { PeerCertificates, peerCertificateDer, type PresentedCertificateChecker } from '../../../runtime/gateway/peer-certificate.js';

/** A TLS socket as the listener sees it, with the peer certificate the handshake carried (or none). */
function socketWith(raw: Buffer | undefined): TLSSocket {
  const socket = Object.create(TLSSocket.prototype) as TLSSocket;
  Object.defineProperty(socket, 'getPeerX509Certificate', { value: () => (raw ? { raw } : undefined) });
  return socket;
}

class FakeChecker implements PresentedCertificateChecker {
  calls = 0;
  constructor(
    readonly statusCacheMs: number,
    public answer: (now: number) => PresentedCertificateCheck,
    private readonly clock: { now: number },
  ) {}
  async checkPresented(): Promise<PresentedCertificateCheck> {
    this.calls++;
    return this.answer(this.clock.now);
  }
}

const valid = (statusReadAt: number, expiresAt = Number.MAX_SAFE_INTEGER): PresentedCertificateCheck => ({
  valid: true,
  serial: 'ab',
  fingerprint: 'f',
  owner: { kind: 'user', userId: 'u1' },
  deviceLabel: 'laptop',
  expiresAt,
  statusReadAt,
});

describe('PeerCertificates', () => {
  it('reads the certificate only from the TLS socket', () => {
    expect(peerCertificateDer(socketWith(undefined))).toBeUndefined();
    expect(peerCertificateDer(socketWith(Buffer.from([1, 2])))).toEqual(Buffer.from([1, 2]));
    expect(peerCertificateDer({ getPeerX509Certificate: () => ({ raw: Buffer.from([1]) }) })).toBeUndefined();
  });

  it('checks once per connection within the status cache bound, counted from when the status was read', async () => {
    const clock = { now: 10_000 };
    // The service's own cache read the status 3 s before this connection asked.
    const checker = new FakeChecker(5000, () => valid(7_000), clock);
    const peers = new PeerCertificates({ checker, userById: async () => undefined, now: () => clock.now });
    const socket = socketWith(Buffer.from([1]));
    expect((await peers.evidenceOf(socket))!.check.valid).toBe(true);
    clock.now = 11_999;
    await peers.evidenceOf(socket);
    expect(checker.calls).toBe(1);
    // 7 000 + 5 000: the answer is as old as the bound allows, so it is asked again.
    clock.now = 12_000;
    checker.answer = () => ({ valid: false, reason: 'revoked', serial: 'ab', statusReadAt: 12_000 });
    expect((await peers.evidenceOf(socket))!.check).toMatchObject({ valid: false, reason: 'revoked' });
    expect(checker.calls).toBe(2);
    // Another connection has its own answer.
    await peers.evidenceOf(socketWith(Buffer.from([1])));
    expect(checker.calls).toBe(3);
  });

  it('never keeps an answer past the certificate’s expiry, a store failure, or with caching off', async () => {
    const clock = { now: 1_000 };
    const checker = new FakeChecker(5000, (now) => valid(now, 2_000), clock);
    const peers = new PeerCertificates({ checker, userById: async () => undefined, now: () => clock.now });
    const socket = socketWith(Buffer.from([1]));
    await peers.evidenceOf(socket);
    clock.now = 2_000;
    await peers.evidenceOf(socket);
    expect(checker.calls).toBe(2);

    checker.answer = () => ({ valid: false, reason: 'unavailable', serial: 'ab' });
    const other = socketWith(Buffer.from([2]));
    await peers.evidenceOf(other);
    await peers.evidenceOf(other);
    expect(checker.calls).toBe(4);

    const off = new FakeChecker(0, (now) => valid(now), clock);
    const uncached = new PeerCertificates({ checker: off, userById: async () => undefined, now: () => clock.now });
    await uncached.evidenceOf(socket);
    await uncached.evidenceOf(socket);
    expect(off.calls).toBe(2);
  });

  it('looks up the user a valid user certificate names, and nobody for a shared one', async () => {
    const clock = { now: 0 };
    const checker = new FakeChecker(5000, (now) => valid(now), clock);
    const holder = { userId: 'u1', username: 'alice', groups: ['staff'], disabled: false };
    const peers = new PeerCertificates({ checker, userById: async (id) => (id === 'u1' ? holder : undefined), now: () => clock.now });
    expect(await peers.evidenceOf(socketWith(Buffer.from([1])))).toMatchObject({ holder });
    checker.answer = (now) => ({ ...valid(now), owner: { kind: 'shared', label: 'kiosk' } });
    expect((await peers.evidenceOf(socketWith(Buffer.from([2]))))!.holder).toBeUndefined();
  });
});
