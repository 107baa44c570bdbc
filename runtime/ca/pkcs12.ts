import * as asn1js from 'asn1js';
import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import * as pkijs from 'pkijs';
import { PKCS12_KDF_ID, pkcs12Kdf } from './pkcs12-kdf.js';

/**
 * How a PKCS#12 file is protected.
 * - `modern`: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC (RFC 8018 §6.2, §5.2) for both the
 *   key and the certificates, and an HMAC-SHA256 MAC (RFC 7292 §5.1, Appendix B). What OpenSSL 3
 *   writes by default; Windows 10 1709+, macOS 10.15+, iOS 13+ and Android 10+ read it.
 * - `legacy`: pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292 Appendix C) for both, and an
 *   HMAC-SHA1 MAC: for Windows 7/8.1, older macOS keychains and old Android versions.
 */
export type Pkcs12Profile = 'modern' | 'legacy';

export interface Pkcs12Input {
  /** The end-entity certificate, DER. */
  readonly certificateDer: Uint8Array;
  /** Its private key, PKCS#8 DER. The only place it is ever written to is the file built here. */
  readonly privateKeyPkcs8: Uint8Array;
  /** The issuing CA, DER, added so that the device can show (and chain) the issuer. */
  readonly caCertificateDer?: Uint8Array;
  readonly password: string;
  /** Shown by keychains and certificate pickers (PKCS#9 friendlyName). */
  readonly friendlyName: string;
  /** @default 'modern' */
  readonly profile?: Pkcs12Profile;
  /**
   * Iterations of the key derivations and of the MAC key derivation. @default 2048, OpenSSL 3's
   * PKCS12_DEFAULT_ITER. The password is random with about 100 bits of entropy, so the count is
   * not what resists guessing; keeping it modest keeps old devices and bulk runs quick.
   */
  readonly iterations?: number;
}

// Object identifiers (RFC 7292 Appendix D, RFC 8018 Appendix C, RFC 2985 §5.5).
const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  pbeWithSha1And3DesCbc: '1.2.840.113549.1.12.1.3',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

const DEFAULT_ITERATIONS = 2048;

/**
 * Builds a password-protected PKCS#12 (PFX, RFC 7292) holding one certificate with its private
 * key, and optionally the CA certificate. Layout as OpenSSL writes it (RFC 7292 §4.1): an
 * AuthenticatedSafe of an encrypted SafeContents with the certificate bags and a plain
 * SafeContents with the shrouded key bag, then a password MAC over the whole.
 */
export function buildPkcs12(input: Pkcs12Input): Uint8Array {
  const profile = input.profile ?? 'modern';
  const iterations = input.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError(`PKCS#12 iterations must be a positive integer, got ${iterations}`);
  if (input.password.length === 0) throw new RangeError('a PKCS#12 password must not be empty');
  const cipher = profile === 'legacy' ? legacy3Des(input.password, iterations) : modernAes(input.password, iterations);

  // localKeyId pairs the key with its certificate (RFC 2985 §5.5.2); the certificate's SHA-1
  // is the value OpenSSL and Windows use.
  const localKeyId = createHash('sha1').update(input.certificateDer).digest();
  const bagAttributes = [
    new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: input.friendlyName })] }),
    new pkijs.Attribute({ type: OID.localKeyId, values: [new asn1js.OctetString({ valueHex: localKeyId })] }),
  ];

  const certBags = [
    new pkijs.SafeBag({
      bagId: OID.certBag,
      bagValue: new pkijs.CertBag({ certId: OID.x509Certificate, certValue: new asn1js.OctetString({ valueHex: input.certificateDer }) }),
      bagAttributes: derSorted(bagAttributes),
    }),
    ...(input.caCertificateDer
      ? [
          new pkijs.SafeBag({
            bagId: OID.certBag,
            bagValue: new pkijs.CertBag({ certId: OID.x509Certificate, certValue: new asn1js.OctetString({ valueHex: input.caCertificateDer }) }),
          }),
        ]
      : []),
  ];
  const certContents = der(new pkijs.SafeContents({ safeBags: certBags }).toSchema());
  const certsEncrypted = cipher.encrypt(certContents);
  const encryptedCerts = new pkijs.EncryptedData({
    version: 0,
    encryptedContentInfo: new pkijs.EncryptedContentInfo({
      contentType: OID.data,
      contentEncryptionAlgorithm: certsEncrypted.algorithm,
      encryptedContent: new asn1js.OctetString({ valueHex: certsEncrypted.ciphertext }),
      // One primitive OCTET STRING (DER), not pkijs' default of 1 KiB constructed pieces (BER).
      disableSplit: true,
    }),
  });

  // PKCS8ShroudedKeyBag = EncryptedPrivateKeyInfo (RFC 5208 §6).
  const keyEncrypted = cipher.encrypt(input.privateKeyPkcs8);
  const keyBag = new pkijs.SafeBag({
    bagId: OID.pkcs8ShroudedKeyBag,
    bagValue: new pkijs.PKCS8ShroudedKeyBag({
      encryptionAlgorithm: keyEncrypted.algorithm,
      encryptedData: new asn1js.OctetString({ valueHex: keyEncrypted.ciphertext }),
    }),
    bagAttributes: derSorted(bagAttributes),
  });
  const keyContents = der(new pkijs.SafeContents({ safeBags: [keyBag] }).toSchema());

  const authenticatedSafe = der(
    new asn1js.Sequence({
      value: [
        new pkijs.ContentInfo({ contentType: OID.encryptedData, content: encryptedCerts.toSchema() }).toSchema(),
        new pkijs.ContentInfo({ contentType: OID.data, content: new asn1js.OctetString({ valueHex: keyContents }) }).toSchema(),
      ],
    }),
  );

  // RFC 7292 §5.1 and Appendix B.4: the MAC key comes from the PKCS#12 KDF with ID 3 and the
  // MAC's own hash; the MAC covers the content octets of authSafe.
  const macHash = profile === 'legacy' ? 'sha1' : 'sha256';
  const macSalt = randomBytes(16);
  const macKey = pkcs12Kdf(macHash, input.password, macSalt, PKCS12_KDF_ID.mac, iterations, macHash === 'sha1' ? 20 : 32);
  const mac = createHmac(macHash, macKey).update(authenticatedSafe).digest();
  macKey.fill(0);

  const pfx = new pkijs.PFX({
    version: 3,
    authSafe: new pkijs.ContentInfo({ contentType: OID.data, content: new asn1js.OctetString({ valueHex: authenticatedSafe }) }),
    macData: new pkijs.MacData({
      mac: new pkijs.DigestInfo({
        digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: macHash === 'sha1' ? OID.sha1 : OID.sha256, algorithmParams: new asn1js.Null() }),
        digest: new asn1js.OctetString({ valueHex: mac }),
      }),
      macSalt: new asn1js.OctetString({ valueHex: macSalt }),
      iterations,
    }),
  });
  return der(pfx.toSchema());
}

interface PasswordCipher {
  encrypt(plaintext: Uint8Array): { algorithm: pkijs.AlgorithmIdentifier; ciphertext: Uint8Array };
}

/** PBES2 (RFC 8018 §6.2) with PBKDF2-HMAC-SHA256 (§5.2) and AES-256-CBC, a fresh salt and IV per use. */
function modernAes(password: string, iterations: number): PasswordCipher {
  return {
    encrypt(plaintext) {
      const salt = randomBytes(16);
      const iv = randomBytes(16);
      // PBES2 takes the password octets as they are (RFC 8018 §6.2.1 step 2): UTF-8 here, as in OpenSSL.
      const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
      const cipher = createCipheriv('aes-256-cbc', key, iv);
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      key.fill(0);
      const params = new pkijs.PBES2Params({
        keyDerivationFunc: new pkijs.AlgorithmIdentifier({
          algorithmId: OID.pbkdf2,
          algorithmParams: new pkijs.PBKDF2Params({
            salt: new asn1js.OctetString({ valueHex: salt }),
            iterationCount: iterations,
            // The PRF defaults to hmacWithSHA1 (RFC 8018 Appendix A.2), so SHA-256 must be named.
            prf: new pkijs.AlgorithmIdentifier({ algorithmId: OID.hmacWithSha256, algorithmParams: new asn1js.Null() }),
          }).toSchema(),
        }),
        encryptionScheme: new pkijs.AlgorithmIdentifier({ algorithmId: OID.aes256Cbc, algorithmParams: new asn1js.OctetString({ valueHex: iv }) }),
      });
      return { algorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.pbes2, algorithmParams: params.toSchema() }), ciphertext };
    },
  };
}

/**
 * pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292 Appendix C): key and IV from the PKCS#12 KDF with
 * SHA-1 (IDs 1 and 2), pkcs-12PbeParams = SEQUENCE { salt OCTET STRING, iterations INTEGER }.
 */
function legacy3Des(password: string, iterations: number): PasswordCipher {
  return {
    encrypt(plaintext) {
      const salt = randomBytes(8);
      const key = pkcs12Kdf('sha1', password, salt, PKCS12_KDF_ID.key, iterations, 24);
      const iv = pkcs12Kdf('sha1', password, salt, PKCS12_KDF_ID.iv, iterations, 8);
      const cipher = createCipheriv('des-ede3-cbc', key, iv);
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      key.fill(0);
      const params = new asn1js.Sequence({ value: [new asn1js.OctetString({ valueHex: salt }), new asn1js.Integer({ value: iterations })] });
      return { algorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.pbeWithSha1And3DesCbc, algorithmParams: params }), ciphertext };
    },
  };
}

function der(value: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(value.toBER(false));
}

/** DER orders the members of a SET OF by their encodings (X.690 §11.6). */
function derSorted(attributes: pkijs.Attribute[]): pkijs.Attribute[] {
  return attributes
    .map((attribute) => ({ attribute, encoded: Buffer.from(der(attribute.toSchema())) }))
    .sort((a, b) => Buffer.compare(a.encoded, b.encoded))
    .map((entry) => entry.attribute);
}
