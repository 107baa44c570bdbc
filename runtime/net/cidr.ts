/**
 * CIDR blocks for IPv4 and IPv6, used to decide which peers may send a PROXY protocol header.
 *
 * Every address is handled as a 128-bit number. An IPv4 address a.b.c.d is placed at its
 * IPv4-mapped position ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), and an IPv4 block a.b.c.d/p at
 * ::ffff:a.b.c.d/(96+p). So an IPv4 block matches a peer that a dual-stack socket reports
 * as ::ffff:10.0.1.7, and ::/0 means "every address", IPv4 included.
 */

export interface Cidr {
  /** The block as written back in canonical form, host bits cleared: "10.0.0.0/8", "2001:db8::/32". */
  readonly text: string;
  readonly family: 'ipv4' | 'ipv6';
  /** Prefix length as written (0-32 for IPv4, 0-128 for IPv6). */
  readonly prefix: number;
  /** First address of the block in the 128-bit space. */
  readonly network: bigint;
  /** Mask over the 128-bit space. */
  readonly mask: bigint;
}

/** Tests an address (IPv4, IPv6, or IPv4-mapped IPv6) against a list of blocks. */
export type AddressMatcher = (address: string | undefined) => boolean;

const ALL_ONES = (1n << 128n) - 1n;
const MAPPED_PREFIX = 0xffffn << 32n; // ::ffff:0:0/96

/**
 * Parses "a.b.c.d/p" or "ipv6/p". Host bits below the prefix are cleared rather than refused
 * ("10.0.0.1/8" is 10.0.0.0/8), the way route tables and the AWS console read them.
 * @throws TypeError with what was expected and what arrived.
 */
export function parseCidr(text: string): Cidr {
  if (typeof text !== 'string') throw new TypeError(`a CIDR must be a string like 10.0.0.0/16, got ${typeof text}`);
  const slash = text.indexOf('/');
  if (slash < 0 || slash !== text.lastIndexOf('/')) {
    throw new TypeError(`a CIDR must look like 10.0.0.0/16 or fd00::/8, got ${JSON.stringify(text)}`);
  }
  const addressText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const parsed = parseAddress(addressText);
  if (!parsed) throw new TypeError(`a CIDR must start with an IPv4 or IPv6 address, got ${JSON.stringify(text)}`);
  const maxPrefix = parsed.family === 'ipv4' ? 32 : 128;
  // Plain decimal without sign or leading zeros: "/08" or "/+8" are typos, not prefixes.
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > maxPrefix) {
    throw new TypeError(`the prefix length of a${parsed.family === 'ipv4' ? 'n IPv4' : 'n IPv6'} CIDR must be 0-${maxPrefix}, got ${JSON.stringify(text)}`);
  }
  const prefix = Number(prefixText);
  const bits = parsed.family === 'ipv4' ? 96 + prefix : prefix;
  const mask = bits === 0 ? 0n : (ALL_ONES << BigInt(128 - bits)) & ALL_ONES;
  const network = parsed.value & mask;
  return {
    text: `${formatAddress(network, parsed.family)}/${prefix}`,
    family: parsed.family,
    prefix,
    network,
    mask,
  };
}

/** Whether `address` lies in `cidr`. An address that does not parse is in no block. */
export function cidrContains(cidr: Cidr | string, address: string | undefined): boolean {
  const block = typeof cidr === 'string' ? parseCidr(cidr) : cidr;
  const parsed = address === undefined ? undefined : parseAddress(address);
  return parsed !== undefined && (parsed.value & block.mask) === block.network;
}

/**
 * Builds a matcher over a fixed list of blocks, parsed once. Every invalid entry is reported
 * in one error so that a configuration with several typos is fixed in one go.
 * @throws TypeError listing each invalid entry.
 */
export function createAddressMatcher(cidrs: readonly string[]): AddressMatcher {
  const blocks: Cidr[] = [];
  const problems: string[] = [];
  cidrs.forEach((text, i) => {
    try {
      blocks.push(parseCidr(text));
    } catch (err) {
      problems.push(`[${i}] ${(err as Error).message}`);
    }
  });
  if (problems.length > 0) throw new TypeError(`invalid network list: ${problems.join('; ')}`);
  return (address) => {
    if (address === undefined) return false;
    const parsed = parseAddress(address);
    if (!parsed) return false;
    return blocks.some((b) => (parsed.value & b.mask) === b.network);
  };
}

/** Whether a text is an IPv4 or IPv6 address this module understands. */
export function isIpAddress(text: string): boolean {
  return parseAddress(text) !== undefined;
}

/**
 * An address as it is best shown in logs: IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes the plain
 * IPv4 address, anything else is returned unchanged.
 */
export function unmapIpv4(address: string): string {
  return /^::ffff:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(address) ? address.slice(7) : address;
}

/** Formats 16 network-order bytes as RFC 5952 text, with IPv4-mapped addresses as ::ffff:a.b.c.d (§5). */
export function formatIpv6Bytes(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new TypeError(`an IPv6 address has 16 bytes, got ${bytes.length}`);
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return formatAddress(value, 'ipv6');
}

/** Formats 4 network-order bytes as dotted decimal. */
export function formatIpv4Bytes(bytes: Uint8Array): string {
  if (bytes.length !== 4) throw new TypeError(`an IPv4 address has 4 bytes, got ${bytes.length}`);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

interface ParsedAddress {
  readonly family: 'ipv4' | 'ipv6';
  /** In the 128-bit space; IPv4 at its mapped position. */
  readonly value: bigint;
}

function parseAddress(text: string): ParsedAddress | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) return undefined;
  if (!text.includes(':')) {
    const v4 = parseIpv4(text);
    return v4 === undefined ? undefined : { family: 'ipv4', value: MAPPED_PREFIX | BigInt(v4) };
  }
  const v6 = parseIpv6(text);
  return v6 === undefined ? undefined : { family: 'ipv6', value: v6 };
}

/**
 * Strict dotted quad. Leading zeros are refused: some parsers read "010" as octal 8, so the
 * same text could mean two different networks.
 */
function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

/** RFC 4291 §2.2 text forms: full, "::"-compressed, and with a trailing dotted quad. No zone ids. */
function parseIpv6(text: string): bigint | undefined {
  if (text.includes('%')) return undefined; // zone ids (fe80::1%eth0) name an interface, not a network
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        groups.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
        groups.push(parseInt(piece, 16));
      }
    }
    return groups;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined; // "::" stands for at least one group of zeros (RFC 4291 §2.2 item 2)
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

function formatAddress(value: bigint, family: 'ipv4' | 'ipv6'): string {
  if (family === 'ipv4') {
    const v = Number(value & 0xffffffffn);
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  if (value >> 32n === 0xffffn) {
    return `::ffff:${formatAddress(value, 'ipv4')}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 §4.2: compress the longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
