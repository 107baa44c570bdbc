import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

/**
 * The extensions of a self-signed root that signs end-entity certificates only: the
 * development CA and the client-certificate CA are both such roots.
 */
export async function rootCaExtensions(publicKey: CryptoKey): Promise<x509.Extension[]> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(publicKey);
  return [
    // RFC 5280 §4.2.1.9: critical in CA certificates; pathLen 0 means it signs end entities only.
    new x509.BasicConstraintsExtension(true, 0, true),
    // RFC 5280 §4.2.1.3: a CA key signs certificates and CRLs, nothing else.
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    // RFC 5280 §4.2.1.2 (SKI MUST in CA certificates) and §4.2.1.1: the AKI of a self-signed root
    // names its own key, which keeps chain builders that expect one happy.
    ski,
    new x509.AuthorityKeyIdentifierExtension(ski.keyId),
  ];
}
