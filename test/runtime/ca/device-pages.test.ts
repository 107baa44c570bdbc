import { describe, expect, it } from 'vitest';
import { messagesFor, translator } from '../../../runtime/portal/i18n.js';
import {
  accountCertificatesSection,
  certificateIssuedPage,
  certificateOfferGonePage,
  certificateOfferPage,
  enrollCertificateRequiredPage,
  revokedOwnCertificatePage,
  revokeOwnCertificatePage,
} from '../../../runtime/portal/pages/certificate.js';
import type { ClientCertificate } from '../../../runtime/store/types.js';
import { foreignTexts } from '../portal/foreign-texts.js';

const hostile = '<script>alert(1)</script>"\'';
const certificate: ClientCertificate = {
  serial: '4a3f',
  fingerprint: 'ab',
  owner: { kind: 'user', userId: 'u1' },
  deviceLabel: hostile,
  keyType: 'ec-p256',
  certificateDer: new Uint8Array(),
  issuedAt: Date.UTC(2026, 0, 1),
  expiresAt: Date.UTC(2027, 0, 1),
  issuedBy: 'cli',
  status: 'active',
};

describe('company-device pages', () => {
  for (const lang of ['ja', 'en'] as const) {
    it(`are fully in ${lang}, escape what users typed, and carry no inline script`, () => {
      const t = translator(lang);
      const base = { lang, t, currentUrl: '/.kanmon/enroll/certificate', requestId: 'r1' };
      const pages = [
        certificateOfferPage({ ...base, deviceLabel: hostile, next: 'totp' }),
        certificateIssuedPage({ ...base, password: 'p"w<', token: 't'.repeat(43), deviceLabel: hostile, serial: '4a3f', expiresAt: Date.UTC(2027, 0, 1), next: '/' }),
        certificateOfferGonePage({ ...base, next: '/' }),
        enrollCertificateRequiredPage({ ...base, reason: 'certificate-other-user' }),
        revokeOwnCertificatePage({ ...base, certificate }),
        revokedOwnCertificatePage(base),
        accountCertificatesSection(t, [certificate, { ...certificate, serial: '77', status: 'revoked' }], Date.UTC(2026, 5, 1)).toString(),
      ];
      for (const page of pages) {
        expect(foreignTexts(page, lang)).toEqual([]);
        expect(page).not.toContain('<script>alert');
        expect(page).not.toMatch(/<script(?![^>]*\bsrc=)/);
      }
      expect(pages[0]).toContain('id="install-android"');
      expect(pages[1]).toContain('p&quot;w&lt;');
      expect(pages[3]).toContain(messagesFor(lang)['certificate.reason.certificate-other-user'].replace(/'/g, '&#39;'));
      expect(pages[6]).toContain('data-status="revoked"');
      expect(pages[6].match(/class="button danger cert-revoke"/g)).toHaveLength(1);
    });
  }
});
