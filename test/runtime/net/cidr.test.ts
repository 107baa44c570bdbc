import { describe, expect, it } from 'vitest';
import { cidrContains, createAddressMatcher, isIpAddress, parseCidr, unmapIpv4 } from '../../../runtime/net/index.js';

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8', 'ipv4', 8],
    ['10.1.2.3/8', '10.0.0.0/8', 'ipv4', 8],
    ['0.0.0.0/0', '0.0.0.0/0', 'ipv4', 0],
    ['192.0.2.1/32', '192.0.2.1/32', 'ipv4', 32],
    ['2001:db8::/32', '2001:db8::/32', 'ipv6', 32],
    ['2001:DB8:0:0:1::1/128', '2001:db8::1:0:0:1/128', 'ipv6', 128],
    ['::/0', '::/0', 'ipv6', 0],
    ['fd00::1/8', 'fd00::/8', 'ipv6', 8],
    ['::ffff:10.0.0.0/104', '::ffff:10.0.0.0/104', 'ipv6', 104],
    ['1:0:0:1:0:0:0:1/128', '1:0:0:1::1/128', 'ipv6', 128],
  ])('parses %s as %s', (text, canonical, family, prefix) => {
    const c = parseCidr(text);
    expect(c.text).toBe(canonical);
    expect(c.family).toBe(family);
    expect(c.prefix).toBe(prefix);
  });

  it.each([
    '',
    '10.0.0.0',
    '10.0.0.0/',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/+8',
    '10.0.0.0/08',
    '10.0.0.0/8/8',
    '10.0.0/8',
    '10.0.0.256/8',
    '010.0.0.0/8',
    '10.0.0.0.0/8',
    ' 10.0.0.0/8',
    '2001:db8::/129',
    '2001:db8:::/32',
    '2001::db8::1/64',
    '1:2:3:4:5:6:7:8:9/64',
    '1:2:3:4:5:6:7::8/64',
    'fe80::1%eth0/64',
    '12345::/16',
    '1.2.3.4::/16',
    'example.com/8',
  ])('refuses %j', (text) => {
    expect(() => parseCidr(text)).toThrow(TypeError);
  });

  it('says what it expected and what it got', () => {
    expect(() => parseCidr('10.0.0.0/40')).toThrow('the prefix length of an IPv4 CIDR must be 0-32, got "10.0.0.0/40"');
  });
});

describe('cidrContains', () => {
  it('matches the edges of an IPv4 block and nothing beside it', () => {
    expect(cidrContains('10.0.0.0/16', '10.0.0.0')).toBe(true);
    expect(cidrContains('10.0.0.0/16', '10.0.255.255')).toBe(true);
    expect(cidrContains('10.0.0.0/16', '10.1.0.0')).toBe(false);
    expect(cidrContains('10.0.0.0/16', '9.255.255.255')).toBe(false);
  });

  it('matches exactly one address with /32 and /128', () => {
    expect(cidrContains('192.0.2.1/32', '192.0.2.1')).toBe(true);
    expect(cidrContains('192.0.2.1/32', '192.0.2.2')).toBe(false);
    expect(cidrContains('2001:db8::1/128', '2001:db8:0::1')).toBe(true);
    expect(cidrContains('2001:db8::1/128', '2001:db8::2')).toBe(false);
  });

  it('matches everything with /0', () => {
    expect(cidrContains('0.0.0.0/0', '255.255.255.255')).toBe(true);
    expect(cidrContains('0.0.0.0/0', '0.0.0.0')).toBe(true);
    expect(cidrContains('0.0.0.0/0', '::ffff:1.2.3.4')).toBe(true);
    expect(cidrContains('0.0.0.0/0', '2001:db8::1')).toBe(false);
    expect(cidrContains('::/0', '2001:db8::1')).toBe(true);
    expect(cidrContains('::/0', '1.2.3.4')).toBe(true);
  });

  it('treats an IPv4-mapped IPv6 peer as its IPv4 address', () => {
    expect(cidrContains('10.0.0.0/8', '::ffff:10.9.8.7')).toBe(true);
    expect(cidrContains('10.0.0.0/8', '::FFFF:a09:807')).toBe(true);
    expect(cidrContains('10.0.0.0/8', '::ffff:11.0.0.1')).toBe(false);
    expect(cidrContains('127.0.0.1/32', '::ffff:127.0.0.1')).toBe(true);
    expect(cidrContains('::ffff:10.0.0.0/104', '10.2.3.4')).toBe(true);
    // ::a.b.c.d (the deprecated IPv4-compatible form) is a different address.
    expect(cidrContains('10.0.0.0/8', '::10.9.8.7')).toBe(false);
  });

  it('matches IPv6 blocks on non-octet boundaries', () => {
    expect(cidrContains('2001:db8:8000::/33', '2001:db8:8000::1')).toBe(true);
    expect(cidrContains('2001:db8:8000::/33', '2001:db8:7fff:ffff::1')).toBe(false);
    expect(cidrContains('172.16.0.0/12', '172.31.255.255')).toBe(true);
    expect(cidrContains('172.16.0.0/12', '172.32.0.0')).toBe(false);
  });

  it('finds no invalid address in any block', () => {
    expect(cidrContains('0.0.0.0/0', 'not an address')).toBe(false);
    expect(cidrContains('::/0', '')).toBe(false);
    expect(cidrContains('::/0', undefined)).toBe(false);
    expect(cidrContains('::/0', 'fe80::1%lo')).toBe(false);
  });

  it('accepts a parsed block', () => {
    const block = parseCidr('198.51.100.0/24');
    expect(cidrContains(block, '198.51.100.200')).toBe(true);
  });
});

describe('createAddressMatcher', () => {
  it('matches any of several blocks of both families', () => {
    const matches = createAddressMatcher(['10.0.0.0/16', '2001:db8::/48', '192.0.2.7/32']);
    expect(matches('10.0.3.4')).toBe(true);
    expect(matches('::ffff:10.0.3.4')).toBe(true);
    expect(matches('2001:db8:0:ffff::9')).toBe(true);
    expect(matches('192.0.2.7')).toBe(true);
    expect(matches('192.0.2.8')).toBe(false);
    expect(matches('2001:db9::1')).toBe(false);
    expect(matches(undefined)).toBe(false);
  });

  it('matches nothing when empty', () => {
    expect(createAddressMatcher([])('10.0.0.1')).toBe(false);
  });

  it('reports every invalid entry at once', () => {
    expect(() => createAddressMatcher(['10.0.0.0/8', 'bad', '::/200'])).toThrow(/\[1\].*"bad".*\[2\].*"::\/200"/);
  });
});

describe('address helpers', () => {
  it('recognises addresses', () => {
    expect(isIpAddress('127.0.0.1')).toBe(true);
    expect(isIpAddress('::1')).toBe(true);
    expect(isIpAddress('::')).toBe(true);
    expect(isIpAddress('1:2:3:4:5:6:1.2.3.4')).toBe(true);
    expect(isIpAddress('127.1')).toBe(false);
    expect(isIpAddress('localhost')).toBe(false);
  });

  it('unmaps IPv4-mapped IPv6 and leaves the rest alone', () => {
    expect(unmapIpv4('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(unmapIpv4('::FFFF:10.0.0.1')).toBe('10.0.0.1');
    expect(unmapIpv4('2001:db8::1')).toBe('2001:db8::1');
    expect(unmapIpv4('10.0.0.1')).toBe('10.0.0.1');
  });
});
