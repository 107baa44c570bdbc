/**
 * Which jar changes reach the store (runtime/upstream-auth/jar-store.ts mustStore): everything
 * but an expiry pushed forward, which waits until the stored one has less than three quarters
 * of the new lifetime left. A table over pure inputs.
 */
import { describe, expect, it } from 'vitest';
import type { JarCookie } from '../../../runtime/upstream-auth/cookie-jar.js';
import { mustStore, type JarState } from '../../../runtime/upstream-auth/jar-store.js';

const NOW = 1_000_000_000;
const MIN = 60_000;
const sid = (over: Partial<JarCookie> = {}): JarCookie => ({ name: 'SID', value: 'a', path: '/app', expiresAt: NOW + 30 * MIN, ...over });
const jar = (cookies: JarCookie[], extra: Partial<JarState> = {}): JarState => ({ cookies, signedInAt: 1, confirmed: true, ...extra });

describe('mustStore', () => {
  const cases: Array<[string, JarState, JarState, boolean]> = [
    ['the same jar', jar([sid()]), jar([sid()]), false],
    ['the same cookies in another order', jar([sid(), sid({ name: 'LANG', expiresAt: undefined })]), jar([sid({ name: 'LANG', expiresAt: undefined }), sid()]), false],
    ['a cookie added', jar([sid()]), jar([sid(), sid({ name: 'X' })]), true],
    ['a cookie removed', jar([sid(), sid({ name: 'X' })]), jar([sid()]), true],
    ['one cookie swapped for another', jar([sid()]), jar([sid({ name: 'X' })]), true],
    ['the same name on another path', jar([sid()]), jar([sid({ path: '/' })]), true],
    ['a new value', jar([sid()]), jar([sid({ value: 'b' })]), true],
    ['a session cookie becoming persistent', jar([sid({ expiresAt: undefined })]), jar([sid()]), true],
    ['a persistent cookie becoming a session cookie', jar([sid()]), jar([sid({ expiresAt: undefined })]), true],
    ['an expiry brought forward', jar([sid()]), jar([sid({ expiresAt: NOW + 29 * MIN })]), true],
    ['an expiry pushed forward, more than three quarters of the new lifetime still stored', jar([sid({ expiresAt: NOW + 25 * MIN })]), jar([sid({ expiresAt: NOW + 32 * MIN })]), false],
    ['an expiry pushed forward, exactly three quarters stored', jar([sid({ expiresAt: NOW + 24 * MIN })]), jar([sid({ expiresAt: NOW + 32 * MIN })]), false],
    ['an expiry pushed forward, less than three quarters stored', jar([sid({ expiresAt: NOW + 22 * MIN })]), jar([sid({ expiresAt: NOW + 30 * MIN })]), true],
    ['an expiry pushed forward past a stored one that has lapsed', jar([sid({ expiresAt: NOW - 1 })]), jar([sid()]), true],
    ['signed in afresh', jar([sid()]), jar([sid()], { signedInAt: 2 }), true],
    ['confirmed', jar([sid()], { confirmed: undefined }), jar([sid()]), true],
    ['confirmed false and absent are the same', jar([sid()], { confirmed: false }), jar([sid()], { confirmed: undefined }), false],
    ['signed out (the app logout)', jar([sid()]), { cookies: [sid()] }, true],
    ['stored duplicates (a jar from elsewhere)', jar([sid(), sid()]), jar([sid(), sid({ name: 'X' })]), true],
  ];
  it.each(cases)('%s', (_name, stored, next, expected) => {
    expect(mustStore(stored, next, NOW)).toBe(expected);
  });
});
