/**
 * A printable letter that hands a user the download link of their device certificate, in the
 * enrollment letter's format: one self-contained page, the link as text and QR code, its
 * expiry, and what to do, in Japanese and English. The PKCS#12 password is never on it: it
 * reaches the user another way, so a lost letter alone installs nothing.
 */
import { html } from '../portal/html.js';
import { renderLetter, type LetterLink } from './enrollment-letter.js';

/** `url` is the single-use download link, `expiresAt` when it stops working. */
export interface CertificateLetterInput extends LetterLink {
  readonly deviceLabel: string;
  readonly serial: string;
  readonly organisation: string;
}

export async function renderCertificateLetter(input: CertificateLetterInput): Promise<string> {
  return renderLetter(
    input,
    `端末証明書のご案内 / Your device certificate — ${input.username}`,
    ({ name, qrBlock }) => html`<header>
  <h1>端末証明書のご案内 <span lang="en">/ Your device certificate</span></h1>
  <p class="to"><span id="letter-user">${name}</span> 様 <span lang="en">/ Dear ${name}</span></p>
  <p>${input.organisation}</p>
  <p>端末 / Device: <strong id="letter-device">${input.deviceLabel}</strong> &nbsp; シリアル / Serial: <span id="letter-serial">${input.serial}</span></p>
</header>

${qrBlock(html`証明書を使う端末のカメラでこの QR コードを読み取るか、その端末のブラウザーで下のリンクを開いてください。<br><span lang="en">Scan this QR code with the camera of the device that will use the certificate, or open the link below in that device's browser.</span>`)}

<p class="code" id="letter-password-note">インストールにはパスワードが必要です。パスワードはこの手紙とは別に管理者からお知らせします。この手紙と一緒に保管しないでください。<br><span lang="en">Installing needs a password. Your administrator gives it to you separately from this letter. Do not keep it with this letter.</span></p>

<section lang="ja">
  <h2>手順</h2>
  <ol>
    <li>証明書を使う端末で、上の QR コードまたはリンクを開きます（リンクは 1 回だけ使えます）。</li>
    <li>「証明書をダウンロード」を押し、.p12 ファイルを保存します。</li>
    <li>ファイルを開いてパスワードを入力し、インストールします。Windows、macOS、iPhone/iPad、Android ごとの手順はダウンロードページにあります。</li>
    <li>ブラウザーを再起動します。使用する証明書を尋ねられたら、組織の証明書を選んでください。</li>
  </ol>
  <p>有効期限を過ぎた場合や、心当たりのない場合は、管理者にご連絡ください。端末をなくしたときは、すぐに管理者に連絡してください。</p>
</section>

<section lang="en">
  <h2>What to do</h2>
  <ol>
    <li>On the device that will use the certificate, open the QR code or the link above (the link works only once).</li>
    <li>Press "Download the certificate" and save the .p12 file.</li>
    <li>Open the file, enter the password and install it. The download page has the steps for Windows, macOS, iPhone/iPad and Android.</li>
    <li>Restart the browser. If it asks which certificate to use, choose your organisation's.</li>
  </ol>
  <p>If the link has expired, or you did not expect this letter, contact your administrator. If you lose the device, tell your administrator at once.</p>
</section>

<footer>この手紙は本人だけが使えるよう大切に保管し、インストール後は破棄してください。 <span lang="en">Keep this letter to yourself, and destroy it once the certificate is installed.</span></footer>`,
  );
}
