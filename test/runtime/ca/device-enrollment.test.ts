/**
 * The enrollment gate and the certificate offered after enrollment, on the real CA, real
 * certificates and a real SQLite store.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { DeviceEnrollmentService } from '../../../runtime/services/device-enrollment.js';
import { ServiceError } from '../../../runtime/services/errors.js';
import { clientCertificatesWanted } from '../../../runtime/tls/client-auth.js';
import { guessDeviceLabel } from '../../../runtime/portal/routes/enroll.js';
import type { User } from '../../../runtime/store/types.js';
import { CaWorld, openssl, type CaNode } from './support.js';

const CONTEXT = { ip: '127.0.0.1', userAgent: 'test' };

describe('device enrollment', () => {
  let world: CaWorld;
  let node: CaNode;
  let alice: User;
  let bob: User;

  beforeAll(async () => {
    world = await CaWorld.create({ enrollment: { requireClientCertificate: true }, groups: { office: { offerClientCertificate: true } } });
    node = world.node();
    alice = await node.users.addUser({ username: 'alice', groups: ['office'], actor: 'test' });
    bob = await node.users.addUser({ username: 'bob', actor: 'test' });
  });
  afterAll(async () => world?.close());

  function service(config = world.config) {
    return new DeviceEnrollmentService({ config, certificates: node.certificates, documents: world.store.documents, audit: node.audit, now: world.now });
  }

  it('the gate passes only the enrolling user\'s own valid certificate from this handshake', async () => {
    const gate = service();
    const own = (await node.certificates.issueForUser(alice, { deviceLabel: 'laptop' })).certificate;
    const bobs = (await node.certificates.issueForUser(bob, { deviceLabel: 'pc' })).certificate;
    const shared = (await node.certificates.issueShared('kiosk-1')).certificate;
    const revoked = (await node.certificates.issueForUser(alice, { deviceLabel: 'old phone' })).certificate;
    await node.certificates.revoke(revoked.serial);
    await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=alice', '-days', '1', '-keyout', join(world.dir, 'self.key'), '-out', join(world.dir, 'self.pem'));
    const selfSigned = new Uint8Array(new X509Certificate(readFileSync(join(world.dir, 'self.pem'))).raw);

    expect(await gate.checkGate(alice, own.certificateDer, 'passkey', CONTEXT)).toEqual({ ok: true, serial: own.serial });
    expect(await gate.checkGate(alice, undefined, 'passkey', CONTEXT)).toEqual({ ok: false, reason: 'no-certificate' });
    expect(await gate.checkGate(alice, bobs.certificateDer, 'passkey', CONTEXT)).toEqual({ ok: false, reason: 'certificate-other-user' });
    expect(await gate.checkGate(alice, shared.certificateDer, 'totp', CONTEXT)).toEqual({ ok: false, reason: 'certificate-other-user' });
    expect(await gate.checkGate(alice, revoked.certificateDer, 'passkey', CONTEXT)).toEqual({ ok: false, reason: 'certificate-invalid' });
    expect(await gate.checkGate(alice, selfSigned, 'passkey', CONTEXT)).toEqual({ ok: false, reason: 'certificate-invalid' });
    expect(await gate.checkGate(alice, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), 'passkey', CONTEXT)).toEqual({ ok: false, reason: 'certificate-invalid' });
    // Expired: the clock passes the certificate's end.
    const saved = world.clock;
    world.clock = own.expiresAt + 1;
    expect(await gate.checkGate(alice, own.certificateDer, 'passkey', CONTEXT)).toEqual({ ok: false, reason: 'certificate-invalid' });
    world.clock = saved;
    const refusals = (await node.audit.tail({ limit: 50 })).filter((e) => e.type === 'enroll.certificate');
    expect(refusals).toHaveLength(7);
    expect(refusals.every((e) => e.userId === alice.id && e.result === 'failure')).toBe(true);

    // Off, it lets everything through; on, the listener asks for certificates.
    const off = parseConfig({});
    expect(await service(off).checkGate(alice, undefined, 'passkey', CONTEXT)).toEqual({ ok: true });
    expect(clientCertificatesWanted(off)).toBe(false);
    expect(clientCertificatesWanted(world.config)).toBe(true);
    expect(() => parseConfig({ tls: { source: 'offloaded' }, enrollment: { requireClientCertificate: true } })).toThrow(/requireClientCertificate/);
    expect(() => parseConfig({ groups: { office: { offerClientCertificate: 'yes' } } })).toThrow(/offerClientCertificate/);
  });

  it('the offer stands only for members, is taken once even by racing tabs, survives bad input, and expires', async () => {
    const offers = service();
    expect(await offers.standOffer(bob)).toBe(false);
    expect(await offers.hasOffer(bob)).toBe(false);
    await expect(offers.acceptOffer(bob, { deviceLabel: 'pc' }, CONTEXT)).rejects.toMatchObject({ code: 'token-unusable' });

    const carol = await node.users.addUser({ username: 'carol', groups: ['office'], actor: 'test' });
    expect(await offers.standOffer(carol)).toBe(true);
    for (const deviceLabel of ['x'.repeat(65), '\u0000\u0001', 42]) {
      const err = await offers.acceptOffer(carol, { deviceLabel }, CONTEXT).catch((e: unknown) => e);
      if (typeof deviceLabel === 'number') {
        // Not a string: the default label, so this one takes the offer. Stand it again.
        expect(err).toMatchObject({ issued: expect.anything() });
        await node.certificates.revoke((err as { issued: { certificate: { serial: string } } }).issued.certificate.serial);
        await offers.standOffer(carol);
      } else {
        expect(err).toBeInstanceOf(ServiceError);
        expect((err as ServiceError).code).toBe('invalid-input');
      }
    }
    expect(await offers.hasOffer(carol)).toBe(true);
    const results = await Promise.allSettled([1, 2, 3, 4].map((i) => offers.acceptOffer(carol, { deviceLabel: `tab ${i}`, legacy: 'on' }, CONTEXT)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const accepted = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<DeviceEnrollmentService['acceptOffer']>>>).value;
    expect(accepted.issued.profile).toBe('legacy');
    expect(accepted.link.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(results.filter((r) => r.status === 'rejected').every((r) => ((r as PromiseRejectedResult).reason as ServiceError).code === 'token-unusable')).toBe(true);
    expect((await node.certificates.listForUser(carol.id)).filter((c) => c.status === 'active')).toHaveLength(1);

    expect(await offers.standOffer(carol)).toBe(true);
    world.clock += 31 * 60_000;
    expect(await offers.hasOffer(carol)).toBe(false);
    await expect(offers.acceptOffer(carol, { deviceLabel: 'late' }, CONTEXT)).rejects.toMatchObject({ code: 'token-unusable' });
  });

  it('guesses a device name from the browser, and nothing from junk', () => {
    expect(guessDeviceLabel('Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)')).toBe('iPhone');
    expect(guessDeviceLabel('Mozilla/5.0 (Windows NT 10.0; Win64; x64)')).toBe('Windows PC');
    expect(guessDeviceLabel('Mozilla/5.0 (Linux; Android 15)')).toBe('Android');
    expect(guessDeviceLabel(undefined)).toBe('device');
    expect(guessDeviceLabel('<script>'.repeat(1000))).toBe('device');
  });
});
