/**
 * URL attributes in HTML ("image path replacement" on the appliances): internal absolute URLs
 * in href, src, action, srcset, style url() and meta refresh become public ones.
 *
 * A small streaming tag scanner, not a full HTML parser: text passes through as soon as it is
 * known not to be inside an unfinished tag or comment, so a page is never held whole. Script
 * contents are left alone (use a body rule for URLs built in JavaScript); style contents get
 * their url() and @import rewritten.
 */
import type { TextStage } from './text-stages.js';

export type Publicize = (url: string) => string | undefined;

/** Attributes whose whole value is one URL. */
const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'poster', 'background', 'cite', 'data', 'longdesc', 'manifest', 'xlink:href']);
/** Elements whose content is not markup; `<` inside them starts no tag. */
const RAW_TEXT = new Set(['script', 'style', 'textarea', 'title', 'xmp', 'noembed', 'noframes']);
/** An unfinished tag or comment longer than this is not waited for: it passes as text. */
const MAX_HOLD = 256 * 1024;

export function createHtmlUrlStage(publicize: Publicize): TextStage {
  let pending = '';
  /** Inside a raw-text element: its name, whose end tag ends it. */
  let rawText: string | undefined;

  function run(final: boolean): string {
    let out = '';
    let i = 0;
    const text = pending;
    while (i < text.length) {
      if (rawText !== undefined) {
        const close = indexOfCaseless(text, `</${rawText}`, i);
        if (close < 0) {
          // Keep back what could be the start of the end tag (and, in style, an unfinished url()).
          const keepFrom = final ? text.length : rawText === 'style' ? cssSafeEnd(text, i) : Math.max(i, text.length - rawText.length - 2);
          const chunk = text.slice(i, keepFrom);
          out += rawText === 'style' ? rewriteCssUrls(chunk, publicize) : chunk;
          i = keepFrom;
          if (!final && text.length - i > MAX_HOLD) {
            out += text.slice(i);
            i = text.length;
          }
          break;
        }
        const chunk = text.slice(i, close);
        out += rawText === 'style' ? rewriteCssUrls(chunk, publicize) : chunk;
        rawText = undefined;
        i = close;
        continue;
      }
      const lt = text.indexOf('<', i);
      if (lt < 0) {
        out += text.slice(i);
        i = text.length;
        break;
      }
      out += text.slice(i, lt);
      i = lt;
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        if (end < 0) {
          if (final || text.length - i > MAX_HOLD) {
            out += text.slice(i);
            i = text.length;
          }
          break;
        }
        out += text.slice(i, end + 3);
        i = end + 3;
        continue;
      }
      const next = text.charCodeAt(i + 1);
      if (Number.isNaN(next) && !final) break;
      if (!isAsciiLetter(next)) {
        // An end tag, a doctype or a lone '<': nothing to rewrite, pass the '<' and go on.
        out += '<';
        i++;
        continue;
      }
      const tag = scanTag(text, i);
      if (tag === undefined) {
        if (final || text.length - i > MAX_HOLD) {
          out += text.slice(i);
          i = text.length;
        }
        break;
      }
      out += rewriteTag(text.slice(i, tag.end), tag, publicize);
      if (RAW_TEXT.has(tag.name) && !tag.selfClosing) rawText = tag.name;
      i = tag.end;
    }
    pending = text.slice(i);
    return out;
  }

  return {
    push(text) {
      pending += text;
      return run(false);
    },
    end() {
      const out = run(true);
      const rest = pending;
      pending = '';
      return out + rest;
    },
  };
}

/** A stage for CSS bodies: url() and @import rewritten, text held back only to the last complete declaration. */
export function createCssUrlStage(publicize: Publicize): TextStage {
  let pending = '';
  return {
    push(text) {
      pending += text;
      let cut = cssSafeEnd(pending, 0);
      if (pending.length - cut > MAX_HOLD) cut = pending.length;
      const out = rewriteCssUrls(pending.slice(0, cut), publicize);
      pending = pending.slice(cut);
      return out;
    },
    end() {
      const out = rewriteCssUrls(pending, publicize);
      pending = '';
      return out;
    },
  };
}

/** Just past the last ';', '}' or line break at or after `from` (CSS tokens do not straddle them), or `from`. */
function cssSafeEnd(text: string, from: number): number {
  for (let j = text.length - 1; j >= from; j--) {
    const c = text.charCodeAt(j);
    if (c === 59 /* ; */ || c === 125 /* } */ || c === 10 /* \n */) return j + 1;
  }
  return from;
}

export function rewriteCssUrls(css: string, publicize: Publicize): string {
  if (!/url\(|@import/i.test(css)) return css;
  return css
    .replace(/(url\(\s*)(["']?)([^"')\s]*)(\2\s*\))/gi, (whole, open: string, quote: string, url: string, close: string) => {
      const mapped = publicize(url);
      return mapped === undefined ? whole : `${open}${quote}${mapped}${close}`;
    })
    .replace(/(@import\s+)(["'])([^"'\n]*)\2/gi, (whole, open: string, quote: string, url: string) => {
      const mapped = publicize(url);
      return mapped === undefined ? whole : `${open}${quote}${mapped}${quote}`;
    });
}

/** A Refresh header or meta refresh value, `5; url=http://…`, with its URL made public. */
export function rewriteRefresh(value: string, publicize: Publicize): string {
  // Read by hand rather than with one regex: the value comes from the upstream, and a pattern
  // with several optional runs of spaces backtracks quadratically on a long hostile one.
  let i = skipSpaces(value, 0);
  while (i < value.length && ((value[i]! >= '0' && value[i]! <= '9') || value[i] === '.')) i++;
  i = skipSpaces(value, i);
  if (value[i] === ';' || value[i] === ',') i = skipSpaces(value, i + 1);
  if (value.slice(i, i + 3).toLowerCase() === 'url') {
    const eq = skipSpaces(value, i + 3);
    if (value[eq] === '=') i = skipSpaces(value, eq + 1);
  }
  let end = value.length;
  while (end > i && isSpace(value.charCodeAt(end - 1))) end--;
  const quote = value[i] === '"' || value[i] === "'" ? value[i] : '';
  const urlStart = i + quote.length;
  const urlEnd = quote && end > urlStart && value[end - 1] === quote ? end - 1 : end;
  if (urlEnd <= urlStart) return value;
  const mapped = publicize(value.slice(urlStart, urlEnd));
  return mapped === undefined ? value : value.slice(0, urlStart) + mapped + value.slice(urlEnd);
}

function skipSpaces(text: string, from: number): number {
  let i = from;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

interface Attribute {
  readonly name: string;
  /** Value's position in the tag text (without quotes); -1 when the attribute has no value. */
  readonly valueStart: number;
  readonly valueEnd: number;
}

interface ScannedTag {
  readonly name: string;
  /** Index just past '>' in the scanned text. */
  readonly end: number;
  readonly attributes: readonly Attribute[];
  readonly selfClosing: boolean;
}

/** Reads a start tag at `start` ('<' then a letter); undefined when the text ends before its '>'. */
function scanTag(text: string, start: number): ScannedTag | undefined {
  let i = start + 1;
  while (i < text.length && !isSpace(text.charCodeAt(i)) && text[i] !== '>' && text[i] !== '/') i++;
  const name = text.slice(start + 1, i).toLowerCase();
  const attributes: Attribute[] = [];
  let selfClosing = false;
  while (i < text.length) {
    const c = text[i]!;
    if (isSpace(c.charCodeAt(0))) {
      i++;
      continue;
    }
    if (c === '>') return { name, end: i + 1, attributes: attributes.map((a) => ({ ...a, valueStart: a.valueStart - start, valueEnd: a.valueEnd - start })), selfClosing };
    if (c === '/') {
      selfClosing = text[i + 1] === '>';
      i++;
      continue;
    }
    const nameStart = i;
    while (i < text.length && !isSpace(text.charCodeAt(i)) && text[i] !== '>' && text[i] !== '/' && (text[i] !== '=' || i === nameStart)) i++;
    const attrName = text.slice(nameStart, i).toLowerCase();
    let j = i;
    while (j < text.length && isSpace(text.charCodeAt(j))) j++;
    if (j >= text.length) return undefined;
    if (text[j] !== '=') {
      attributes.push({ name: attrName, valueStart: -1, valueEnd: -1 });
      i = j;
      continue;
    }
    j++;
    while (j < text.length && isSpace(text.charCodeAt(j))) j++;
    if (j >= text.length) return undefined;
    const q = text[j];
    if (q === '"' || q === "'") {
      const close = text.indexOf(q, j + 1);
      if (close < 0) return undefined;
      attributes.push({ name: attrName, valueStart: j + 1, valueEnd: close });
      i = close + 1;
    } else {
      let k = j;
      while (k < text.length && !isSpace(text.charCodeAt(k)) && text[k] !== '>') k++;
      if (k >= text.length) return undefined;
      attributes.push({ name: attrName, valueStart: j, valueEnd: k });
      i = k;
    }
  }
  return undefined;
}

function rewriteTag(tagText: string, tag: ScannedTag, publicize: Publicize): string {
  let out = '';
  let at = 0;
  const isRefresh =
    tag.name === 'meta' &&
    tag.attributes.some((a) => a.name === 'http-equiv' && a.valueStart >= 0 && tagText.slice(a.valueStart, a.valueEnd).trim().toLowerCase() === 'refresh');
  for (const a of tag.attributes) {
    if (a.valueStart < 0) continue;
    const value = tagText.slice(a.valueStart, a.valueEnd);
    let rewritten: string | undefined;
    if (URL_ATTRIBUTES.has(a.name)) {
      const trimmed = value.trim();
      const mapped = trimmed ? publicize(trimmed) : undefined;
      if (mapped !== undefined) rewritten = value.replace(trimmed, () => mapped);
    } else if (a.name === 'srcset' || a.name === 'imagesrcset') {
      rewritten = rewriteSrcset(value, publicize);
    } else if (a.name === 'style') {
      rewritten = rewriteCssUrls(value, publicize);
    } else if (a.name === 'content' && isRefresh) {
      rewritten = rewriteRefresh(value, publicize);
    }
    if (rewritten !== undefined && rewritten !== value) {
      out += tagText.slice(at, a.valueStart) + rewritten;
      at = a.valueEnd;
    }
  }
  return at === 0 ? tagText : out + tagText.slice(at);
}

/** `url 1x, url 2x` or `url 480w, …`: each candidate's URL made public. */
function rewriteSrcset(value: string, publicize: Publicize): string {
  return value.replace(/(^|,)(\s*)([^\s,]+)/g, (whole, sep: string, space: string, url: string) => {
    const mapped = publicize(url);
    return mapped === undefined ? whole : `${sep}${space}${mapped}`;
  });
}

function indexOfCaseless(text: string, needle: string, from: number): number {
  const lower = needle.toLowerCase();
  let at = text.indexOf('<', from);
  while (at >= 0) {
    if (text.slice(at, at + lower.length).toLowerCase() === lower) return at;
    at = text.indexOf('<', at + 1);
  }
  return -1;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 12 || c === 13;
}
