/**
 * The texts of mails about client certificates, Japanese first and English after, in one
 * message (the recipient's language is not known to a mail). A PKCS#12 password is never in
 * a mail: it reaches the user another way.
 */
import { formatExpiry } from '../letters/enrollment-letter.js';

export interface MailText {
  readonly subject: string;
  readonly text: string;
}

interface Common {
  /** "Display Name (username)" or the username. */
  readonly name: string;
  readonly organisation: string;
  readonly deviceLabel: string;
  readonly serial: string;
  readonly timeZone?: string;
}

function both(ms: number, timeZone?: string): { ja: string; en: string } {
  return { ja: formatExpiry(ms, 'ja-JP', timeZone), en: formatExpiry(ms, 'en-GB', timeZone) };
}

/** The single-use download link of a certificate. */
export function downloadLinkMail(o: Common & { readonly url: string; readonly linkExpiresAt: number }): MailText {
  const until = both(o.linkExpiresAt, o.timeZone);
  return {
    subject: `端末証明書のダウンロード / Your device certificate (${o.deviceLabel})`,
    text: [
      `${o.name} 様`,
      '',
      `${o.organisation} から、端末「${o.deviceLabel}」用の端末証明書（シリアル ${o.serial}）が発行されました。`,
      '証明書を使う端末で次のリンクを開き、証明書ファイルをダウンロードしてください。リンクは 1 回だけ使えます。',
      '',
      o.url,
      '',
      `リンクの有効期限：${until.ja}`,
      'インストールに必要なパスワードは、このメールとは別に管理者からお知らせします。Windows、macOS、iPhone/iPad、Android のインストール手順はダウンロードページにあります。',
      '心当たりのない場合は、リンクを開かずに管理者にご連絡ください。',
      '',
      '----',
      '',
      `Dear ${o.name},`,
      '',
      `${o.organisation} has issued a device certificate for "${o.deviceLabel}" (serial ${o.serial}).`,
      'Open this link on the device that will use the certificate and download the certificate file. The link works only once.',
      '',
      o.url,
      '',
      `The link expires: ${until.en}`,
      'Your administrator gives you the password for installing it separately from this mail. The download page has the install steps for Windows, macOS, iPhone/iPad and Android.',
      'If you did not expect this mail, do not open the link, and tell your administrator.',
      '',
    ].join('\n'),
  };
}

/** A certificate's user is told it lapses soon, and how to get the next one. */
export function expiryWarningMail(o: Common & { readonly expiresAt: number; readonly daysLeft: number }): MailText {
  const at = both(o.expiresAt, o.timeZone);
  return {
    subject: `端末証明書の有効期限が近づいています / Your device certificate expires in ${o.daysLeft} day(s)`,
    text: [
      `${o.name} 様`,
      '',
      `端末「${o.deviceLabel}」の端末証明書（シリアル ${o.serial}）は ${at.ja} に有効期限が切れます。`,
      '期限が切れると、この端末から証明書が必要なアプリケーションを使えなくなります。新しい証明書を管理者に依頼してください。',
      '',
      '----',
      '',
      `Dear ${o.name},`,
      '',
      `The device certificate for "${o.deviceLabel}" (serial ${o.serial}) expires ${at.en}.`,
      'After that, applications that need it no longer open on this device. Ask your administrator for a new certificate.',
      '',
    ].join('\n'),
  };
}
