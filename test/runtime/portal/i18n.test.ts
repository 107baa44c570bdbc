import { describe, expect, it } from 'vitest';
import { allMessageKeys, messagesFor, pickLang } from '../../../runtime/portal/i18n.js';

describe('i18n', () => {
  it('has every message in Japanese and English, and no Japanese message is left in English', () => {
    const ja = messagesFor('ja');
    const en = messagesFor('en');
    for (const key of allMessageKeys()) {
      expect(ja[key], key).toBeTruthy();
      expect(en[key], key).toBeTruthy();
    }
    const untranslated = allMessageKeys().filter((k) => ja[k] === en[k] && !['app.name'].includes(k));
    expect(untranslated).toEqual([]);
  });

  it.each([
    [undefined, undefined, 'ja,en;q=0.5', 'ja'],
    [undefined, undefined, 'ja-JP', 'ja'],
    [undefined, undefined, 'en-US,ja;q=0.9', 'en'],
    [undefined, undefined, 'fr,ja;q=0.8,en;q=0.5', 'ja'],
    [undefined, undefined, 'ja;q=0, en', 'en'],
    [undefined, undefined, 'de', 'en'],
    [undefined, undefined, undefined, 'en'],
    [undefined, 'ja', 'en', 'ja'],
    ['en', 'ja', 'ja', 'en'],
    ['xx', undefined, 'ja', 'ja'],
    [undefined, undefined, ';;;,,,q=abc', 'en'],
  ])('query %j cookie %j accept %j → %s', (q, c, a, expected) => {
    expect(pickLang(q, c, a)).toBe(expected);
  });
});
