import { allMessageKeys, messagesFor, type Lang } from '../../../runtime/portal/i18n.js';

const OTHER: Record<Lang, Lang> = { ja: 'en', en: 'ja' };

/**
 * Text of the other language's catalog that shows up in a server-rendered page (the page is
 * then not fully translated). Texts shorter than four characters, or the same in both
 * languages, are not telling and are passed over.
 */
export function foreignTexts(htmlText: string, lang: Lang): string[] {
  const shown = htmlText.replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');
  const mine = messagesFor(lang);
  const other = messagesFor(OTHER[lang]);
  return allMessageKeys().filter((k) => other[k] !== mine[k] && other[k].trim().length >= 4 && shown.includes(other[k]));
}
