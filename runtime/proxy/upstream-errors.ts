/**
 * What went wrong talking to an upstream, and what the client is told about it.
 *
 * The client only ever learns "bad gateway" or "gateway timeout" and a request id; the
 * upstream's address and the error detail go to the operator through `onError`.
 */
import type { IncomingMessage } from 'node:http';
import type { ForwardContext } from './headers.js';

/** connect: nothing listening / unresolvable / TLS refused; timeout: no answer in time; reset: the connection broke. */
export type UpstreamErrorKind = 'connect' | 'timeout' | 'reset';

/** The statuses Kanmon answers in place of the upstream: body too large, upstream unreachable, upstream too slow. */
export type GatewayErrorStatus = 413 | 502 | 504;

/** Renders the page for one of those; `req` gives the language (?lang, cookie, Accept-Language) and the retry URL. */
export type ErrorPage = (
  status: GatewayErrorStatus,
  ctx: ForwardContext,
  req: IncomingMessage,
) => { contentType: string; body: string; headers?: Readonly<Record<string, string>> };

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
]);

export function classifyUpstreamError(err: unknown): UpstreamErrorKind {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (TIMEOUT_CODES.has(code)) return 'timeout';
    if (CONNECT_CODES.has(code) || code.startsWith('ERR_SSL_')) return 'connect';
  }
  return 'reset';
}

/** Client-side problems undici refuses to send (a header value it deems invalid, say). */
export function isRefusedRequest(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED';
}

export function statusFor(kind: UpstreamErrorKind): 502 | 504 {
  return kind === 'timeout' ? 504 : 502;
}

/** The fallback page: fixed wording, nothing about the upstream. */
export const genericErrorPage: ErrorPage = (status, ctx) => ({
  contentType: 'text/plain; charset=utf-8',
  body:
    status === 504
      ? `Gateway Timeout: the application did not answer in time.\nRequest id: ${ctx.requestId}\n`
      : status === 413
        ? `Payload Too Large: the request body is larger than this application accepts.\nRequest id: ${ctx.requestId}\n`
        : `Bad Gateway: the application is not reachable right now.\nRequest id: ${ctx.requestId}\n`,
});
