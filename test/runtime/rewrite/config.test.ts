/**
 * The `rewrite` section of a route: defaults, and every mistake reported at start, all at once.
 */
import { describe, expect, it } from 'vitest';
import { regexProblem, validateRewrite } from '../../../runtime/config/rewrite.js';
import { validateRoutes } from '../../../runtime/config/routes.js';

function errorsOf(rewrite: unknown): string[] {
  const errors: string[] = [];
  validateRoutes([{ id: 'app', upstream: 'http://127.0.0.1:8080', rewrite }], errors);
  return errors;
}

describe('rewrite config', () => {
  it('is absent unless configured, and an empty section gets the safe defaults', () => {
    const errors: string[] = [];
    const [plain, withRewrite] = validateRoutes(
      [
        { id: 'a', upstream: 'http://127.0.0.1:8080' },
        { id: 'b', match: { pathPrefix: '/b' }, upstream: 'http://127.0.0.1:8080', rewrite: {} },
      ],
      errors,
    );
    expect(errors).toEqual([]);
    expect(plain!.rewrite).toBeUndefined();
    expect(withRewrite!.rewrite).toEqual({
      internalUrls: [],
      path: {},
      requestHeaders: [],
      responseHeaders: [],
      redirects: true,
      htmlUrls: false,
      cookies: { domain: 'host-only', sameSite: 'Lax' },
      body: {
        contentTypes: ['text/html', 'application/xhtml+xml', 'text/css', 'text/javascript', 'application/javascript', 'application/x-javascript', 'application/json'],
        maxBufferBytes: 8 * 1024 * 1024,
        regexTimeoutMs: 250,
        replace: [],
      },
    });
  });

  it('rules get ids from their position unless named', () => {
    const r = validateRewrite(
      { requestHeaders: [{ remove: 'X-A' }, { id: 'named', set: 'X-B', value: '1' }], body: { replace: [{ literal: 'a', with: 'b' }] } },
      'routes[0].rewrite',
      [],
    )!;
    expect(r.requestHeaders.map((x) => x.id)).toEqual(['requestHeaders[0]', 'named']);
    expect(r.body.replace[0]!.id).toBe('body.replace[0]');
  });

  it('reports every mistake at once, each naming the option', () => {
    const errors = errorsOf({
      surprise: 1,
      internalUrls: ['ftp://x'],
      path: { stripPrefix: 'wiki', addPrefix: '/' },
      requestHeaders: [
        { set: 'X-Kanmon-User', value: 'root' },
        { remove: 'Content-Length' },
        { set: 'X-A', value: 'line\r\nbreak' },
        { set: 'X-A', remove: 'X-B' },
        { replace: 'X-C', pattern: '(', with: 'x' },
      ],
      responseHeaders: [{ remove: 'Transfer-Encoding' }],
      cookies: { domain: 'not a domain', sameSite: 'lax' },
      body: { contentTypes: ['html'], maxBufferBytes: 10, replace: [{ regex: '(a+)+b', with: 'x' }, { literal: '', with: 'x' }, { regex: 'a', flags: 'g', with: 'x' }] },
    });
    const expectations = [
      "routes[0].rewrite: option 'surprise' is not known",
      "routes[0].rewrite: option 'internalUrls[0]' must be an http:// or https:// URL",
      "routes[0].rewrite.path: option 'stripPrefix' must be a path",
      "routes[0].rewrite.path: option 'addPrefix' must be a path",
      "routes[0].rewrite.requestHeaders[0]: option 'set' must not name a header that frames the message or carries Kanmon's identity",
      "routes[0].rewrite.requestHeaders[1]: option 'remove' must not name a header",
      "routes[0].rewrite.requestHeaders[2]: option 'value' must be a header value without line breaks",
      "routes[0].rewrite.requestHeaders[3]: must have exactly one of 'set', 'remove', 'replace', got 'set' and 'remove'",
      "routes[0].rewrite.requestHeaders[4]: option 'pattern' must be a valid regular expression",
      "routes[0].rewrite.responseHeaders[0]: option 'remove' must not name a header",
      "routes[0].rewrite.cookies: option 'domain' must be \"host-only\" or a domain name",
      "routes[0].rewrite.cookies: option 'sameSite' must be one of \"Lax\", \"Strict\", \"None\"",
      "routes[0].rewrite.body: option 'contentTypes' must be a non-empty list of media types",
      "routes[0].rewrite.body: option 'maxBufferBytes' must be an integer from 1024",
      "routes[0].rewrite.body.replace[0]: option 'regex' must be a regular expression without a repeated group that itself repeats",
      "routes[0].rewrite.body.replace[1]: option 'literal' must be a string of 1-4096 characters",
      "routes[0].rewrite.body.replace[2]: option 'flags' must be flags from 'i', 'm', 's', 'u'",
    ];
    for (const e of expectations) expect(errors.some((x) => x.startsWith(e)), `missing: ${e}\nin: ${errors.join('\n')}`).toBe(true);
    expect(errors).toHaveLength(expectations.length);
  });

  it('a rewrite that is not an object is one clear error', () => {
    expect(errorsOf('yes')).toEqual(['routes[0].rewrite: must be an object, got "yes"']);
  });

  it('refuses the classic exponential regex shapes and accepts ordinary ones', () => {
    for (const bad of ['(a+)+', '(\\w*)*x', '(x|y+){2,}', '((ab)*)+']) expect(regexProblem(bad, ''), bad).toMatch(/repeated group/);
    for (const good of ['v(\\d+)\\.(\\d+)', '(ab)+c', '[(a+)+]', '\\(a+\\)+', 'https?://intranet\\.corp\\.local(:\\d+)?', '(a+){3}']) {
      expect(regexProblem(good, 'i'), good).toBeUndefined();
    }
    expect(regexProblem('x'.repeat(1001), '')).toMatch(/1-1000 characters/);
  });

  it('config keeps patterns as text, so the frozen config can be serialised and passed on', () => {
    const r = validateRewrite({ body: { replace: [{ regex: 'a+', flags: 'i', with: 'b' }] } }, 'r', [])!;
    expect(JSON.parse(JSON.stringify(r)).body.replace[0]).toEqual({ id: 'body.replace[0]', kind: 'regex', pattern: { source: 'a+', flags: 'i' }, with: 'b' });
  });
});
