import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import type { Jwks } from '../../../runtime/jwt/index.js';

/**
 * Verifies a compact ES256 JWS the way a backend would, knowing nothing but the JWKS:
 * pick the key by kid, check alg, verify R||S over the signing input (RFC 7515 §5.2).
 */
export function verifyWithJwks(token: string, jwks: Jwks): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS');
  const [h, p, s] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (header.alg !== 'ES256') throw new Error(`unexpected alg ${String(header.alg)}`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key ${String(header.kid)} in the JWKS`);
  if (jwk.alg !== 'ES256' || jwk.use !== 'sig') throw new Error('JWKS key is not for ES256 signatures');
  const key = createPublicKey({ key: jwk as unknown as JsonWebKey, format: 'jwk' });
  const signature = Buffer.from(s, 'base64url');
  if (signature.length !== 64) throw new Error(`ES256 signature must be 64 octets, got ${signature.length}`);
  const ok = verify('sha256', Buffer.from(`${h}.${p}`, 'ascii'), { key, dsaEncoding: 'ieee-p1363' }, signature);
  if (!ok) throw new Error('signature does not verify');
  return { header, payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown> };
}
