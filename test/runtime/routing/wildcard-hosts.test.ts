import { describe, expect, it } from 'vitest';
import { parseConfig, validateConfig } from '../../../runtime/config/schema.js';
import { RouteTable } from '../../../runtime/routing/route-table.js';

const config = parseConfig({
  routes: [
    { id: 'fallback', upstream: 'http://a:1' },
    { id: 'any-corp', match: { host: '*.corp.example.com' }, upstream: 'http://a:1' },
    { id: 'any-corp-api', match: { host: '*.corp.example.com', pathPrefix: '/api' }, upstream: 'http://a:1' },
    { id: 'any-example', match: { host: '*.example.com', pathPrefix: '/' }, upstream: 'http://a:1' },
    { id: 'mail', match: { host: 'mail.corp.example.com', pathPrefix: '/owa' }, upstream: 'http://a:1' },
    { id: 'wiki', match: { host: 'wiki.example.com' }, upstream: 'http://a:1' },
  ],
});
const table = new RouteTable(config.routes.map((route) => ({ route })));
const id = (host: string | undefined, path: string) => table.match(host, path)?.route.id;

describe('RouteTable: several public hostnames and wildcards', () => {
  it.each([
    // exact host beats any wildcard
    ['wiki.example.com', '/', 'wiki'],
    ['WIKI.Example.COM:8443', '/page', 'wiki'],
    ['wiki.example.com.', '/page', 'wiki'],
    // the exact host's routes cover /owa only; other paths fall through to the wildcards
    ['mail.corp.example.com', '/owa/inbox', 'mail'],
    ['mail.corp.example.com', '/calendar', 'any-corp'],
    ['mail.corp.example.com', '/api/v1', 'any-corp-api'],
    // the longest wildcard suffix wins, and a wildcard covers names several labels deep
    ['files.corp.example.com', '/', 'any-corp'],
    ['a.b.corp.example.com', '/x', 'any-corp'],
    ['files.example.com', '/', 'any-example'],
    // a wildcard does not match its own base name
    ['example.com', '/', 'fallback'],
    ['corp.example.com', '/', 'any-example'],
    ['other.test', '/', 'fallback'],
    [undefined, '/', 'fallback'],
  ])('%s %s → %s', (host, path, expected) => {
    expect(id(host, path)).toBe(expected);
  });

  it('does not treat a look-alike name as below the wildcard', () => {
    expect(id('evilexample.com', '/')).toBe('fallback');
    expect(id('example.com.evil.test', '/')).toBe('fallback');
  });

  it('accepts wildcard hosts in config and refuses malformed ones', () => {
    const r = validateConfig({
      routes: [
        { id: 'a', match: { host: '*.com' }, upstream: 'http://x:1' },
        { id: 'b', match: { host: 'a.*.example.com' }, upstream: 'http://x:1' },
        { id: 'c', match: { host: '*example.com' }, upstream: 'http://x:1' },
        { id: 'd', match: { host: '*.Example.com' }, upstream: 'http://x:1' },
      ],
    });
    const errors = r.ok ? [] : r.errors;
    expect(errors).toEqual([
      `routes[0].match: option 'host' must be a host name or a wildcard like *.example.com, got "*.com"`,
      `routes[1].match: option 'host' must be a host name or a wildcard like *.example.com, got "a.*.example.com"`,
      `routes[2].match: option 'host' must be a host name or a wildcard like *.example.com, got "*example.com"`,
    ]);
  });
});
