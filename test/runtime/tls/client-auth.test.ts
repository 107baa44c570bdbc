import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, type KanmonConfigInput } from '../../../runtime/config/schema.js';
import { clientAuthOptions, clientCertificatesWanted } from '../../../runtime/tls/client-auth.js';

const route = (factors: string[][]) => ({ id: 'r', upstream: 'http://x:1', policy: { factors } }) as NonNullable<KanmonConfigInput['routes']>[number];

describe('client authentication options of the TLS listener', () => {
  it('asks for certificates only when a route, mtls.requiredFor, the enforcement mode or the admin console needs them', () => {
    expect(clientCertificatesWanted(parseConfig({ routes: [route([['passkey']])] }))).toBe(false);
    expect(clientCertificatesWanted(parseConfig({ routes: [route([['passkey'], ['otp', 'mtls']])] }))).toBe(true);
    expect(clientCertificatesWanted(parseConfig({ mtls: { requiredFor: { groups: ['finance'] } } }))).toBe(true);
    expect(clientCertificatesWanted(parseConfig({ mtls: { requiredFor: { all: true } } }))).toBe(true);
    expect(clientCertificatesWanted(parseConfig({ mtls: { enforcement: 'reject-connection' } }))).toBe(true);
    expect(clientCertificatesWanted(parseConfig({ admin: { requireMtls: true } }))).toBe(true);
  });

  it('trusts Kanmon’s CA plus the extra files, and rejects unauthorized handshakes only in reject-connection mode', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kanmon-client-auth-'));
    try {
      const extra = join(dir, 'old-ca.pem');
      writeFileSync(extra, 'OLD CA PEM');
      expect(clientAuthOptions(parseConfig({ mtls: { extraTrustedCaFiles: [extra] } }), ['KANMON CA PEM'])).toEqual({ requestCert: true, rejectUnauthorized: false, ca: ['KANMON CA PEM', 'OLD CA PEM'] });
      expect(clientAuthOptions(parseConfig({ mtls: { enforcement: 'reject-connection' } }), ['K']).rejectUnauthorized).toBe(true);
      const missing = join(dir, 'missing.pem');
      expect(() => clientAuthOptions(parseConfig({ mtls: { extraTrustedCaFiles: [missing] } }), ['K'])).toThrow(`mtls: option 'extraTrustedCaFiles' names "${missing}", which cannot be read`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
