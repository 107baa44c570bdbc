/**
 * A printable enrollment letter: one self-contained HTML page per user with the enrollment
 * link as text and as a QR code, its expiry, and short instructions in Japanese and English.
 * Nothing is loaded from anywhere (inline SVG and style, a CSP that forbids every fetch), so
 * the file prints the same offline and leaks nothing when opened.
 */
import QRCode from 'qrcode';
import { html, Html } from '../portal/html.js';

export interface EnrollmentLetterInput extends LetterLink {
  /** The link also needs a one-time code, which reaches the user another way (never in the letter). */
  readonly codeSeparately: boolean;
  /** Who sends it, e.g. webauthn.rpName. */
  readonly organisation: string;
}

export function formatExpiry(expiresAt: number, locale: 'ja-JP' | 'en-GB', timeZone?: string): string {
  // Fields rather than dateStyle, which cannot be combined with a time zone name.
  return new Intl.DateTimeFormat(locale, {
    year: 'numeric',
    month: 'long',
    day: 'numeric',
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    timeZoneName: 'short',
    ...(timeZone ? { timeZone } : {}),
  }).format(new Date(expiresAt));
}

/** The QR code as inline SVG; the namespace attribute is dropped (HTML does not need it), so the page names no URL but the link. */
async function enrollmentQrSvg(url: string): Promise<string> {
  const svg = await QRCode.toString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
  return svg.trim().replace(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, '<svg role="img" aria-labelledby="qr-label" class="qr"');
}

/** The letters' print style: A4, black on white, Japanese fonts first. */
const LETTER_STYLE = `
  @page { size: A4; margin: 18mm; }
  * { box-sizing: border-box; }
  body { margin: 0 auto; max-width: 180mm; padding: 12mm 0; font: 11pt/1.6 "Hiragino Sans", "Noto Sans JP", "Yu Gothic", Meiryo, system-ui, sans-serif; color: #000; background: #fff; }
  header { border-bottom: 1pt solid #000; margin-bottom: 6mm; }
  h1 { font-size: 16pt; margin: 0 0 2mm; }
  h2 { font-size: 12pt; margin: 6mm 0 2mm; }
  .to { font-size: 12pt; margin: 0 0 4mm; }
  .qr-block { display: flex; gap: 8mm; align-items: center; margin: 4mm 0; }
  .qr { width: 45mm; height: 45mm; flex: none; }
  .link { font-family: "Courier New", monospace; font-size: 9pt; word-break: break-all; border: 1pt solid #000; padding: 2mm 3mm; }
  .expiry { font-weight: 700; }
  .code { border: 1.5pt solid #000; padding: 2mm 3mm; font-weight: 700; }
  ol { padding-left: 6mm; margin: 0; }
  section { break-inside: avoid; }
  footer { margin-top: 8mm; font-size: 8.5pt; border-top: 0.5pt solid #000; padding-top: 2mm; }
  @media screen { body { padding: 12mm 8mm; } }
  @media print { a { color: #000; text-decoration: none; } }
`;

/** What every letter shows of its recipient and their single-use link. */
export interface LetterLink {
  readonly username: string;
  readonly displayName: string;
  readonly url: string;
  readonly expiresAt: number;
  /** The time zone the expiry is shown in. @default the machine's own */
  readonly timeZone?: string;
}

export interface LetterParts {
  /** "Display Name (username)", or the username alone. */
  readonly name: string;
  /** The link as QR code and text with its expiry; `label` says what to do with it. */
  qrBlock(label: Html): Html;
}

/**
 * One self-contained letter page: the head every letter has (CSP forbidding every fetch, the
 * print style) around `content`, the markup inside <body>, built from the shared parts.
 */
export async function renderLetter(input: LetterLink, title: string, content: (parts: LetterParts) => Html): Promise<string> {
  // Markup of our own making (the QR SVG, the style sheet) goes in as Html; everything else is escaped.
  const qr = await enrollmentQrSvg(input.url);
  const ja = formatExpiry(input.expiresAt, 'ja-JP', input.timeZone);
  const en = formatExpiry(input.expiresAt, 'en-GB', input.timeZone);
  const iso = new Date(input.expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const name = input.displayName && input.displayName !== input.username ? `${input.displayName} (${input.username})` : input.username;
  const qrBlock = (label: Html) => html`<div class="qr-block">
  ${new Html(qr)}
  <div>
    <p id="qr-label">${label}</p>
    <p class="link" id="letter-link">${input.url}</p>
    <p class="expiry">有効期限 / Expires: <time datetime="${iso}">${ja}</time> <span lang="en">(${en})</span></p>
  </div>
</div>`;
  return html`<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${new Html(LETTER_STYLE)}</style>
</head>
<body>
${content({ name, qrBlock })}
</body>
</html>
`.toString();
}

export async function renderEnrollmentLetter(input: EnrollmentLetterInput): Promise<string> {
  return renderLetter(
    input,
    `パスキー登録のご案内 / Passkey enrollment — ${input.username}`,
    ({ name, qrBlock }) => html`<header>
  <h1>パスキー登録のご案内 <span lang="en">/ Set up your passkey</span></h1>
  <p class="to"><span id="letter-user">${name}</span> 様 <span lang="en">/ Dear ${name}</span></p>
  <p>${input.organisation}</p>
</header>

${qrBlock(html`スマートフォンのカメラでこの QR コードを読み取るか、下のリンクをブラウザーで開いてください。<br><span lang="en">Scan this QR code with your phone's camera, or open the link below in a browser.</span>`)}

${
  input.codeSeparately
    ? html`<p class="code" id="letter-code-note">登録には 8 桁のワンタイムコードも必要です。コードはこの手紙とは別に（電話やチャットなどで）管理者からお知らせします。この手紙と一緒に保管しないでください。<br><span lang="en">You also need an 8-digit one-time code. Your administrator gives it to you separately from this letter (for example by phone or chat). Do not keep it with this letter.</span></p>`
    : ''
}

<section lang="ja">
  <h2>手順</h2>
  <ol>
    <li>上の QR コードまたはリンクを開きます（リンクは 1 回だけ使えます）。</li>
    ${input.codeSeparately ? html`<li>別途届いた 8 桁のコードを入力します。</li>` : ''}
    <li>パスキーの保存先（このデバイス、スマートフォン、セキュリティキー）を選び、「パスキーを作成」を押します。</li>
    <li>画面の指示に従い、指紋・顔・PIN などで確認します。以後はパスワードの代わりにこのパスキーでサインインします。</li>
  </ol>
  <p>有効期限を過ぎた場合や、心当たりのない場合は、管理者にご連絡ください。</p>
</section>

<section lang="en">
  <h2>What to do</h2>
  <ol>
    <li>Open the QR code or the link above (the link works only once).</li>
    ${input.codeSeparately ? html`<li>Enter the 8-digit code you received separately.</li>` : ''}
    <li>Choose where to keep your passkey (this device, a phone, or a security key) and press “Create a passkey”.</li>
    <li>Confirm with your fingerprint, face or PIN when asked. From then on you sign in with this passkey instead of a password.</li>
  </ol>
  <p>If the link has expired, or you did not expect this letter, contact your administrator.</p>
</section>

<footer>この手紙は本人だけが使えるよう、大切に保管し、登録後は破棄してください。 <span lang="en">Keep this letter to yourself, and destroy it once you have set up your passkey.</span></footer>`,
  );
}
