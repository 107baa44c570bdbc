/** The test authenticator itself must be right, or every ceremony test proves less than it claims. */
import { decodeAttestationObject, isoCBOR, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { describe, expect, it } from 'vitest';

import { encodeCbor, FLAGS, SoftAuthenticator } from '../../support/soft-authenticator.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('encodeCbor', () => {
  it.each([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65536, '1a00010000'],
    [-1, '20'],
    [-7, '26'],
    [-257, '390100'],
    ['fmt', '63666d74'],
    [new Uint8Array([1, 2]), '420102'],
    [true, 'f5'],
  ] as const)('encodes %j as RFC 8949 examples do', (value, expected) => {
    expect(hex(encodeCbor(value))).toBe(expected);
  });

  it('round-trips a COSE-like map through the verifier\'s decoder byte for byte', () => {
    const value = new Map<number | string, unknown>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, new Uint8Array(32).fill(7)],
      ['k', 'v'],
    ]);
    const encoded = encodeCbor(value as never);
    const decoded = isoCBOR.decodeFirst<Map<number | string, unknown>>(new Uint8Array(encoded));
    expect(decoded.get(3)).toBe(-7);
    expect(hex(isoCBOR.encode(decoded as never))).toBe(hex(encoded));
  });
});

describe('SoftAuthenticator', () => {
  const options = {
    challenge: Buffer.alloc(32, 1).toString('base64url'),
    rp: { id: 'kanmon.example', name: 'Kanmon' },
    user: { id: Buffer.from('u1').toString('base64url'), name: 'u1', displayName: 'U1' },
    pubKeyCredParams: [{ alg: -7, type: 'public-key' as const }],
  };

  it('builds a none attestation with the requested flags, counter and AAGUID', () => {
    const authenticator = new SoftAuthenticator({ aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd', backupEligible: true, backedUp: true });
    const response = authenticator.register(options, { counter: 3 });
    const attestation = decodeAttestationObject(new Uint8Array(Buffer.from(response.response.attestationObject, 'base64url')));
    expect(attestation.get('fmt')).toBe('none');
    expect(attestation.get('attStmt').size).toBe(0);
    const authData = parseAuthenticatorData(attestation.get('authData'));
    expect(authData.flags).toMatchObject({ up: true, uv: true, be: true, bs: true, at: true, ed: false });
    expect(authData.flags.flagsInt).toBe(FLAGS.UP | FLAGS.UV | FLAGS.BE | FLAGS.BS | FLAGS.AT);
    expect(authData.counter).toBe(3);
    expect(hex(authData.aaguid!)).toBe('fbfc3007154e4ecc8c0b6e020557d7bd');
    expect(Buffer.from(authData.credentialID!).toString('base64url')).toBe(response.id);
    const clientData = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString());
    expect(clientData).toEqual({ type: 'webauthn.create', challenge: options.challenge, origin: 'https://kanmon.example', crossOrigin: false });
  });

  it('increments its counter per assertion, or stays at zero like a synced passkey', () => {
    const counting = new SoftAuthenticator();
    const zero = new SoftAuthenticator({ counter: 'zero' });
    counting.register(options);
    zero.register(options);
    const request = { challenge: options.challenge, rpId: 'kanmon.example' };
    const counterOf = (a: SoftAuthenticator) =>
      parseAuthenticatorData(new Uint8Array(Buffer.from(a.authenticate(request).response.authenticatorData, 'base64url'))).counter;
    expect([counterOf(counting), counterOf(counting)]).toEqual([1, 2]);
    expect([counterOf(zero), counterOf(zero)]).toEqual([0, 0]);
  });
});
