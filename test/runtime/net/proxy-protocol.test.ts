import { describe, expect, it } from 'vitest';
import { buildProxyV2Header, crc32c, parseProxyV2, PROXY_V2_SIGNATURE } from '../../../runtime/net/index.js';

/** A header written out byte by byte from §2.2, independent of buildProxyV2Header. */
const HAND_MADE_TCP4 = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
  0x21, // version 2, PROXY
  0x11, // AF_INET, STREAM
  0x00, 0x0c, // 12 bytes follow
  203, 0, 113, 7, // source address
  198, 51, 100, 10, // destination address
  0xc8, 0x22, // source port 51234
  0x01, 0xbb, // destination port 443
]);

describe('parseProxyV2', () => {
  it('reads a TCP over IPv4 header written from the spec', () => {
    const appData = Buffer.from('\x16\x03\x01');
    expect(parseProxyV2(Buffer.concat([HAND_MADE_TCP4, appData]))).toEqual({
      kind: 'ok',
      command: 'PROXY',
      family: 'inet',
      source: { address: '203.0.113.7', port: 51234 },
      destination: { address: '198.51.100.10', port: 443 },
      tlvs: [],
      headerLength: 28,
    });
    expect(buildProxyV2Header({ source: { address: '203.0.113.7', port: 51234 }, destination: { address: '198.51.100.10', port: 443 } })).toEqual(
      HAND_MADE_TCP4,
    );
  });

  it('reads a TCP over IPv6 header', () => {
    const header = buildProxyV2Header({ source: { address: '2001:db8::a:1', port: 1 }, destination: { address: 'fd00::1', port: 65535 } });
    expect(header.length).toBe(16 + 36);
    expect(header[13]).toBe(0x21);
    expect(parseProxyV2(header)).toMatchObject({
      kind: 'ok',
      family: 'inet6',
      source: { address: '2001:db8::a:1', port: 1 },
      destination: { address: 'fd00::1', port: 65535 },
      headerLength: 52,
    });
  });

  it('reads LOCAL and ignores its address block, as §2.2 requires', () => {
    const local = Buffer.from(HAND_MADE_TCP4);
    local[12] = 0x20;
    expect(parseProxyV2(local)).toEqual({ kind: 'ok', command: 'LOCAL', family: 'unspec', tlvs: [], headerLength: 28 });
    // The family byte is ignored for LOCAL, even a value that PROXY would refuse.
    local[13] = 0x32;
    expect(parseProxyV2(local)).toMatchObject({ kind: 'ok', command: 'LOCAL' });
    expect(parseProxyV2(buildProxyV2Header({ command: 'LOCAL' }))).toEqual({ kind: 'ok', command: 'LOCAL', family: 'unspec', tlvs: [], headerLength: 16 });
  });

  it('reads PROXY over AF_UNSPEC without addresses', () => {
    const header = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x00, 0x00, 0x00])]);
    expect(parseProxyV2(header)).toEqual({ kind: 'ok', command: 'PROXY', family: 'unspec', tlvs: [], headerLength: 16 });
  });

  it('says incomplete for every proper prefix of a valid header', () => {
    const header = buildProxyV2Header({
      source: { address: '203.0.113.7', port: 1 },
      destination: { address: '203.0.113.8', port: 2 },
      tlvs: [{ type: 0x02, value: Buffer.from('gate.example.com') }],
    });
    for (let n = 0; n < header.length; n++) {
      expect(parseProxyV2(header.subarray(0, n))).toEqual({ kind: 'incomplete' });
    }
    expect(parseProxyV2(header)).toMatchObject({ kind: 'ok' });
  });

  it('returns TLVs in order, skipping nothing and honouring their lengths', () => {
    const header = buildProxyV2Header({
      source: { address: '203.0.113.7', port: 1 },
      destination: { address: '203.0.113.8', port: 2 },
      tlvs: [
        { type: 0xea, value: Buffer.from([0x01, ...Buffer.from('vpce-0abc')]) },
        { type: 0x04, value: Buffer.alloc(0) },
        { type: 0x05, value: Buffer.from('id-1') },
      ],
    });
    const result = parseProxyV2(Buffer.concat([header, Buffer.from('rest')]));
    expect(result.kind).toBe('ok');
    if (result.kind !== 'ok') return;
    expect(result.headerLength).toBe(header.length);
    expect(result.tlvs.map((t) => [t.type, t.value.toString('latin1')])).toEqual([
      [0xea, '\x01vpce-0abc'],
      [0x04, ''],
      [0x05, 'id-1'],
    ]);
  });

  it('verifies a CRC32C TLV (§2.2.5)', () => {
    const header = buildProxyV2Header({ source: { address: '203.0.113.7', port: 1 }, destination: { address: '203.0.113.8', port: 2 }, crc32c: true });
    expect(parseProxyV2(header)).toMatchObject({ kind: 'ok' });
    const altered = Buffer.from(header);
    altered[17] ^= 1;
    expect(parseProxyV2(altered)).toEqual({ kind: 'invalid', reason: 'PP2_TYPE_CRC32C checksum mismatch' });
  });

  it('computes CRC-32C with the published check value', () => {
    // RFC 3720 appendix B.4 and every CRC catalogue: CRC-32C("123456789") = 0xE3069283.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  });

  const invalid: Array<[string, Buffer, RegExp]> = [
    ['a v1 text header', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /v1 \(text\)/],
    ['the start of a v1 header', Buffer.from('PRO'), /v1 \(text\)/],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), /no PROXY protocol v2 signature/],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n'), /no PROXY protocol v2 signature/],
    ['a signature that breaks at its last byte', Buffer.concat([PROXY_V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0b])]), /signature/],
    ['version 1 in the binary form', withByte(12, 0x11), /unsupported PROXY protocol version 1/],
    ['version 3', withByte(12, 0x31), /version 3/],
    ['an unknown command', withByte(12, 0x22), /unknown PROXY command 0x2/],
    ['AF_UNIX', withByte(13, 0x31), /AF_UNIX/],
    ['an unknown family', withByte(13, 0x41), /unknown address family 0x4/],
    ['DGRAM over IPv4', withByte(13, 0x12), /transport protocol 0x2/],
    ['UNSPEC transport over IPv4', withByte(13, 0x10), /transport protocol 0x0/],
    ['a length too short for IPv4 addresses', withLength(HAND_MADE_TCP4, 11), /shorter than the 12-byte inet address block/],
    ['a length too short for IPv6 addresses', withLength(withByte(13, 0x21), 12), /shorter than the 36-byte inet6/],
    ['a header over the size limit', withLength(HAND_MADE_TCP4, 1024 - 16 + 1), /1025 bytes exceeds the 1024-byte limit/],
    ['the largest length the field allows', withLength(HAND_MADE_TCP4, 0xffff), /exceeds/],
    ['a TLV cut after its type', tcp4WithTail(Buffer.from([0x04])), /truncated TLV/],
    ['a TLV longer than what is left', tcp4WithTail(Buffer.from([0x04, 0x00, 0x05, 1, 2])), /runs past the end/],
    ['a CRC32C TLV of the wrong size', tcp4WithTail(Buffer.from([0x03, 0x00, 0x02, 0, 0])), /must hold 4 bytes/],
  ];
  it.each(invalid)('refuses %s', (_name, bytes, reason) => {
    const result = parseProxyV2(bytes);
    expect(result.kind).toBe('invalid');
    if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
  });

  it('refuses an oversized header as soon as its length field has arrived', () => {
    expect(parseProxyV2(withLength(HAND_MADE_TCP4, 2000).subarray(0, 16))).toMatchObject({ kind: 'invalid' });
  });

  it('takes a smaller size limit', () => {
    expect(parseProxyV2(HAND_MADE_TCP4, 27)).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('27-byte limit') });
    expect(parseProxyV2(HAND_MADE_TCP4, 28)).toMatchObject({ kind: 'ok' });
  });
});

function withByte(index: number, value: number): Buffer {
  const b = Buffer.from(HAND_MADE_TCP4);
  b[index] = value;
  return b;
}

function withLength(header: Buffer, length: number): Buffer {
  const b = Buffer.from(header);
  b.writeUInt16BE(length, 14);
  return b;
}

function tcp4WithTail(tail: Buffer): Buffer {
  return withLength(Buffer.concat([HAND_MADE_TCP4, tail]), 12 + tail.length);
}
