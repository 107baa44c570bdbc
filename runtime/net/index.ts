export { cidrContains, createAddressMatcher, isIpAddress, parseCidr, unmapIpv4, type AddressMatcher, type Cidr } from './cidr.js';
export {
  buildProxyV2Header,
  crc32c,
  parseProxyV2,
  PP2_TYPE,
  PROXY_V2_MAX_HEADER_BYTES,
  PROXY_V2_SIGNATURE,
  type ProxyAddress,
  type ProxyTlv,
  type ProxyV2HeaderInput,
  type ProxyV2Result,
} from './proxy-protocol.js';
export {
  clientAddressOf,
  listenWithProxyProtocol,
  proxiedClientAddress,
  proxiedConnectionOf,
  type ProxiedConnection,
  type ProxyListenerOptions,
  type ProxyRefusalReason,
} from './proxy-listener.js';
