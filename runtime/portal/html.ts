import type { Lang, Translate } from './i18n.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Tagged template that escapes every interpolation unless it is already `Html`. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(v);
}

/** A time rendered in UTC on the server; the page script shows it in the viewer's local time. */
export function timeTag(epochMs: number | undefined, fallback: string): Html {
  if (epochMs === undefined) return html`${fallback}`;
  const iso = new Date(epochMs).toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

export interface PageOptions {
  readonly lang: Lang;
  readonly t: Translate;
  readonly title: string;
  readonly body: Html;
  /** Script files under /.kanmon/static/ (no inline script: the CSP forbids it). */
  readonly scripts?: readonly string[];
  /** The current path and query, to build the language switch link. */
  readonly currentUrl: string;
  readonly requestId?: string;
}

export function languageSwitchHref(currentUrl: string, lang: Lang): string {
  const url = new URL(currentUrl, 'https://kanmon.invalid');
  url.searchParams.set('lang', lang === 'ja' ? 'en' : 'ja');
  return `${url.pathname}${url.search}`;
}

export function page(opts: PageOptions): string {
  const { lang, t } = opts;
  const scripts = (opts.scripts ?? []).map((s) => html`<script src="/.kanmon/static/${s}" defer></script>`);
  return `<!doctype html>\n${html`<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · ${t('app.name')}</title>
<link rel="stylesheet" href="/.kanmon/static/kanmon.css">
<script src="/.kanmon/static/portal.js" defer></script>
${scripts}
</head>
<body>
<header class="bar">
  <span class="brand" aria-label="Kanmon">関門 <span>Kanmon</span></span>
  <a class="lang" href="${languageSwitchHref(opts.currentUrl, lang)}" hreflang="${lang === 'ja' ? 'en' : 'ja'}" id="lang-switch">${t('lang.switch')}</a>
</header>
<main id="main">
<h1>${opts.title}</h1>
${opts.body}
</main>
${opts.requestId ? html`<footer><small>${t('common.requestId')}: <code>${opts.requestId}</code></small></footer>` : ''}
</body>
</html>`}\n`;
}
