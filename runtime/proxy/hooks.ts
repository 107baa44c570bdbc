/**
 * What other parts of the gateway may change about one exchange, and where the forwarder
 * applies it. Two producers exist: a route's rewrite rules (runtime/rewrite builds a
 * RouteRewriter from route config, once per route) and a route's upstream sign-in
 * (runtime/upstream-auth hands ExchangeHooks to each forward). Routes without either take
 * the forwarder's plain path, untouched.
 *
 * Headers are flat `[name, value, name, value, …]` lists, as everywhere in runtime/proxy.
 */
import type { Transform } from 'node:stream';

/** One route's rewrite rules, compiled. Every method returns its input unchanged when no rule applies. */
export interface RouteRewriter {
  /** The request target (path and query) to send upstream, from the one the client sent. */
  requestTarget(target: string): string;
  /** The upstream request headers, after Kanmon's own header rules (identity, forwarding) were applied. */
  requestHeaders(headers: string[]): string[];
  /**
   * The response head the client gets, and, when the body must be rewritten, a transform the
   * forwarder pipes the upstream body through. A transform owns the framing: it removes
   * Content-Length (and adjusts Content-Encoding) in the headers it returns when it changes
   * the body. A failing rule never breaks a page silently: the rewriter reports it with the
   * rule's id through the error callback it was built with.
   */
  responseHead(
    status: number,
    headers: string[],
    request: {
      readonly method: string;
      readonly target: string;
      /** The origin the client used (`https://host[:port]`); internal URLs become this. @default the rewriter's build-time publicOrigin */
      readonly publicOrigin?: string;
      /** Named in rule error reports so the log line can be tied to the request. */
      readonly requestId?: string;
    },
  ): { headers: string[]; body?: Transform };
}

export type ResponseHeadDecision =
  /** Relay the response; `headers`, when given, replace the upstream's (e.g. Set-Cookie taken into a server-side jar). */
  | { readonly kind: 'pass'; readonly headers?: string[] }
  /**
   * Discard the upstream's response (its body is drained, the connection kept where it can be)
   * and call `onIntercept`, which then answers the client itself, e.g. after signing in to the
   * upstream and forwarding the request again.
   */
  | { readonly kind: 'intercept'; readonly onIntercept: () => void }
  /**
   * Decide after seeing the body (a login page served with 200 and a marker string in it).
   * The forwarder holds the head back and collects the (uncompressed: the hook asked for
   * `accept-encoding: identity`) body up to `maxBytes`, then applies `decide(body)` as if it
   * were the head's decision; a 'pass' writes the held head and the collected body. A body
   * larger than `maxBytes` is not decided on: the head and what was collected are written and
   * the rest streams as usual (as 'pass' with the original headers). Only hooks of routes
   * configured with a body marker return this, and only for HTML answers to bodiless requests.
   */
  | { readonly kind: 'inspect-body'; readonly maxBytes: number; readonly decide: (body: Buffer) => Exclude<ResponseHeadDecision, { kind: 'inspect-body' }> };

/** Per-request additions for a route with upstream sign-in. */
export interface ExchangeHooks {
  /** Upstream request headers to set; each replaces any header of that name (cookie from the jar, authorization). */
  readonly upstreamHeaders?: readonly string[];
  /** Sees the upstream's final response head before the client does. */
  readonly inspectResponse?: (status: number, headers: string[]) => ResponseHeadDecision;
}
