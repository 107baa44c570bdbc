export { createForwarder, type Forwarder, type ForwarderOptions, type UpstreamTlsOptions } from './forwarder.js';
export type { ForwardContext } from './headers.js';
export type { ErrorPage, UpstreamErrorKind } from './upstream-errors.js';
