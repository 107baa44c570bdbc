import { describe, expect, it } from 'vitest';
import { messagesFor, translator } from '../../../runtime/portal/i18n.js';
import { certDownloadGonePage, certDownloadPage } from '../../../runtime/portal/pages/certificate.js';
import { certificateRequiredPage } from '../../../runtime/portal/pages/messages.js';
import type { CertificateReason } from '../../../runtime/policy/decide.js';
import { foreignTexts } from './foreign-texts.js';

describe('certificate pages', () => {
  for (const lang of ['ja', 'en'] as const) {
    const base = { lang, t: translator(lang), currentUrl: '/payroll', requestId: 'r1' };
    it(`are fully in ${lang}, and the certificate page names its reason and the way to get a certificate`, () => {
      for (const reason of ['no-certificate', 'certificate-invalid', 'certificate-other-user'] as CertificateReason[]) {
        const page = certificateRequiredPage({ ...base, reason });
        expect(page).toContain(`data-reason="${reason}"`);
        expect(page).toContain(messagesFor(lang)[`certificate.reason.${reason}`].replace(/'/g, '&#39;'));
        expect(page).toContain(messagesFor(lang)['certificate.how.ask']);
        expect(foreignTexts(page, lang)).toEqual([]);
      }
      const download = certDownloadPage({ ...base, token: 'x'.repeat(43) });
      expect(foreignTexts(download, lang)).toEqual([]);
      expect(foreignTexts(certDownloadGonePage(base), lang)).toEqual([]);
      // No inline script: the portal's CSP forbids it.
      expect(download).not.toMatch(/<script(?![^>]*\bsrc=)/);
    });
  }

  it('escapes the token into the form', () => {
    const page = certDownloadPage({ lang: 'en', t: translator('en'), currentUrl: '/', requestId: 'r', token: '"><b>' });
    expect(page).toContain('value="&quot;&gt;&lt;b&gt;"');
  });
});
