/**
 * Character sets of rewritten bodies: which one a response uses, and how text goes back to
 * bytes in it. Node decodes every WHATWG encoding (TextDecoder) but encodes only UTF-8, so
 * the encoders here are built from the decoders themselves: every byte sequence of the
 * charset is decoded once and the table inverted, first sequence wins (the WHATWG encoders'
 * rule), which guarantees that every character read from a body can be written back.
 * Japanese intranet pages are the main customers: Shift_JIS and EUC-JP.
 */

export type Encode = (text: string) => Buffer;

/** Charsets (TextDecoder names) that can be re-encoded. Stateful ones (ISO-2022-JP) and UTF-16 cannot. */
const SINGLE_BYTE = /^(windows-\d+|iso-8859-\d+|koi8-[ru]|ibm866|macintosh|x-mac-cyrillic)$/;
const DOUBLE_BYTE = new Set(['shift_jis', 'euc-jp', 'euc-kr', 'gbk', 'gb18030', 'big5']);

/** The canonical TextDecoder name for a charset label, or undefined when Node does not know it. */
export function canonicalCharset(label: string): string | undefined {
  try {
    return new TextDecoder(label.trim()).encoding;
  } catch {
    return undefined;
  }
}

export function canEncode(charset: string): boolean {
  return charset === 'utf-8' || SINGLE_BYTE.test(charset) || DOUBLE_BYTE.has(charset);
}

/** The charset a Content-Type header names, lower-cased, or undefined. */
export function charsetParameter(contentType: string): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType);
  return m ? m[1]!.toLowerCase() : undefined;
}

/**
 * The charset declared inside the first bytes of a body: an HTML `<meta charset>` or
 * `<meta http-equiv="Content-Type" content="…; charset=…">` (HTML's prescan looks at 1024
 * bytes), or a CSS `@charset`. Byte patterns, so any ASCII-compatible encoding is read alike.
 */
export function declaredCharset(head: Buffer, kind: 'html' | 'css' | 'other'): string | undefined {
  const text = head.subarray(0, 1024).toString('latin1');
  if (kind === 'html') {
    const meta = /<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([a-z0-9_:.-]+)/i.exec(text);
    return meta ? meta[1]!.toLowerCase() : undefined;
  }
  if (kind === 'css') {
    const at = /^(?:\ufeff|\xef\xbb\xbf)?@charset "([^"]+)";/.exec(text);
    return at ? at[1]!.toLowerCase() : undefined;
  }
  return undefined;
}

const encoders = new Map<string, Encode>();

/**
 * An encoder for `charset` (a canonical name for which canEncode is true). Characters the
 * charset cannot hold (only ever ones a replacement rule introduced) become `&#N;` in HTML
 * and '?' elsewhere; `onUnencodable` is told how many.
 */
export function encoderFor(charset: string, html: boolean, onUnencodable?: (count: number) => void): Encode {
  if (charset === 'utf-8') return (text) => Buffer.from(text, 'utf8');
  const key = charset;
  let table = tables.get(key);
  if (!table) {
    table = buildTable(charset);
    tables.set(key, table);
  }
  const t = table;
  const cached = encoders.get(`${key} ${html}`);
  if (cached && !onUnencodable) return cached;
  const encode: Encode = (text) => {
    const out = Buffer.allocUnsafe(text.length * 3 + 16);
    let n = 0;
    let missing = 0;
    let buf = out;
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i);
      if (cp < 0x80) {
        buf[n++] = cp;
        continue;
      }
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        const low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          i++;
        }
      }
      const packed = cp < 0x10000 ? t[cp]! : 0;
      if (packed !== 0) {
        const len = packed >>> 24;
        if (len === 1) buf[n++] = packed & 0xff;
        else if (len === 2) {
          buf[n++] = (packed >>> 8) & 0xff;
          buf[n++] = packed & 0xff;
        } else {
          buf[n++] = (packed >>> 16) & 0xff;
          buf[n++] = (packed >>> 8) & 0xff;
          buf[n++] = packed & 0xff;
        }
        continue;
      }
      missing++;
      const fallback = html ? `&#${cp};` : '?';
      if (n + fallback.length + (text.length - i) * 3 > buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2 + fallback.length);
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      n += buf.write(fallback, n, 'latin1');
    }
    if (missing && onUnencodable) onUnencodable(missing);
    return buf.subarray(0, n);
  };
  if (!onUnencodable) encoders.set(`${key} ${html}`, encode);
  return encode;
}

/** Per charset: code point (BMP) → (length << 24 | bytes), 0 for none. */
const tables = new Map<string, Uint32Array>();

function buildTable(charset: string): Uint32Array {
  const table = new Uint32Array(0x10000);
  const decoder = new TextDecoder(charset, { fatal: true, ignoreBOM: true });
  const put = (bytes: number[]) => {
    let text: string;
    try {
      text = decoder.decode(Uint8Array.from(bytes));
    } catch {
      return;
    }
    if (text.length !== 1) return;
    const cp = text.charCodeAt(0);
    if (cp < 0x80 || table[cp] !== 0) return;
    table[cp] = (bytes.length << 24) | bytes.reduce((acc, b) => (acc << 8) | b, 0);
  };
  if (SINGLE_BYTE.test(charset)) {
    for (let b = 0x80; b <= 0xff; b++) put([b]);
    return table;
  }
  if (charset === 'shift_jis') {
    for (let b = 0xa1; b <= 0xdf; b++) put([b]);
    // The WHATWG Shift_JIS encoder leaves out the NEC-selected IBM extension rows (leads
    // 0xED-0xEE): the same characters are written with their IBM codes (0xFA-0xFC).
    const leads = [...range(0x81, 0x9f), ...range(0xe0, 0xfc)];
    for (const pass of [0, 1]) {
      for (const lead of leads) {
        const later = lead >= 0xed && lead <= 0xef;
        if ((pass === 0) === later) continue;
        for (const trail of [...range(0x40, 0x7e), ...range(0x80, 0xfc)]) put([lead, trail]);
      }
    }
    return table;
  }
  if (charset === 'euc-jp') {
    for (let b = 0xa1; b <= 0xdf; b++) put([0x8e, b]);
    for (let lead = 0xa1; lead <= 0xfe; lead++) for (let trail = 0xa1; trail <= 0xfe; trail++) put([lead, trail]);
    // JIS X 0212 (three bytes) only for characters JIS X 0208 lacks, so pages using them round-trip.
    for (let lead = 0xa1; lead <= 0xfe; lead++) for (let trail = 0xa1; trail <= 0xfe; trail++) put([0x8f, lead, trail]);
    return table;
  }
  // euc-kr, gbk, gb18030 (its two-byte part), big5: leads 0x81-0xFE, trails 0x40-0xFE.
  for (let lead = 0x81; lead <= 0xfe; lead++) for (let trail = 0x40; trail <= 0xfe; trail++) put([lead, trail]);
  return table;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
