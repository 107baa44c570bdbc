import { html, languageSwitchHref, type Html } from '../portal/html.js';
import type { Lang, MessageKey, Translate } from '../portal/i18n.js';
import { dataBlock } from '../portal/pages/data-block.js';
import { CSRF_FIELD } from './csrf.js';

/** One entry of the console's navigation. */
export interface NavItem {
  readonly href: string;
  readonly label: MessageKey;
  /** Position in the bar; pages sort by it. */
  readonly order: number;
}

export interface AdminPageOptions {
  readonly lang: Lang;
  readonly t: Translate;
  readonly currentUrl: string;
  readonly requestId: string;
  readonly nav: readonly NavItem[];
  /** The nav entry to mark as current. */
  readonly section: string;
  readonly title: string;
  readonly body: Html;
  readonly username: string;
  readonly csrf: string;
  /** A message key shown once after an action (from ?done=). */
  readonly notice?: MessageKey;
  readonly scripts?: readonly string[];
}

/** A hidden CSRF field for a console form. */
export function csrfField(token: string): Html {
  return html`<input type="hidden" name="${CSRF_FIELD}" value="${token}">`;
}

/** A POST form with its CSRF token; `sensitive` forms are the ones that may ask for a fresh passkey. */
export function postForm(o: { action: string; csrf: string; body: Html; id?: string; className?: string; confirm?: string }): Html {
  return html`<form method="post" action="${o.action}"${o.id ? html` id="${o.id}"` : ''} class="${o.className ?? 'admin-form'}"${o.confirm ? html` data-confirm="${o.confirm}"` : ''}>${csrfField(o.csrf)}${o.body}</form>`;
}

/** The console's page frame: navigation, language switch, signed-in user, sign-out. */
export function adminPage(o: AdminPageOptions): string {
  const { t, lang } = o;
  const nav = [...o.nav].sort((a, b) => a.order - b.order);
  return `<!doctype html>\n${html`<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · ${t('admin.console')} · ${t('app.name')}</title>
<link rel="stylesheet" href="/.kanmon/static/kanmon.css">
<link rel="stylesheet" href="/.kanmon/static/admin.css">
<script src="/.kanmon/static/portal.js" defer></script>
<script src="/.kanmon/static/admin.js" defer></script>
${(o.scripts ?? []).map((s) => html`<script src="/.kanmon/static/${s}" defer></script>`)}
</head>
<body class="admin">
<a class="skip" href="#main">${t('admin.skip')}</a>
<header class="bar">
  <span class="brand" aria-label="Kanmon">関門 <span>${t('admin.console')}</span></span>
  <span class="who">${t('admin.signedInAs')} <strong id="admin-user">${o.username}</strong>
  <a class="lang" href="${languageSwitchHref(o.currentUrl, lang)}" hreflang="${lang === 'ja' ? 'en' : 'ja'}" id="lang-switch">${t('lang.switch')}</a></span>
</header>
<nav class="admin-nav" aria-label="${t('admin.nav')}"><ul>
${nav.map((n) => html`<li><a href="${n.href}"${n.href === o.section ? html` aria-current="page"` : ''}>${t(n.label)}</a></li>`)}
</ul>
<form method="post" action="/.kanmon/logout" class="nav-signout"><button type="submit" id="admin-sign-out">${t('account.signOut')}</button></form>
</nav>
<main id="main">
<h1>${o.title}</h1>
${o.notice ? html`<p id="notice" class="notice" role="status">${t(o.notice)}</p>` : ''}
${o.body}
<p id="status" class="status" role="status" aria-live="polite"></p>
</main>
<footer><small>${t('common.requestId')}: <code>${o.requestId}</code></small></footer>
${dataBlock({ csrf: o.csrf, messages: { working: t('common.working'), failed: t('common.failed'), cancelled: t('common.cancelled'), unsupported: t('common.unsupported') } })}
</body>
</html>`}\n`;
}
