/**
 * Finds the login form in an upstream's login page and the fields a browser would post with
 * it: hidden fields (the CSRF token among them), prefilled inputs, checked boxes and the first
 * named submit button. A small tolerant tag scanner, not a full HTML parser: login pages are
 * simple, and anything it cannot read leaves the configured fields to do the work.
 */

export interface LoginForm {
  /** The form's action, unresolved ('' when absent: the page itself). */
  readonly action: string;
  readonly method: 'GET' | 'POST';
  /** Fields in document order, as a browser would send them before the user typed anything. */
  readonly fields: ReadonlyArray<readonly [string, string]>;
  /** Whether the form has an input named the configured password field. */
  readonly hasPasswordField: boolean;
}

const FORM = /<form\b([^>]*)>([\s\S]*?)(?:<\/form\s*>|$)/gi;
const INPUT = /<(input|button)\b([^>]*)>/gi;
const ATTR = /([^\s"'=<>`/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

/**
 * The form that holds the password field, else the only form with a password input, else
 * undefined. `passwordField` is the configured name.
 */
export function findLoginForm(html: string, passwordField: string): LoginForm | undefined {
  const forms: LoginForm[] = [];
  for (const m of html.matchAll(FORM)) {
    const attrs = attributes(m[1]!);
    const fields: Array<[string, string]> = [];
    let hasPasswordField = false;
    let hasPasswordInput = false;
    let submitTaken = false;
    for (const i of m[2]!.matchAll(INPUT)) {
      const tag = i[1]!.toLowerCase();
      const a = attributes(i[2]!);
      const name = a.get('name');
      const type = (a.get('type') ?? (tag === 'button' ? 'submit' : 'text')).toLowerCase();
      if (type === 'password') hasPasswordInput = true;
      if (name === passwordField) hasPasswordField = true;
      if (!name || a.has('disabled')) continue;
      if (type === 'submit' || type === 'image') {
        // A browser sends the clicked button; the first named one stands in for it.
        if (!submitTaken && type === 'submit') {
          submitTaken = true;
          fields.push([name, a.get('value') ?? '']);
        }
        continue;
      }
      if (type === 'button' || type === 'reset' || type === 'file' || type === 'password') continue;
      if ((type === 'checkbox' || type === 'radio') && !a.has('checked')) continue;
      fields.push([name, a.get('value') ?? (type === 'checkbox' || type === 'radio' ? 'on' : '')]);
    }
    const method = (attrs.get('method') ?? 'get').toUpperCase() === 'POST' ? 'POST' : 'GET';
    const form = { action: attrs.get('action') ?? '', method, fields, hasPasswordField } as const;
    if (hasPasswordField) return form;
    if (hasPasswordInput) forms.push(form);
  }
  return forms.length === 1 ? forms[0] : undefined;
}

/** Whether a page shows a login form again (an input named the password field), the usual sign of a refused sign-in. */
export function showsLoginForm(html: string, passwordField: string): boolean {
  for (const i of html.matchAll(INPUT)) {
    if (attributes(i[2]!).get('name') === passwordField) return true;
  }
  return false;
}

function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(ATTR)) {
    const key = m[1]!.toLowerCase();
    if (out.has(key)) continue;
    out.set(key, decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return out;
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

export function decodeEntities(value: string): string {
  if (!value.includes('&')) return value;
  return value.replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,8});/gi, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED[ref.toLowerCase()] ?? whole;
  });
}
