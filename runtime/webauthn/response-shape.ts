/**
 * Strict validation of the JSON a browser posts at the end of a ceremony, before any of it
 * reaches the verifier. The input is untrusted: every field is type-checked, every binary
 * field must be canonical unpadded base64url (what PublicKeyCredential.toJSON() and
 * @simplewebauthn/browser produce), and every size is capped so that a hostile client cannot
 * make us decode megabytes of CBOR. The result is a fresh object holding only the fields we
 * checked; anything else the client sent is dropped.
 */
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';

import { CeremonyError } from './errors.js';

export const RESPONSE_LIMITS = {
  /** WebAuthn L3 §7.1: credential ids longer than 1023 bytes must be refused. */
  credentialIdBytes: 1023,
  clientDataJSONBytes: 4 * 1024,
  attestationObjectBytes: 64 * 1024,
  authenticatorDataBytes: 8 * 1024,
  /** RSA-4096 signatures are 512 bytes; leaves room without inviting abuse. */
  signatureBytes: 2 * 1024,
  /** WebAuthn §5.4.3: a user handle is at most 64 bytes. */
  userHandleBytes: 64,
  /** Our challenges are 32 bytes (43 characters); anything much longer was not ours. */
  challengeChars: 128,
  transports: 16,
  transportChars: 32,
} as const;

/** The transports we keep; unknown future values are dropped rather than refused. */
const KNOWN_TRANSPORTS: ReadonlySet<string> = new Set([
  'ble',
  'cable',
  'hybrid',
  'internal',
  'nfc',
  'smart-card',
  'usb',
]);

/** The fields of CollectedClientData (WebAuthn §5.8.1) that we act on. */
export interface ClientData {
  readonly type: string;
  readonly challenge: string;
  readonly origin: string;
  readonly crossOrigin: boolean;
  readonly topOrigin?: string;
}

export interface ParsedRegistrationResponse {
  /** Only the validated fields, in the shape the verifier expects. */
  readonly json: RegistrationResponseJSON;
  readonly clientData: ClientData;
  readonly credentialId: string;
  /** Known transports only, de-duplicated. */
  readonly transports: string[];
}

export interface ParsedAuthenticationResponse {
  readonly json: AuthenticationResponseJSON;
  readonly clientData: ClientData;
  readonly credentialId: string;
  /** The decoded userHandle bytes, when the authenticator returned one. */
  readonly userHandle?: Uint8Array;
  /** The decoded signature bytes. */
  readonly signature: Uint8Array;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** True for canonical unpadded base64url: the alphabet, a possible length, zero trailing bits. */
export function isCanonicalBase64Url(value: string): boolean {
  if (!BASE64URL.test(value) || value.length % 4 === 1) return false;
  // Re-encoding catches non-zero trailing bits ("AB" and "AA" decode to the same byte), so
  // that a credential id has exactly one spelling.
  return Buffer.from(value, 'base64url').toString('base64url') === value;
}

function fail(message: string): never {
  throw new CeremonyError('malformed', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The longest base64url text that can decode to at most `bytes` bytes. */
function maxEncodedLength(bytes: number): number {
  return Math.ceil((bytes * 4) / 3);
}

/**
 * Checks a base64url field and returns its bytes. The length is checked on the text first,
 * so nothing oversized is ever decoded.
 */
function base64UrlField(
  value: unknown,
  field: string,
  limits: { minBytes?: number; maxBytes: number },
): Uint8Array {
  if (typeof value !== 'string') {
    fail(`${field}: expected a base64url string, got ${describe(value)}`);
  }
  if (value.length > maxEncodedLength(limits.maxBytes)) {
    fail(`${field}: expected at most ${limits.maxBytes} bytes, got ${value.length} base64url characters`);
  }
  if (!isCanonicalBase64Url(value)) {
    fail(`${field}: expected unpadded base64url, got characters outside the alphabet or a non-canonical encoding`);
  }
  const bytes = new Uint8Array(Buffer.from(value, 'base64url'));
  const minBytes = limits.minBytes ?? 1;
  if (bytes.byteLength < minBytes) {
    fail(`${field}: expected at least ${minBytes} bytes, got ${bytes.byteLength}`);
  }
  if (bytes.byteLength > limits.maxBytes) {
    fail(`${field}: expected at most ${limits.maxBytes} bytes, got ${bytes.byteLength}`);
  }
  return bytes;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  return `a ${typeof value}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes clientDataJSON (WebAuthn §7.1 steps 5-6, §7.2 steps 9-10): UTF-8, then JSON, then
 * the members we rely on. The challenge is what identifies the stored ceremony.
 */
export function decodeClientData(clientDataJSON: unknown): ClientData {
  const bytes = base64UrlField(clientDataJSON, 'response.clientDataJSON', {
    maxBytes: RESPONSE_LIMITS.clientDataJSONBytes,
  });
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    fail('response.clientDataJSON: expected UTF-8 text, got invalid byte sequences');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    fail('response.clientDataJSON: expected JSON, got text that does not parse');
  }
  if (!isPlainObject(parsed)) {
    fail(`response.clientDataJSON: expected a JSON object, got ${describe(parsed)}`);
  }
  const { type, challenge, origin, crossOrigin, topOrigin } = parsed;
  if (typeof type !== 'string') fail(`clientData.type: expected a string, got ${describe(type)}`);
  if (typeof origin !== 'string') fail(`clientData.origin: expected a string, got ${describe(origin)}`);
  if (typeof challenge !== 'string') {
    fail(`clientData.challenge: expected a string, got ${describe(challenge)}`);
  }
  if (challenge.length === 0 || challenge.length > RESPONSE_LIMITS.challengeChars || !isCanonicalBase64Url(challenge)) {
    fail(`clientData.challenge: expected base64url of at most ${RESPONSE_LIMITS.challengeChars} characters, got ${describe(challenge)}`);
  }
  if (crossOrigin !== undefined && typeof crossOrigin !== 'boolean') {
    fail(`clientData.crossOrigin: expected a boolean, got ${describe(crossOrigin)}`);
  }
  if (topOrigin !== undefined && typeof topOrigin !== 'string') {
    fail(`clientData.topOrigin: expected a string, got ${describe(topOrigin)}`);
  }
  return {
    type,
    challenge,
    origin,
    crossOrigin: crossOrigin === true,
    ...(topOrigin !== undefined ? { topOrigin } : {}),
  };
}

interface CommonFields {
  readonly id: string;
  readonly response: Record<string, unknown>;
  readonly authenticatorAttachment?: 'platform' | 'cross-platform';
}

function parseCommon(input: unknown): CommonFields {
  if (!isPlainObject(input)) fail(`credential: expected a JSON object, got ${describe(input)}`);
  const { id, rawId, type, response, authenticatorAttachment, clientExtensionResults } = input;
  base64UrlField(id, 'id', { maxBytes: RESPONSE_LIMITS.credentialIdBytes });
  if (rawId !== id) {
    // rawId is the same bytes as id, in the JSON form both are base64url (WebAuthn §5.1).
    fail(`rawId: expected the same value as id, got ${typeof rawId === 'string' ? 'a different string' : describe(rawId)}`);
  }
  if (type !== 'public-key') {
    fail(`type: expected "public-key", got ${typeof type === 'string' ? JSON.stringify(type.slice(0, 32)) : describe(type)}`);
  }
  if (!isPlainObject(response)) fail(`response: expected a JSON object, got ${describe(response)}`);
  if (
    authenticatorAttachment !== undefined &&
    authenticatorAttachment !== null &&
    authenticatorAttachment !== 'platform' &&
    authenticatorAttachment !== 'cross-platform'
  ) {
    fail(`authenticatorAttachment: expected "platform" or "cross-platform", got ${describe(authenticatorAttachment)}`);
  }
  if (clientExtensionResults !== undefined && !isPlainObject(clientExtensionResults)) {
    fail(`clientExtensionResults: expected a JSON object, got ${describe(clientExtensionResults)}`);
  }
  return {
    id: id as string,
    response,
    ...(typeof authenticatorAttachment === 'string' ? { authenticatorAttachment } : {}),
  };
}

function parseTransports(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail(`response.transports: expected an array, got ${describe(value)}`);
  if (value.length > RESPONSE_LIMITS.transports) {
    fail(`response.transports: expected at most ${RESPONSE_LIMITS.transports} entries, got ${value.length}`);
  }
  const kept = new Set<string>();
  for (const transport of value) {
    if (typeof transport !== 'string' || transport.length > RESPONSE_LIMITS.transportChars) {
      fail(`response.transports: expected short strings, got ${describe(transport)}`);
    }
    if (KNOWN_TRANSPORTS.has(transport)) kept.add(transport);
  }
  return [...kept];
}

/** Validates a RegistrationResponseJSON (the result of navigator.credentials.create().toJSON()). */
export function parseRegistrationResponse(input: unknown): ParsedRegistrationResponse {
  const common = parseCommon(input);
  const { clientDataJSON, attestationObject, transports } = common.response;
  const clientData = decodeClientData(clientDataJSON);
  base64UrlField(attestationObject, 'response.attestationObject', {
    // rpIdHash(32) + flags(1) + counter(4) + aaguid(16) + length(2), before any key.
    minBytes: 55,
    maxBytes: RESPONSE_LIMITS.attestationObjectBytes,
  });
  const kept = parseTransports(transports);
  const json: RegistrationResponseJSON = {
    id: common.id,
    rawId: common.id,
    type: 'public-key',
    response: {
      clientDataJSON: clientDataJSON as string,
      attestationObject: attestationObject as string,
      transports: kept,
    },
    clientExtensionResults: {},
    ...(common.authenticatorAttachment ? { authenticatorAttachment: common.authenticatorAttachment } : {}),
  };
  return { json, clientData, credentialId: common.id, transports: kept };
}

/** Validates an AuthenticationResponseJSON (the result of navigator.credentials.get().toJSON()). */
export function parseAuthenticationResponse(input: unknown): ParsedAuthenticationResponse {
  const common = parseCommon(input);
  const { clientDataJSON, authenticatorData, signature, userHandle } = common.response;
  const clientData = decodeClientData(clientDataJSON);
  base64UrlField(authenticatorData, 'response.authenticatorData', {
    // WebAuthn §6.1: rpIdHash(32) + flags(1) + signCount(4) is the least there can be.
    minBytes: 37,
    maxBytes: RESPONSE_LIMITS.authenticatorDataBytes,
  });
  const signatureBytes = base64UrlField(signature, 'response.signature', { maxBytes: RESPONSE_LIMITS.signatureBytes });
  let handle: Uint8Array | undefined;
  // Absent, null and "" all mean "no user handle": U2F-era authenticators return none, and
  // some clients serialise that as an empty string.
  if (userHandle !== undefined && userHandle !== null && userHandle !== '') {
    handle = base64UrlField(userHandle, 'response.userHandle', { maxBytes: RESPONSE_LIMITS.userHandleBytes });
  }
  const json: AuthenticationResponseJSON = {
    id: common.id,
    rawId: common.id,
    type: 'public-key',
    response: {
      clientDataJSON: clientDataJSON as string,
      authenticatorData: authenticatorData as string,
      signature: signature as string,
      ...(handle ? { userHandle: userHandle as string } : {}),
    },
    clientExtensionResults: {},
    ...(common.authenticatorAttachment ? { authenticatorAttachment: common.authenticatorAttachment } : {}),
  };
  return {
    json,
    clientData,
    credentialId: common.id,
    signature: signatureBytes,
    ...(handle ? { userHandle: handle } : {}),
  };
}
