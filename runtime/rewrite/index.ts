export { createRouteRewriter, PUBLIC_ORIGIN_PLACEHOLDER, type RouteRewriterContext } from './create-route-rewriter.js';
export { RegexTimeoutError } from './bounded-replace.js';
