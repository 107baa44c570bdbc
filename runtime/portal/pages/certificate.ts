import { CA_CERT_PATH, CERT_DOWNLOAD_PATH } from '../../ca/client-certificates.js';
import { html, page } from '../html.js';
import type { Lang, MessageKey, Translate } from '../i18n.js';

interface Base {
  lang: Lang;
  t: Translate;
  currentUrl: string;
  requestId: string;
}

const SYSTEMS = ['windows', 'macos', 'ios', 'android'] as const;

/** Install steps per operating system, the same on the download page and wherever a certificate is handed out. */
export function installSteps(t: Translate) {
  return html`<h2>${t('certDownload.installTitle')}</h2>${SYSTEMS.map(
    (os) => html`<section class="install-os" id="install-${os}"><h3>${t(`certDownload.os.${os}` as MessageKey)}</h3><p>${t(`certDownload.os.${os}.steps` as MessageKey)}</p></section>`,
  )}`;
}

/**
 * The confirmation page of a certificate download link. Opening the link downloads nothing:
 * mail scanners and link previews fetch with GET, and the link works only once, so only the
 * user's own POST from this page redeems it.
 */
export function certDownloadPage(o: Base & { token: string }): string {
  const { t } = o;
  return page({
    ...o,
    title: t('certDownload.title'),
    body: html`<p>${t('certDownload.intro')}</p><p>${t('certDownload.password')}</p>
<form id="cert-download-form" method="post" action="${CERT_DOWNLOAD_PATH}">
  <input type="hidden" name="token" value="${o.token}">
  <button id="cert-download" type="submit" class="primary">${t('certDownload.button')}</button>
</form>
${installSteps(t)}
<p><small>${t('certDownload.caNote')} <a href="${CA_CERT_PATH}">${t('certDownload.caLink')}</a></small></p>`,
  });
}

/** Used, expired or unknown download links. */
export function certDownloadGonePage(o: Base): string {
  const { t } = o;
  return page({ ...o, title: t('certDownload.gone.title'), body: html`<p id="cert-download-gone" class="message">${t('certDownload.gone.body')}</p>` });
}
