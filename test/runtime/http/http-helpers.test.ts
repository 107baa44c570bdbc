import { describe, expect, it } from 'vitest';
import { readCookie } from '../../../runtime/http/cookies.js';
import { safeReturnPath } from '../../../runtime/http/return-path.js';

describe('readCookie', () => {
  it('finds a cookie among others, trimming spaces', () => {
    expect(readCookie('a=1; __Host-kanmon-session=abc ; b=2', '__Host-kanmon-session')).toBe('abc');
    expect(readCookie(['a=1', 'x=2'], 'x')).toBe('2');
  });
  it('never throws on malformed headers', () => {
    for (const h of ['', ';;;', '=', 'noequals', '==;=', 'a=b=c']) expect(() => readCookie(h, 'a')).not.toThrow();
    expect(readCookie('a=b=c', 'a')).toBe('b=c');
    expect(readCookie(undefined, 'a')).toBeUndefined();
    expect(readCookie('xa=1', 'a')).toBeUndefined();
  });
});

describe('safeReturnPath (no open redirect)', () => {
  it.each([
    ['/mail/inbox?id=1#top', '/mail/inbox?id=1#top'],
    ['/', '/'],
    ['/a/../b', '/b'],
    ['https://evil.example/', '/'],
    ['//evil.example', '/'],
    ['/\\evil.example', '/'],
    ['/\t/evil.example', '/'],
    ['/%0a/evil', '/%0a/evil'],
    ['\\\\evil', '/'],
    ['javascript:alert(1)', '/'],
    ['', '/'],
    ['x', '/'],
    [`/${'a'.repeat(3000)}`, '/'],
    [42, '/'],
    [undefined, '/'],
  ])('%j → %j', (input, expected) => {
    expect(safeReturnPath(input)).toBe(expected);
  });
});
