import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../runtime/config/schema.js';
import { RouteTable, prefixMatches } from '../../../runtime/routing/route-table.js';

const config = parseConfig({
  routes: [
    { id: 'root', upstream: 'http://a:1' },
    { id: 'app', match: { pathPrefix: '/app' }, upstream: 'http://a:1' },
    { id: 'app-admin', match: { pathPrefix: '/app/admin/' }, upstream: 'http://a:1' },
    { id: 'mail-root', match: { host: 'mail.example.com' }, upstream: 'http://a:1' },
    { id: 'mail-api', match: { host: 'MAIL.example.com', pathPrefix: '/api' }, upstream: 'http://a:1' },
  ],
});
const table = new RouteTable(config.routes.map((route) => ({ route })));
const id = (host: string | undefined, path: string) => table.match(host, path)?.route.id;

describe('RouteTable', () => {
  it.each([
    ['gate.example.com', '/', 'root'],
    ['gate.example.com', '/app', 'app'],
    ['gate.example.com', '/app/', 'app'],
    ['gate.example.com', '/app?x=/app/admin/', 'app'],
    ['gate.example.com', '/apple', 'root'],
    ['gate.example.com', '/app/admin/users', 'app-admin'],
    ['gate.example.com', '/app/admin', 'app'],
    ['mail.example.com', '/', 'mail-root'],
    ['mail.example.com:8443', '/api/v1', 'mail-api'],
    ['MAIL.EXAMPLE.COM', '/apix', 'mail-root'],
    [undefined, '/app/x', 'app'],
  ])('%s %s → %s', (host, path, expected) => {
    expect(id(host, path)).toBe(expected);
  });

  it('matches nothing when no route covers the path', () => {
    const only = new RouteTable(parseConfig({ routes: [{ id: 'x', match: { pathPrefix: '/x' }, upstream: 'http://a:1' }] }).routes.map((route) => ({ route })));
    expect(only.match('h', '/')).toBeUndefined();
    expect(only.match('h', '/xy')).toBeUndefined();
  });

  it('matches prefixes only at segment boundaries', () => {
    expect(prefixMatches('/a', '/a/b')).toBe(true);
    expect(prefixMatches('/a', '/ab')).toBe(false);
    expect(prefixMatches('/a/', '/a/b')).toBe(true);
  });
});
