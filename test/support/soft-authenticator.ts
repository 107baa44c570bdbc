/**
 * A software WebAuthn authenticator plus the browser's part of the ceremony, for tests.
 *
 * It holds real P-256 keys (node:crypto), builds real authenticator data (WebAuthn §6.1) and a
 * real 'none' attestation object (§8.7), or a 'packed' one (§8.2) when given an attestation
 * certificate and the options ask for attestation, in CBOR encoded here, signs assertions over
 * authenticatorData || SHA-256(clientDataJSON) (§6.3.3), and returns the JSON a browser's
 * PublicKeyCredential.toJSON() would post. Every field a hostile or broken client could get
 * wrong has a knob, so each verification rule can be tested with a real, signed response.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';

// ---------------------------------------------------------------------------------------------
// A minimal CBOR encoder (RFC 8949): unsigned and negative integers, byte and text strings,
// arrays, maps and booleans, always in the shortest form, which is what CTAP2 requires.

export type CborValue = number | bigint | string | boolean | Uint8Array | readonly CborValue[] | Map<CborValue, CborValue>;

function cborHead(major: number, argument: number | bigint): Uint8Array {
  const n = BigInt(argument);
  const m = major << 5;
  if (n < 24n) return Uint8Array.of(m | Number(n));
  if (n < 0x100n) return Uint8Array.of(m | 24, Number(n));
  if (n < 0x10000n) {
    const out = new Uint8Array(3);
    out[0] = m | 25;
    new DataView(out.buffer).setUint16(1, Number(n));
    return out;
  }
  if (n < 0x100000000n) {
    const out = new Uint8Array(5);
    out[0] = m | 26;
    new DataView(out.buffer).setUint32(1, Number(n));
    return out;
  }
  const out = new Uint8Array(9);
  out[0] = m | 27;
  new DataView(out.buffer).setBigUint64(1, n);
  return out;
}

export function encodeCbor(value: CborValue): Uint8Array {
  if (typeof value === 'boolean') return Uint8Array.of(value ? 0xf5 : 0xf4);
  if (typeof value === 'number' || typeof value === 'bigint') {
    const n = BigInt(value);
    return n >= 0n ? cborHead(0, n) : cborHead(1, -1n - n);
  }
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return concat(cborHead(3, bytes.byteLength), bytes);
  }
  if (value instanceof Uint8Array) return concat(cborHead(2, value.byteLength), value);
  if (value instanceof Map) {
    const parts: Uint8Array[] = [cborHead(5, value.size)];
    for (const [k, v] of value) parts.push(encodeCbor(k), encodeCbor(v));
    return concat(...parts);
  }
  return concat(cborHead(4, value.length), ...value.map((item) => encodeCbor(item)));
}

// ---------------------------------------------------------------------------------------------

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Authenticator data flag bits (WebAuthn §6.1). */
export const FLAGS = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40, ED: 0x80 } as const;

export interface SoftAuthenticatorOptions {
  /** The origin the "browser" is on. @default 'https://kanmon.example' */
  readonly origin?: string;
  /** @default the all-zero AAGUID, as with attestation 'none' on most platforms */
  readonly aaguid?: string;
  /** BE flag: a synced passkey provider. @default false */
  readonly backupEligible?: boolean;
  /** BS flag. @default false */
  readonly backedUp?: boolean;
  /** Whether the authenticator performs user verification (PIN, biometrics). @default true */
  readonly userVerifying?: boolean;
  /** 'increment' like a security key, or 'zero' like most synced passkeys. @default 'increment' */
  readonly counter?: 'increment' | 'zero';
  /** @default ['internal', 'hybrid'] */
  readonly transports?: readonly string[];
  /** @default 'platform' */
  readonly attachment?: 'platform' | 'cross-platform';
  /**
   * An attestation certificate chain (DER, leaf first) and the leaf's key: registration then
   * answers options with attestation 'direct' or 'enterprise' with a full 'packed' statement
   * (§8.2), as a security key does. Options asking for 'none' still get 'none', as a browser
   * strips the attestation then.
   */
  readonly attestation?: { readonly certificates: readonly Uint8Array[]; readonly privateKey: KeyObject };
}

/** Ways to make one response wrong. Unset knobs give what a correct browser would send. */
export interface CommonKnobs {
  /** clientDataJSON.origin. */
  readonly origin?: string;
  /** Hash this RP ID into authenticator data instead of the real one. */
  readonly rpIdHashOf?: string;
  /** Overrides the UP / UV / BE / BS flags for this response. */
  readonly up?: boolean;
  readonly uv?: boolean;
  readonly be?: boolean;
  readonly bs?: boolean;
  /** The signature counter to put in authenticator data (stored as the new counter too). */
  readonly counter?: number;
  /** clientDataJSON.type. */
  readonly clientDataType?: string;
  /** clientDataJSON.challenge. */
  readonly challenge?: string;
  readonly crossOrigin?: boolean;
  readonly topOrigin?: string;
}

export interface RegistrationKnobs extends CommonKnobs {
  /** Register even though excludeCredentials names one of our credentials. */
  readonly ignoreExcludeCredentials?: boolean;
  /** The credential id to claim in the JSON (id and rawId), not the one in authenticator data. */
  readonly claimedCredentialId?: string;
  /** The credential id to create (base64url); random 16 bytes by default. */
  readonly credentialId?: string;
  /**
   * Which attestation to send whatever the options ask: 'packed' needs `attestation` in the
   * constructor; 'packed-self' signs with the new credential's own key (§8.2 self attestation).
   */
  readonly attestationFormat?: 'none' | 'packed' | 'packed-self';
  /** Flip one bit of the attestation signature. */
  readonly flipAttestationSignature?: boolean;
}

export interface AssertionKnobs extends CommonKnobs {
  /** Which of our credentials signs; by default the first allowed one. */
  readonly credentialId?: string;
  /** Put this id in the JSON (id and rawId) while still signing with the chosen credential. */
  readonly claimedCredentialId?: string;
  /** Flip one bit of the last signature byte: still well-formed DER, no longer valid. */
  readonly flipSignatureByte?: boolean;
  /** Override userHandle; null leaves it out. */
  readonly userHandle?: string | null;
}

export interface SoftCredential {
  readonly id: string;
  readonly rpId: string;
  /** base64url, as given in the creation options' user.id. */
  readonly userHandle: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  counter: number;
}

export class SoftAuthenticator {
  readonly origin: string;
  readonly aaguid: string;
  readonly credentials = new Map<string, SoftCredential>();
  private readonly opts: Required<Omit<SoftAuthenticatorOptions, 'origin' | 'aaguid' | 'attestation'>>;
  private readonly attestation: SoftAuthenticatorOptions['attestation'];

  constructor(options: SoftAuthenticatorOptions = {}) {
    this.origin = options.origin ?? 'https://kanmon.example';
    this.aaguid = options.aaguid ?? '00000000-0000-0000-0000-000000000000';
    this.opts = {
      backupEligible: options.backupEligible ?? false,
      backedUp: options.backedUp ?? false,
      userVerifying: options.userVerifying ?? true,
      counter: options.counter ?? 'increment',
      transports: options.transports ?? ['internal', 'hybrid'],
      attachment: options.attachment ?? 'platform',
    };
    this.attestation = options.attestation;
  }

  /** navigator.credentials.create({ publicKey: options }) followed by .toJSON(). */
  register(options: PublicKeyCredentialCreationOptionsJSON, knobs: RegistrationKnobs = {}): RegistrationResponseJSON {
    const rpId = options.rp.id;
    if (!rpId) throw new Error('creation options carry no rp.id');
    if (!options.pubKeyCredParams.some((p) => p.alg === -7)) {
      throw new Error('NotSupportedError: ES256 not offered in pubKeyCredParams');
    }
    // WebAuthn §6.3.2 step 3: an authenticator holding an excluded credential refuses.
    const excluded = (options.excludeCredentials ?? []).some((d) => this.credentials.get(d.id)?.rpId === rpId);
    if (excluded && !knobs.ignoreExcludeCredentials) {
      throw new Error('InvalidStateError: this authenticator already holds an excluded credential');
    }

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const credentialIdBytes = knobs.credentialId
      ? new Uint8Array(Buffer.from(knobs.credentialId, 'base64url'))
      : new Uint8Array(randomBytes(16));
    const credentialId = b64url(credentialIdBytes);
    const counter = knobs.counter ?? 0;

    // COSE_Key (RFC 9052 §7, RFC 9053 §7.1.1): kty EC2, alg ES256, crv P-256, x, y.
    const coseKey = encodeCbor(
      new Map<CborValue, CborValue>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, new Uint8Array(Buffer.from(jwk.x!, 'base64url'))],
        [-3, new Uint8Array(Buffer.from(jwk.y!, 'base64url'))],
      ]),
    );
    const idLength = new Uint8Array(2);
    new DataView(idLength.buffer).setUint16(0, credentialIdBytes.byteLength);
    // Attested credential data (§6.5.1): aaguid || credentialIdLength || credentialId || key.
    const attested = concat(uuidBytes(this.aaguid), idLength, credentialIdBytes, coseKey);
    const authData = this.authenticatorData(rpId, knobs, counter, FLAGS.AT, attested);

    const clientDataJSON = this.clientDataJSON('webauthn.create', options.challenge, knobs);
    const asked = options.attestation ?? 'none';
    const format = knobs.attestationFormat ?? (this.attestation && asked !== 'none' ? 'packed' : 'none');
    let attStmt = new Map<CborValue, CborValue>();
    if (format !== 'none') {
      // §8.2 signing procedure: sign authenticatorData || clientDataHash with the attestation
      // key (full attestation, with x5c) or the credential key (self attestation, without).
      if (format === 'packed' && !this.attestation) throw new Error('packed attestation needs an attestation certificate');
      const signer = format === 'packed' ? this.attestation!.privateKey : privateKey;
      const sig = new Uint8Array(sign('sha256', concat(authData, sha256(clientDataJSON)), signer));
      if (knobs.flipAttestationSignature) sig[sig.length - 1]! ^= 0x01;
      attStmt = new Map<CborValue, CborValue>([
        ['alg', -7],
        ['sig', sig],
        ...(format === 'packed' ? ([['x5c', [...this.attestation!.certificates]]] as Array<[CborValue, CborValue]>) : []),
      ]);
    }
    const attestationObject = encodeCbor(
      new Map<CborValue, CborValue>([
        ['fmt', format === 'none' ? 'none' : 'packed'],
        ['attStmt', attStmt],
        ['authData', authData],
      ]),
    );

    this.credentials.set(credentialId, {
      id: credentialId,
      rpId,
      userHandle: options.user.id,
      privateKey,
      publicKey,
      counter,
    });

    const claimedId = knobs.claimedCredentialId ?? credentialId;
    return {
      id: claimedId,
      rawId: claimedId,
      type: 'public-key',
      authenticatorAttachment: this.opts.attachment,
      clientExtensionResults: { credProps: { rk: true } },
      response: {
        clientDataJSON: b64url(clientDataJSON),
        attestationObject: b64url(attestationObject),
        authenticatorData: b64url(authData),
        transports: [...this.opts.transports],
        publicKeyAlgorithm: -7,
        publicKey: b64url(new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }))),
      },
    };
  }

  /** navigator.credentials.get({ publicKey: options }) followed by .toJSON(). */
  authenticate(options: PublicKeyCredentialRequestOptionsJSON, knobs: AssertionKnobs = {}): AuthenticationResponseJSON {
    const rpId = options.rpId;
    if (!rpId) throw new Error('request options carry no rpId');
    const credential = this.pick(rpId, options, knobs.credentialId);

    let counter: number;
    if (knobs.counter !== undefined) counter = knobs.counter;
    else if (this.opts.counter === 'zero') counter = 0;
    else counter = credential.counter + 1;
    credential.counter = counter;

    const authData = this.authenticatorData(rpId, knobs, counter, 0);
    const clientDataJSON = this.clientDataJSON('webauthn.get', options.challenge, knobs);
    // §6.3.3 step 11: the signature covers authenticatorData || SHA-256(clientDataJSON). Node
    // produces ECDSA signatures DER-encoded, which is the form WebAuthn uses for ES256.
    const signature = new Uint8Array(sign('sha256', concat(authData, sha256(clientDataJSON)), credential.privateKey));
    if (knobs.flipSignatureByte) signature[signature.length - 1]! ^= 0x01;

    const userHandle = knobs.userHandle === undefined ? credential.userHandle : knobs.userHandle;
    const claimedId = knobs.claimedCredentialId ?? credential.id;
    return {
      id: claimedId,
      rawId: claimedId,
      type: 'public-key',
      authenticatorAttachment: this.opts.attachment,
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64url(clientDataJSON),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(userHandle !== null ? { userHandle } : {}),
      },
    };
  }

  private pick(rpId: string, options: PublicKeyCredentialRequestOptionsJSON, wanted?: string): SoftCredential {
    if (wanted) {
      const credential = this.credentials.get(wanted);
      if (!credential) throw new Error(`no credential ${wanted} in this authenticator`);
      return credential;
    }
    const allowed = options.allowCredentials ?? [];
    for (const credential of this.credentials.values()) {
      if (credential.rpId !== rpId) continue;
      if (allowed.length === 0 || allowed.some((d) => d.id === credential.id)) return credential;
    }
    throw new Error('NotAllowedError: no matching credential');
  }

  private authenticatorData(rpId: string, knobs: CommonKnobs, counter: number, extraFlags: number, attested?: Uint8Array): Uint8Array {
    let flags = extraFlags;
    if (knobs.up ?? true) flags |= FLAGS.UP;
    if (knobs.uv ?? this.opts.userVerifying) flags |= FLAGS.UV;
    if (knobs.be ?? this.opts.backupEligible) flags |= FLAGS.BE;
    if (knobs.bs ?? this.opts.backedUp) flags |= FLAGS.BS;
    const signCount = new Uint8Array(4);
    new DataView(signCount.buffer).setUint32(0, counter);
    return concat(sha256(knobs.rpIdHashOf ?? rpId), Uint8Array.of(flags), signCount, attested ?? new Uint8Array(0));
  }

  private clientDataJSON(type: string, challenge: string, knobs: CommonKnobs): Uint8Array {
    // Member order as Chromium serialises it (WebAuthn §5.8.1.1, the limited verification
    // algorithm relies on type, challenge, origin coming first).
    const clientData: Record<string, unknown> = {
      type: knobs.clientDataType ?? type,
      challenge: knobs.challenge ?? challenge,
      origin: knobs.origin ?? this.origin,
      crossOrigin: knobs.crossOrigin ?? false,
    };
    if (knobs.topOrigin !== undefined) clientData.topOrigin = knobs.topOrigin;
    return new Uint8Array(Buffer.from(JSON.stringify(clientData), 'utf8'));
  }
}
