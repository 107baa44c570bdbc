export { createForwarder, type Forwarder, type ForwarderOptions, type UpstreamTlsOptions } from './forwarder.js';
export type { ForwardContext } from './headers.js';
export type { ErrorPage, GatewayErrorStatus, UpstreamErrorKind } from './upstream-errors.js';
export type { ExchangeHooks, ResponseHeadDecision, RouteRewriter } from './hooks.js';
