import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';

import type { Store } from '../../../runtime/store/types.js';
import { startPasskeyAuthentication, verifyPasskeyAuthentication } from '../../../runtime/webauthn/authentication.js';
import { CeremonyError } from '../../../runtime/webauthn/errors.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../../runtime/webauthn/registration.js';
import {
  decodeClientData,
  isCanonicalBase64Url,
  parseAuthenticationResponse,
  parseRegistrationResponse,
  RESPONSE_LIMITS,
} from '../../../runtime/webauthn/response-shape.js';
import { encodeCbor, SoftAuthenticator } from '../../support/soft-authenticator.js';
import { createUser, depsWith, enroll, expectCeremonyError, openTestStore, type TestStore } from './fixtures.js';

let testStore: TestStore;
let store: Store;

beforeAll(async () => {
  testStore = await openTestStore();
  store = testStore.store;
});
afterAll(async () => {
  await testStore.close();
});

const b64 = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');
const challenge = b64(Buffer.alloc(32, 3));
const clientData = (fields: Record<string, unknown> = {}) =>
  b64(JSON.stringify({ type: 'webauthn.get', challenge, origin: 'https://kanmon.example', crossOrigin: false, ...fields }));

function registrationJSON(): RegistrationResponseJSON {
  return {
    id: b64(Buffer.alloc(16, 1)),
    rawId: b64(Buffer.alloc(16, 1)),
    type: 'public-key',
    clientExtensionResults: {},
    response: {
      clientDataJSON: clientData({ type: 'webauthn.create' }),
      attestationObject: b64(Buffer.alloc(200, 0xa3)),
      transports: ['usb'],
    },
  };
}

function authenticationJSON(): AuthenticationResponseJSON {
  return {
    id: b64(Buffer.alloc(16, 1)),
    rawId: b64(Buffer.alloc(16, 1)),
    type: 'public-key',
    clientExtensionResults: {},
    response: {
      clientDataJSON: clientData(),
      authenticatorData: b64(Buffer.alloc(37, 5)),
      signature: b64(Buffer.alloc(70, 6)),
      userHandle: b64('user-1'),
    },
  };
}

/** A deep copy with one path replaced (undefined deletes it). */
function withField<T extends object>(value: T, path: string, replacement: unknown): unknown {
  const copy = structuredClone(value) as Record<string, unknown>;
  const keys = path.split('.');
  let node = copy;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (replacement === undefined) delete node[last];
  else node[last] = replacement;
  return copy;
}

function expectMalformed(fn: () => unknown, pattern?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CeremonyError);
  expect((caught as CeremonyError).reason).toBe('malformed');
  if (pattern) expect((caught as CeremonyError).message).toMatch(pattern);
}

describe('isCanonicalBase64Url', () => {
  it.each(['', 'AA', 'AAA', 'AAAA', 'ab-_', b64(Buffer.from([0xfb, 0xff]))])('accepts %j', (value) => {
    expect(isCanonicalBase64Url(value)).toBe(true);
  });
  it.each([
    ['padding', 'AA=='],
    ['standard base64 +', 'ab+c'],
    ['standard base64 /', 'ab/c'],
    ['whitespace', 'AA AA'],
    ['newline', 'AAAA\n'],
    ['impossible length', 'AAAAA'],
    ['non-zero trailing bits', 'AB'],
    ['non-ASCII', 'AAÅA'],
  ])('refuses %s', (_name, value) => {
    expect(isCanonicalBase64Url(value)).toBe(false);
  });
});

describe('decodeClientData', () => {
  it('returns the members we act on', () => {
    expect(decodeClientData(clientData({ extra: 'ignored' }))).toEqual({
      type: 'webauthn.get',
      challenge,
      origin: 'https://kanmon.example',
      crossOrigin: false,
    });
  });

  it.each([
    ['not base64url', 'eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0=', /base64url/],
    ['not UTF-8', b64(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), /UTF-8/],
    ['not JSON', b64('{"type":'), /JSON/],
    ['a JSON array', b64('["webauthn.get"]'), /object/],
    ['JSON null', b64('null'), /object/],
    ['type missing', clientData({ type: undefined }), /clientData.type/],
    ['type not a string', clientData({ type: 1 }), /clientData.type/],
    ['origin not a string', clientData({ origin: ['https://kanmon.example'] }), /clientData.origin/],
    ['challenge missing', clientData({ challenge: undefined }), /clientData.challenge/],
    ['challenge not a string', clientData({ challenge: 42 }), /clientData.challenge/],
    ['challenge with padding', clientData({ challenge: `${challenge}=` }), /clientData.challenge/],
    ['challenge empty', clientData({ challenge: '' }), /clientData.challenge/],
    ['challenge too long', clientData({ challenge: 'A'.repeat(RESPONSE_LIMITS.challengeChars + 4) }), /clientData.challenge/],
    ['crossOrigin not a boolean', clientData({ crossOrigin: 'false' }), /crossOrigin/],
    ['topOrigin not a string', clientData({ topOrigin: 1 }), /topOrigin/],
  ])('refuses clientDataJSON that is %s', (_name, value, pattern) => {
    expectMalformed(() => decodeClientData(value), pattern);
  });

  it('refuses clientDataJSON over 4 KiB', () => {
    expectMalformed(() => decodeClientData(clientData({ pad: 'x'.repeat(4096) })), /at most 4096 bytes/);
  });
});

describe('parseRegistrationResponse', () => {
  it('keeps only validated fields and known transports', () => {
    const input = {
      ...registrationJSON(),
      unexpected: 'dropped',
      response: { ...registrationJSON().response, transports: ['usb', 'warp-drive'], publicKey: 'x', extra: 1 },
    };
    const parsed = parseRegistrationResponse(input);
    expect(parsed.json).toEqual({
      id: input.id,
      rawId: input.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: input.response.clientDataJSON, attestationObject: input.response.attestationObject, transports: ['usb'] },
    });
    expect(parsed.transports).toEqual(['usb']);
    expect(parsed.clientData.type).toBe('webauthn.create');
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'credential'],
    ['a number', 7],
  ])('refuses a credential that is %s', (_name, value) => {
    expectMalformed(() => parseRegistrationResponse(value), /credential: expected a JSON object/);
  });

  it.each([
    ['id missing', 'id', undefined, /^id:/],
    ['id not a string', 'id', 12, /^id:/],
    ['id empty', 'id', '', /^id:/],
    ['id in standard base64', 'id', 'AQEBAQEBAQEBAQEBAQEBAQ+/', /^id:/],
    ['id with padding', 'id', 'AQEBAQEBAQEBAQEBAQEBAQ==', /^id:/],
    ['rawId different from id', 'rawId', b64(Buffer.alloc(16, 2)), /rawId/],
    ['type not public-key', 'type', 'password', /type/],
    ['response missing', 'response', undefined, /response: expected a JSON object/],
    ['response an array', 'response', [], /response: expected a JSON object/],
    ['clientDataJSON missing', 'response.clientDataJSON', undefined, /clientDataJSON/],
    ['attestationObject missing', 'response.attestationObject', undefined, /attestationObject/],
    ['attestationObject not base64url', 'response.attestationObject', 'o2NmbXRk bm9uZQ', /attestationObject/],
    ['attestationObject too short to hold a credential', 'response.attestationObject', b64(Buffer.alloc(20)), /attestationObject: expected at least/],
    ['transports not an array', 'response.transports', 'usb', /transports/],
    ['transports with a non-string', 'response.transports', ['usb', 7], /transports/],
    ['too many transports', 'response.transports', Array.from({ length: 17 }, () => 'usb'), /transports/],
    ['authenticatorAttachment unknown', 'authenticatorAttachment', 'implant', /authenticatorAttachment/],
    ['clientExtensionResults an array', 'clientExtensionResults', [], /clientExtensionResults/],
  ])('refuses %s', (_name, path, value, pattern) => {
    expectMalformed(() => parseRegistrationResponse(withField(registrationJSON(), path, value)), pattern);
  });

  it('refuses a credential id over 1023 bytes', () => {
    const id = b64(Buffer.alloc(1024, 1));
    expectMalformed(() => parseRegistrationResponse({ ...registrationJSON(), id, rawId: id }), /id: expected at most 1023 bytes/);
  });

  it('accepts a credential id of exactly 1023 bytes', () => {
    const id = b64(Buffer.alloc(1023, 1));
    expect(parseRegistrationResponse({ ...registrationJSON(), id, rawId: id }).credentialId).toBe(id);
  });

  it('refuses an attestationObject over 64 KiB without decoding it', () => {
    const huge = 'A'.repeat(Math.ceil((64 * 1024 * 4) / 3) + 8);
    expectMalformed(
      () => parseRegistrationResponse(withField(registrationJSON(), 'response.attestationObject', huge)),
      /attestationObject: expected at most 65536 bytes/,
    );
  });
});

describe('parseAuthenticationResponse', () => {
  it('returns the decoded userHandle and drops unknown fields', () => {
    const parsed = parseAuthenticationResponse({ ...authenticationJSON(), extra: true });
    expect(Buffer.from(parsed.userHandle!).toString()).toBe('user-1');
    expect(parsed.json).toEqual(authenticationJSON());
  });

  it.each([null, ''])('treats userHandle %j as absent', (userHandle) => {
    const parsed = parseAuthenticationResponse(withField(authenticationJSON(), 'response.userHandle', userHandle));
    expect(parsed.userHandle).toBeUndefined();
    expect(parsed.json.response.userHandle).toBeUndefined();
  });

  it.each([
    ['authenticatorData missing', 'response.authenticatorData', undefined, /authenticatorData/],
    ['authenticatorData shorter than 37 bytes', 'response.authenticatorData', b64(Buffer.alloc(36)), /authenticatorData: expected at least 37/],
    ['authenticatorData over 8 KiB', 'response.authenticatorData', b64(Buffer.alloc(8 * 1024 + 1)), /authenticatorData: expected at most/],
    ['signature missing', 'response.signature', undefined, /signature/],
    ['signature empty', 'response.signature', '', /signature/],
    ['signature over 2 KiB', 'response.signature', b64(Buffer.alloc(2 * 1024 + 1)), /signature: expected at most/],
    ['signature with padding', 'response.signature', 'MEUCIQ==', /signature/],
    ['userHandle over 64 bytes', 'response.userHandle', b64(Buffer.alloc(65, 0x61)), /userHandle: expected at most 64/],
    ['userHandle not a string', 'response.userHandle', 5, /userHandle/],
    ['clientDataJSON over 4 KiB', 'response.clientDataJSON', clientData({ pad: 'x'.repeat(4096) }), /clientDataJSON: expected at most/],
  ])('refuses %s', (_name, path, value, pattern) => {
    expectMalformed(() => parseAuthenticationResponse(withField(authenticationJSON(), path, value)), pattern);
  });
});

describe('hostile input through the ceremonies', () => {
  it('an attestationObject that is not CBOR is refused as malformed', async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [] });
    const response = new SoftAuthenticator().register(options);
    const broken = { ...response, response: { ...response.response, attestationObject: b64(Buffer.alloc(100, 0xff)) } };
    await expectCeremonyError(verifyPasskeyRegistration(deps, { response: broken, subject: user.id, userId: user.id, name: 'k' }), 'malformed');
  });

  it('an attestationObject that is CBOR of the wrong structure is refused as malformed', async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [] });
    const response = new SoftAuthenticator().register(options);
    const wrong = encodeCbor(['fmt', 'none', new Uint8Array(100)]);
    const broken = { ...response, response: { ...response.response, attestationObject: b64(wrong) } };
    await expectCeremonyError(verifyPasskeyRegistration(deps, { response: broken, subject: user.id, userId: user.id, name: 'k' }), 'malformed');
  });

  it('authenticator data with trailing bytes is refused as malformed', async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const authenticator = new SoftAuthenticator();
    await enroll(depsWith(store, { rp: { userVerification: 'preferred' } }), authenticator, user);
    const options = await startPasskeyAuthentication(deps, {});
    const response = authenticator.authenticate(options);
    const authData = Buffer.concat([Buffer.from(response.response.authenticatorData, 'base64url'), Buffer.alloc(3)]);
    const broken = { ...response, response: { ...response.response, authenticatorData: b64(authData) } };
    await expectCeremonyError(verifyPasskeyAuthentication(deps, { response: broken }), 'malformed');
  });

  it('a malformed body is refused before any challenge is touched', async () => {
    const deps = depsWith(store);
    const user = await createUser(store);
    const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing: [] });
    const response = new SoftAuthenticator().register(options);
    await expectCeremonyError(
      verifyPasskeyRegistration(deps, { response: { ...response, rawId: 'different' }, subject: user.id, userId: user.id, name: 'k' }),
      'malformed',
    );
    // The challenge is still there for the real response.
    await expect(verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'k' })).resolves.toBeDefined();
  });

  it('randomly corrupted responses are only ever refused with a CeremonyError', async () => {
    // A small deterministic fuzz: flip bytes in every binary field of real, signed responses.
    let seed = 0x2545f491;
    const random = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const corrupt = (value: string) => {
      const bytes = Buffer.from(value, 'base64url');
      const flips = 1 + random(3);
      for (let i = 0; i < flips; i += 1) bytes[random(bytes.length)] ^= 1 << random(8);
      return bytes.toString('base64url');
    };

    const deps = depsWith(store, { rp: { userVerification: 'preferred' } });
    const user = await createUser(store);
    const authenticator = new SoftAuthenticator();
    await enroll(deps, authenticator, user);

    const outcomes = new Map<string, number>();
    const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

    for (let i = 0; i < 60; i += 1) {
      const other = await createUser(store);
      const options = await startPasskeyRegistration(deps, { user: other, subject: other.id, existing: [] });
      const response = new SoftAuthenticator().register(options);
      const field = (['clientDataJSON', 'attestationObject'] as const)[random(2)]!;
      const mutated = { ...response, response: { ...response.response, [field]: corrupt(response.response[field]) } };
      try {
        await verifyPasskeyRegistration(deps, { response: mutated, subject: other.id, userId: other.id, name: 'k' });
        count('accepted');
      } catch (err) {
        expect(err, String(err)).toBeInstanceOf(CeremonyError);
        count((err as CeremonyError).reason);
      }
    }
    for (let i = 0; i < 60; i += 1) {
      const options = await startPasskeyAuthentication(deps, {});
      const response = authenticator.authenticate(options);
      const field = (['clientDataJSON', 'authenticatorData', 'signature'] as const)[random(3)]!;
      const mutated = { ...response, response: { ...response.response, [field]: corrupt(response.response[field]) } };
      try {
        await verifyPasskeyAuthentication(deps, { response: mutated });
        count('assertion-accepted');
      } catch (err) {
        expect(err, String(err)).toBeInstanceOf(CeremonyError);
        count((err as CeremonyError).reason);
      }
    }
    // A corrupted assertion must never log anyone in. (A corrupted attestation may still be
    // acceptable, e.g. a flipped bit in the AAGUID, which 'none' attestation does not protect.)
    expect(outcomes.get('assertion-accepted')).toBeUndefined();
  });
});
