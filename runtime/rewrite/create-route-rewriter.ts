/**
 * One route's rewrite rules, compiled once when routes are built. Rules apply in a fixed,
 * documented order (README "Rewriting"):
 *
 * Request:  1. path (strip prefix, then add prefix)  2. request header rules, in the listed order
 * Response: 1. redirects (Location, Content-Location, Refresh)  2. Set-Cookie  3. response header
 *           rules, in the listed order (so an administrator's `set` has the last word)
 *           4. body: decompress → decode → replace rules, in the listed order → HTML/CSS URLs
 *           → encode → compress
 *
 * Every rule failure goes to `onRuleError` with the rule's id and the request, and leaves
 * what that rule would have changed as the upstream sent it.
 */
import type { RewriteConfig } from '../config/rewrite.js';
import type { RouteConfig } from '../config/routes.js';
import type { RouteRewriter } from '../proxy/hooks.js';
import { BodyRewriteStream, type ContentCoding } from './body-stream.js';
import { boundedReplace } from './bounded-replace.js';
import { rewriteSetCookie } from './cookies.js';
import { createCssUrlStage, createHtmlUrlStage, rewriteRefresh } from './html-urls.js';
import { chainStages, literalStage, regexStage, type TextStage } from './text-stages.js';
import { createUrlMapping } from './url-mapping.js';

export interface RouteRewriterContext {
  /** The public origin when a request does not say which one the client used. */
  readonly publicOrigin: string;
  /** The upstream's own origin, as the forwarder reaches it. */
  readonly upstreamOrigin: string;
  /** A rule failed for one request; `err.message` names the request. The place to log it. */
  onRuleError(ruleId: string, err: Error): void;
  /** Something was left unrewritten on purpose (a body over the cap, a charset that cannot be written back). */
  onWarning?(ruleId: string, message: string): void;
}

/** Placeholder in a body rule's replacement for the origin the client used. */
export const PUBLIC_ORIGIN_PLACEHOLDER = '{{publicOrigin}}';

const SUPPORTED_CODINGS = new Set(['gzip', 'deflate', 'br', 'identity', 'x-gzip']);
const BODYLESS_STATUS = new Set([204, 205, 206, 304]);

export function createRouteRewriter(route: RouteConfig, ctx: RouteRewriterContext): RouteRewriter | undefined {
  const rules = route.rewrite;
  if (!rules) return undefined;
  const upstreamUrl = /^https?:\/\//i.test(route.upstream) ? route.upstream : ctx.upstreamOrigin;
  const extra = upstreamUrl.toLowerCase().startsWith(ctx.upstreamOrigin.toLowerCase()) ? [] : [ctx.upstreamOrigin];
  const mapping = createUrlMapping(upstreamUrl, [...extra, ...rules.internalUrls], rules.path);
  const warn = ctx.onWarning ?? (() => undefined);
  const headerRegexes = new Map(
    rules.requestHeaders.flatMap((r) => (r.kind === 'replace' ? [[r.id, new RegExp(r.pattern.source, `${r.pattern.flags}g`)] as const] : [])),
  );
  const bodyRegexes = new Map(
    rules.body.replace.flatMap((r) => (r.kind === 'regex' ? [[r.id, new RegExp(r.pattern.source, `${r.pattern.flags}g`)] as const] : [])),
  );
  const rewritesBody = rules.body.replace.length > 0 || rules.htmlUrls;
  const buffered = bodyRegexes.size > 0;
  const hasPathRules = rules.path.stripPrefix !== undefined || rules.path.addPrefix !== undefined;
  const timeoutMs = rules.body.regexTimeoutMs;

  function fail(ruleId: string, err: unknown, request: string): void {
    const cause = err instanceof Error ? err : new Error(String(err));
    ctx.onRuleError(ruleId, new Error(`rewrite rule ${ruleId} of route ${route.id} failed for ${request}: ${cause.message}`, { cause }));
  }

  function requestTarget(target: string): string {
    if (!hasPathRules) return target;
    try {
      return mapping.toUpstream(target);
    } catch (err) {
      fail('path', err, target);
      return target;
    }
  }

  function requestHeaders(headers: string[]): string[] {
    let out = headers;
    for (const rule of rules!.requestHeaders) {
      if (rule.kind === 'set') out = [...withoutHeader(out, rule.name), rule.name, rule.value];
      else if (rule.kind === 'remove') out = withoutHeader(out, rule.name);
      else {
        const pattern = headerRegexes.get(rule.id)!;
        for (let i = 0; i < out.length; i += 2) {
          if (out[i]!.toLowerCase() !== rule.name) continue;
          try {
            const value = boundedReplace(out[i + 1]!, pattern, rule.with, timeoutMs);
            if (value !== out[i + 1]) {
              if (/[\r\n\0]/.test(value)) throw new Error('the replacement produced a line break or NUL; header left as it was');
              if (out === headers) out = [...headers];
              out[i + 1] = value;
            }
          } catch (err) {
            fail(rule.id, err, `request header ${rule.name}`);
          }
        }
      }
    }
    // Only codings the body rewriter can undo may come back.
    if (rewritesBody) out = limitAcceptEncoding(out, headers);
    return out;
  }

  function responseHead(
    status: number,
    headers: string[],
    request: { readonly method: string; readonly target: string; readonly publicOrigin?: string; readonly requestId?: string },
  ): { headers: string[]; body?: BodyRewriteStream } {
    const publicOrigin = request.publicOrigin ?? ctx.publicOrigin;
    const described = `${request.method} ${request.target}${request.requestId ? ` (request ${request.requestId})` : ''}`;
    const publicize = (url: string) => mapping.publicUrl(url, publicOrigin);
    let out = [...headers];

    if (rules!.redirects) {
      for (let i = 0; i < out.length; i += 2) {
        const name = out[i]!.toLowerCase();
        if (name !== 'location' && name !== 'content-location' && name !== 'refresh') continue;
        try {
          const value = out[i + 1]!;
          out[i + 1] = name === 'refresh' ? rewriteRefresh(value, publicize) : (publicize(value.trim()) ?? value);
        } catch (err) {
          fail('redirects', err, described);
        }
      }
    }

    if (rules!.cookies) {
      const cookies = rules!.cookies;
      for (let i = 0; i < out.length; i += 2) {
        if (out[i]!.toLowerCase() !== 'set-cookie') continue;
        try {
          out[i + 1] = rewriteSetCookie(out[i + 1]!, cookies, mapping.publicPath);
        } catch (err) {
          fail('cookies', err, described);
        }
      }
    }

    for (const rule of rules!.responseHeaders) {
      out = withoutHeader(out, rule.name);
      if (rule.kind === 'set') out.push(rule.name, rule.value);
    }

    if (!rewritesBody || status < 200 || BODYLESS_STATUS.has(status)) return { headers: out };
    const plan = bodyPlanFor(out, rules!, warn, described);
    if (!plan) return { headers: out };
    out = headersForRewrittenBody(out);
    if (request.method === 'HEAD') return { headers: out };

    const resolve = (s: string) => (s.includes(PUBLIC_ORIGIN_PLACEHOLDER) ? s.split(PUBLIC_ORIGIN_PLACEHOLDER).join(publicOrigin) : s);
    const body = new BodyRewriteStream({
      ...plan,
      buffered,
      maxBufferBytes: rules!.body.maxBufferBytes,
      stages: () => {
        const stages: TextStage[] = rules!.body.replace.map((r) =>
          r.kind === 'literal' ? literalStage(r.find, resolve(r.with)) : regexStage(r.id, bodyRegexes.get(r.id)!, resolve(r.with), timeoutMs),
        );
        if (rules!.htmlUrls && plan.kind === 'html') stages.push(createHtmlUrlStage(publicize));
        if (rules!.htmlUrls && plan.kind === 'css') stages.push(createCssUrlStage(publicize));
        return chainStages(stages);
      },
      onError: (ruleId, err) => fail(ruleId, err, described),
      onWarning: (ruleId, message) => warn(ruleId, `route ${route.id}, ${described}: ${message}`),
    });
    return { headers: out, body };
  }

  return { requestTarget, requestHeaders, responseHead };
}

interface BodyKind {
  readonly coding: ContentCoding;
  readonly kind: 'html' | 'css' | 'other';
  readonly charset: string | undefined;
}

/** Whether this response's body is one to rewrite, and how it is coded; undefined to leave it alone. */
function bodyPlanFor(headers: readonly string[], rules: RewriteConfig, warn: (ruleId: string, message: string) => void, described: string): BodyKind | undefined {
  const contentType = headerValue(headers, 'content-type');
  if (contentType === undefined) return undefined;
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  if (!rules.body.contentTypes.includes(mediaType)) return undefined;
  const kind = mediaType === 'text/html' || mediaType === 'application/xhtml+xml' ? 'html' : mediaType === 'text/css' ? 'css' : 'other';
  // URL rewriting alone has nothing to do in JavaScript or JSON.
  if (rules.body.replace.length === 0 && kind === 'other') return undefined;
  const encodings = allHeaderValues(headers, 'content-encoding')
    .flatMap((v) => v.split(','))
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '' && v !== 'identity');
  if (encodings.length > 1 || (encodings.length === 1 && !SUPPORTED_CODINGS.has(encodings[0]!))) {
    warn('body', `${described}: content-encoding ${JSON.stringify(encodings.join(', '))} cannot be rewritten; the body passes unchanged`);
    return undefined;
  }
  const coding: ContentCoding = encodings.length === 0 ? 'identity' : encodings[0] === 'x-gzip' ? 'gzip' : (encodings[0] as ContentCoding);
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType)?.[1]?.toLowerCase();
  return { coding, kind, charset };
}

/**
 * The body's length changes, and so do validators computed over its bytes: Content-Length
 * goes (the forwarder frames the body as chunked), digests go, a strong ETag becomes weak
 * (the content means the same, the bytes differ: RFC 9110 §8.8.1).
 */
function headersForRewrittenBody(headers: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'content-md5' || lower === 'digest' || lower === 'content-digest' || lower === 'repr-digest') continue;
    const value = headers[i + 1]!;
    out.push(name, lower === 'etag' && !value.trim().startsWith('W/') ? `W/${value.trim()}` : value);
  }
  return out;
}

function limitAcceptEncoding(headers: string[], original: string[]): string[] {
  let out = headers;
  for (let i = 0; i < out.length; i += 2) {
    if (out[i]!.toLowerCase() !== 'accept-encoding') continue;
    const kept = out[i + 1]!.split(',').filter((token) => SUPPORTED_CODINGS.has(token.split(';')[0]!.trim().toLowerCase()));
    const value = kept.length ? kept.map((t) => t.trim()).join(', ') : 'identity';
    if (value !== out[i + 1]) {
      if (out === original) out = [...original];
      out[i + 1] = value;
    }
  }
  return out;
}

function withoutHeader(headers: string[], lowerName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== lowerName) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

function headerValue(headers: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === lowerName) return headers[i + 1];
  return undefined;
}

function allHeaderValues(headers: readonly string[], lowerName: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === lowerName) values.push(headers[i + 1]!);
  return values;
}
