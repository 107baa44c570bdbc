/**
 * PROXY protocol version 2, binary header only (HAProxy "The PROXY protocol", versions 1 & 2,
 * section 2.2). An AWS Network Load Balancer sends it ahead of the client's bytes when the
 * target group has proxy_protocol_v2 enabled, so that a TLS-passthrough backend still learns
 * the client's address.
 *
 * Version 1 (the text form, section 2.1) is refused on purpose: the NLB only speaks v2, and
 * accepting both would widen what an unexpected peer can make us believe.
 */
import { formatIpv4Bytes, formatIpv6Bytes } from './cidr.js';

/** §2.2: the 12-byte signature every v2 header starts with. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Fixed part: signature, version/command, family/transport, 16-bit length. */
export const PROXY_V2_FIXED_BYTES = 16;

/**
 * Upper bound on a whole header we accept. §2.2 allows a length field up to 65535, but the
 * largest address block is 216 bytes (AF_UNIX) and the TLVs a load balancer adds (an NLB's
 * PP2_TYPE_AWS VPC endpoint id, padding) are tens of bytes. Waiting for 64 KiB from a peer
 * before the TLS handshake even starts would only serve someone holding connections open.
 */
export const PROXY_V2_MAX_HEADER_BYTES = 1024;

/** §2.2.7: TLV types named by the spec (and AWS's own), for callers that look at them. */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
  /** AWS: PP2_TYPE_AWS, carrying the VPC endpoint id for PrivateLink connections. */
  AWS: 0xea,
} as const;

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

export type ProxyV2Result =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | {
      readonly kind: 'ok';
      /**
       * LOCAL: the connection was made by the proxy itself (a health check); use the real peer
       * address. PROXY: the connection is relayed for the client in `source`.
       */
      readonly command: 'LOCAL' | 'PROXY';
      readonly family: 'inet' | 'inet6' | 'unspec';
      /** The client, for PROXY over AF_INET/AF_INET6. */
      readonly source?: ProxyAddress;
      /** The address the client connected to (the load balancer's listener). */
      readonly destination?: ProxyAddress;
      /** TLVs after the address block (§2.2.7), in order; empty for LOCAL. */
      readonly tlvs: readonly ProxyTlv[];
      /** Bytes the header occupies at the start of `buf`; what follows belongs to the application. */
      readonly headerLength: number;
    };

/**
 * Reads a PROXY v2 header from the start of `buf`, which holds whatever has arrived so far.
 *
 * Answers `incomplete` only while the bytes seen are a valid prefix of a header, so that a
 * peer sending a TLS ClientHello, an HTTP request or a v1 text line is refused on its first
 * bytes instead of after the timeout.
 */
export function parseProxyV2(buf: Uint8Array, maxHeaderBytes: number = PROXY_V2_MAX_HEADER_BYTES): ProxyV2Result {
  const seen = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < seen; i++) {
    if (buf[i] !== PROXY_V2_SIGNATURE[i]) {
      return { kind: 'invalid', reason: startsLikeV1(buf) ? 'PROXY protocol v1 (text) header; only v2 is accepted' : 'no PROXY protocol v2 signature' };
    }
  }
  if (buf.length < 13) return { kind: 'incomplete' };

  // §2.2 byte 13: the highest four bits are the version (must be 0x2), the lowest four the command.
  const versionCommand = buf[12]!;
  if (versionCommand >> 4 !== 0x2) return { kind: 'invalid', reason: `unsupported PROXY protocol version ${versionCommand >> 4}` };
  const commandBits = versionCommand & 0x0f;
  // "Other values are unassigned and must not be emitted by senders. Receivers must drop
  // connections presenting unexpected values here."
  if (commandBits !== 0x0 && commandBits !== 0x1) return { kind: 'invalid', reason: `unknown PROXY command 0x${commandBits.toString(16)}` };
  const command = commandBits === 0x0 ? 'LOCAL' : 'PROXY';
  if (buf.length < PROXY_V2_FIXED_BYTES) return { kind: 'incomplete' };

  // §2.2 bytes 15-16: length of the address block and TLVs, network byte order.
  const length = (buf[14]! << 8) | buf[15]!;
  const headerLength = PROXY_V2_FIXED_BYTES + length;
  if (headerLength > maxHeaderBytes) {
    return { kind: 'invalid', reason: `PROXY header of ${headerLength} bytes exceeds the ${maxHeaderBytes}-byte limit` };
  }

  // §2.2 byte 14: address family (high nibble) and transport protocol (low nibble).
  const familyTransport = buf[13]!;
  let family: 'inet' | 'inet6' | 'unspec';
  let addressBytes: number;
  if (command === 'LOCAL') {
    // "the receiver must accept this connection as valid and must use the real connection
    // endpoints and discard the protocol block including the family which is ignored."
    family = 'unspec';
    addressBytes = 0;
  } else {
    switch (familyTransport) {
      case 0x00: // UNSPEC: relayed for an unknown protocol; §2.2 lets the receiver use the real endpoints.
        family = 'unspec';
        addressBytes = 0;
        break;
      case 0x11: // TCP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes (§2.2, struct proxy_ipv4)
        family = 'inet';
        addressBytes = 12;
        break;
      case 0x21: // TCP over IPv6: 16 + 16 address bytes, 2 + 2 port bytes (struct proxy_ipv6)
        family = 'inet6';
        addressBytes = 36;
        break;
      default: {
        const fam = familyTransport >> 4;
        const proto = familyTransport & 0x0f;
        if (fam === 0x3) return { kind: 'invalid', reason: 'AF_UNIX addresses in a PROXY header are not accepted on a TCP listener' };
        if (fam > 0x3) return { kind: 'invalid', reason: `unknown address family 0x${fam.toString(16)} in PROXY header` };
        return { kind: 'invalid', reason: `transport protocol 0x${proto.toString(16)} in PROXY header; only STREAM (TCP) is accepted` };
      }
    }
    if (length < addressBytes) {
      return { kind: 'invalid', reason: `PROXY header length ${length} is shorter than the ${addressBytes}-byte ${family} address block` };
    }
  }
  if (buf.length < headerLength) return { kind: 'incomplete' };

  // A copy, so that TLV values handed out do not pin the socket's larger read buffers.
  const header = Buffer.from(buf.subarray(0, headerLength));
  if (command === 'LOCAL') {
    return { kind: 'ok', command, family, tlvs: [], headerLength };
  }

  let source: ProxyAddress | undefined;
  let destination: ProxyAddress | undefined;
  const a = PROXY_V2_FIXED_BYTES;
  if (family === 'inet') {
    source = { address: formatIpv4Bytes(header.subarray(a, a + 4)), port: header.readUInt16BE(a + 8) };
    destination = { address: formatIpv4Bytes(header.subarray(a + 4, a + 8)), port: header.readUInt16BE(a + 10) };
  } else if (family === 'inet6') {
    source = { address: formatIpv6Bytes(header.subarray(a, a + 16)), port: header.readUInt16BE(a + 32) };
    destination = { address: formatIpv6Bytes(header.subarray(a + 16, a + 32)), port: header.readUInt16BE(a + 34) };
  }

  const tlvs = parseTlvs(header, a + addressBytes);
  if (typeof tlvs === 'string') return { kind: 'invalid', reason: tlvs };

  return {
    kind: 'ok',
    command,
    family,
    ...(source ? { source } : {}),
    ...(destination ? { destination } : {}),
    tlvs,
    headerLength,
  };
}

/**
 * §2.2.7: each TLV is a type byte, a 16-bit big-endian length and the value; they fill the rest
 * of the header exactly. A TLV running past the announced length means the sender and we
 * disagree about where the application data starts, so the header is refused.
 */
function parseTlvs(header: Buffer, start: number): ProxyTlv[] | string {
  const tlvs: ProxyTlv[] = [];
  let crcAt = -1;
  let i = start;
  while (i < header.length) {
    if (header.length - i < 3) return 'truncated TLV in PROXY header';
    const type = header[i]!;
    const len = header.readUInt16BE(i + 1);
    const valueStart = i + 3;
    if (valueStart + len > header.length) return `TLV 0x${type.toString(16)} runs past the end of the PROXY header`;
    if (type === PP2_TYPE.CRC32C) {
      if (len !== 4) return `PP2_TYPE_CRC32C must hold 4 bytes, got ${len}`;
      if (crcAt >= 0) return 'more than one PP2_TYPE_CRC32C in PROXY header';
      crcAt = valueStart;
    }
    tlvs.push({ type, value: header.subarray(valueStart, valueStart + len) });
    i = valueStart + len;
  }
  // §2.2.5: "If the checksum is provided as part of the PROXY header and the checksum
  // functionality is supported by the receiver, the receiver MUST also calculate the checksum
  // ... and reject the connection if the two values don't match."
  if (crcAt >= 0) {
    const expected = header.readUInt32BE(crcAt);
    const copy = Buffer.from(header);
    copy.fill(0, crcAt, crcAt + 4);
    if (crc32c(copy) !== expected) return 'PP2_TYPE_CRC32C checksum mismatch';
  }
  return tlvs;
}

function startsLikeV1(buf: Uint8Array): boolean {
  const v1 = 'PROXY ';
  const n = Math.min(buf.length, v1.length);
  if (n === 0) return false;
  for (let i = 0; i < n; i++) if (buf[i] !== v1.charCodeAt(i)) return false;
  return true;
}

let crcTable: Uint32Array | undefined;

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as §2.2.5 prescribes for PP2_TYPE_CRC32C. */
export function crc32c(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export interface ProxyV2HeaderInput {
  readonly command?: 'LOCAL' | 'PROXY';
  readonly source?: ProxyAddress;
  readonly destination?: ProxyAddress;
  readonly tlvs?: readonly ProxyTlv[];
  /** Append a PP2_TYPE_CRC32C TLV computed over the header (§2.2.5). */
  readonly crc32c?: boolean;
}

/**
 * Builds a v2 header, the sender's side of §2.2. Kanmon never sends one in production; tests
 * and tools use it to speak as a load balancer would.
 */
export function buildProxyV2Header(input: ProxyV2HeaderInput): Buffer {
  const command = input.command ?? 'PROXY';
  let familyTransport = 0x00;
  let addresses = Buffer.alloc(0);
  if (command === 'PROXY' && input.source && input.destination) {
    const v6 = input.source.address.includes(':');
    if (v6 !== input.destination.address.includes(':')) throw new TypeError('source and destination must be of one address family');
    familyTransport = v6 ? 0x21 : 0x11;
    const bytes = (address: string) => (v6 ? ipv6Bytes(address) : ipv4Bytes(address));
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(input.source.port, 0);
    ports.writeUInt16BE(input.destination.port, 2);
    addresses = Buffer.concat([bytes(input.source.address), bytes(input.destination.address), ports]);
  }
  const tlvParts: Buffer[] = [];
  for (const tlv of input.tlvs ?? []) {
    const head = Buffer.alloc(3);
    head[0] = tlv.type;
    head.writeUInt16BE(tlv.value.length, 1);
    tlvParts.push(head, tlv.value);
  }
  if (input.crc32c) tlvParts.push(Buffer.from([PP2_TYPE.CRC32C, 0, 4, 0, 0, 0, 0]));
  const body = Buffer.concat([addresses, ...tlvParts]);
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | (command === 'PROXY' ? 0x1 : 0x0);
  fixed[1] = familyTransport;
  fixed.writeUInt16BE(body.length, 2);
  const header = Buffer.concat([PROXY_V2_SIGNATURE, fixed, body]);
  if (input.crc32c) header.writeUInt32BE(crc32c(header), header.length - 4);
  return header;
}

function ipv4Bytes(address: string): Buffer {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new TypeError(`not an IPv4 address: ${address}`);
  return Buffer.from(parts);
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const groups = (s: string): number[] => {
    if (s === '') return [];
    return s.split(':').flatMap((g) => {
      if (g.includes('.')) {
        const b = ipv4Bytes(g);
        return [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
      }
      return [parseInt(g, 16)];
    });
  };
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  if (all.length !== 8 || all.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) throw new TypeError(`not an IPv6 address: ${address}`);
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}
