/**
 * Enrollment links with a second-channel code, the authenticator choices the page offers, and
 * what policy does to registration: security keys for device-bound users, attestation for
 * AAGUID allowlists, refusal of a synced passkey where a group rule demands security keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollmentTokenId } from '../../../runtime/services/enrollment.js';
import { MAX_ENROLLMENT_CODE_ATTEMPTS, enrollmentCodeThrottleKey } from '../../../runtime/services/enrollment-codes.js';
import { sessionIdFromToken } from '../../../runtime/services/sessions.js';
import { KanmonHarness, sessionCookieFrom, softAuthenticatorFor } from '../../support/kanmon-harness.js';

const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
let h: KanmonHarness;
let n = 0;

beforeAll(async () => {
  h = await KanmonHarness.start({
    groups: { admins: { deviceBoundPasskeys: true } },
    routes: [
      { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } },
      { id: 'finance', match: { pathPrefix: '/finance' }, upstream: 'demo', policy: { allowGroups: ['finance'], deviceBound: true } },
      { id: 'vault', match: { pathPrefix: '/vault' }, upstream: 'demo', policy: { allowGroups: ['vault'], aaguidAllowlist: [YUBIKEY] } },
    ],
  });
});
afterAll(async () => h?.close());

/** A fresh user and a link for them; `code` asks for a second-channel code. */
async function linkFor(opts: { groups?: string[]; code?: boolean } = {}) {
  const username = `user${++n}`;
  await h.app.services.users.addUser({ username, groups: opts.groups ?? [] });
  const link = await h.app.services.enrollment.createLink(username, { ...(opts.code ? { requireCode: true } : {}) });
  return { username, link };
}

function options(token: string, extra: Record<string, unknown> = {}) {
  return h.post('/.kanmon/api/enroll/options', { token, ...extra });
}

describe('enrollment links with a one-time code', () => {
  it('issues an 8-digit code with the link, stores only a hash, and shows a code field', async () => {
    const { link } = await linkFor({ code: true });
    expect(link.code).toMatch(/^[0-9]{8}$/);
    const stored = await h.app.store.enrollmentTokens.get(enrollmentTokenId(link.token));
    expect(stored!.codeHash).toBeDefined();
    expect(JSON.stringify(stored)).not.toContain(link.code);
    const page = await h.get(`/.kanmon/enroll?token=${link.token}`);
    expect(page.text).toContain('id="enroll-code"');
    expect(page.text).toContain('autocomplete="one-time-code"');
    // Links without a code have no field.
    const plain = await linkFor();
    expect(plain.link.code).toBeUndefined();
    expect((await h.get(`/.kanmon/enroll?token=${plain.link.token}`)).text).not.toContain('id="enroll-code"');
  });

  it('issues no options without the code, or with a wrong one, and enrolls with the right one', async () => {
    const { link, username } = await linkFor({ code: true });
    const missing = await options(link.token);
    expect(missing.status).toBe(403);
    expect(missing.json().error).toBe('code-required');
    const wrong = await options(link.token, { code: link.code === '00000000' ? '11111111' : '00000000' });
    expect(wrong.status).toBe(403);
    expect(wrong.json().error).toBe('code-wrong');
    expect(wrong.text).not.toContain(link.code);

    const good = await options(link.token, { code: link.code });
    expect(good.status).toBe(200);
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: softAuthenticatorFor(h).register(good.json()), name: 'Key' });
    expect(res.status).toBe(200);
    expect((await h.get('/headers', { cookie: sessionCookieFrom(res)! })).json().headers['x-kanmon-user']).toBe(username);

    // Replay: the link and its code are used up.
    const replay = await options(link.token, { code: link.code });
    expect(replay.status).toBe(410);
    expect(replay.json().error).toBe('token-used');
    const audit = await h.app.services.audit.tail({ limit: 50 });
    expect(audit.some((e) => e.type === 'enroll.code' && e.reason === 'code-wrong' && e.username === username)).toBe(true);
  });

  it('accepts the code as people type it: spaces, a hyphen, full-width digits', async () => {
    for (const shape of [(c: string) => `${c.slice(0, 4)} ${c.slice(4)}`, (c: string) => `${c.slice(0, 4)}-${c.slice(4)}`, (c: string) => c.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d)))]) {
      const { link } = await linkFor({ code: true });
      expect((await options(link.token, { code: shape(link.code!) })).status).toBe(200);
    }
  });

  it(`locks the link after ${MAX_ENROLLMENT_CODE_ATTEMPTS} wrong codes; then even the right one is refused`, async () => {
    const { link } = await linkFor({ code: true });
    const wrongCode = link.code === '12345678' ? '87654321' : '12345678';
    const statuses: string[] = [];
    for (let i = 0; i < MAX_ENROLLMENT_CODE_ATTEMPTS; i++) statuses.push((await options(link.token, { code: wrongCode })).json().error);
    expect(statuses).toEqual(['code-wrong', 'code-wrong', 'code-wrong', 'code-wrong', 'code-locked']);
    const right = await options(link.token, { code: link.code });
    expect(right.status).toBe(410);
    expect(right.json().error).toBe('code-locked');
    const page = await h.get(`/.kanmon/enroll?token=${link.token}`);
    expect(page.status).toBe(410);
    expect(page.text).toContain('locked because a wrong code was entered too many times');
    const audit = await h.app.services.audit.tail({ limit: 5 });
    expect(audit.some((e) => e.type === 'enroll.code' && e.reason === 'code-locked')).toBe(true);
  });

  it('counts parallel guesses exactly: no more than the limit are ever compared', async () => {
    const { link } = await linkFor({ code: true });
    const wrongCode = link.code === '12345678' ? '87654321' : '12345678';
    const answers = await Promise.all(Array.from({ length: 12 }, () => options(link.token, { code: wrongCode })));
    const errors = answers.map((a) => a.json().error);
    expect(errors.filter((e) => e === 'code-wrong').length).toBe(MAX_ENROLLMENT_CODE_ATTEMPTS - 1);
    expect(errors.filter((e) => e === 'code-locked').length).toBe(12 - (MAX_ENROLLMENT_CODE_ATTEMPTS - 1));
    expect((await options(link.token, { code: link.code })).json().error).toBe('code-locked');
  });

  it('forgives earlier wrong codes once the right one is given (a retried passkey prompt is no guess)', async () => {
    const { link } = await linkFor({ code: true });
    const wrongCode = link.code === '12345678' ? '87654321' : '12345678';
    for (let i = 0; i < MAX_ENROLLMENT_CODE_ATTEMPTS - 1; i++) await options(link.token, { code: wrongCode });
    for (let i = 0; i < MAX_ENROLLMENT_CODE_ATTEMPTS + 1; i++) expect((await options(link.token, { code: link.code })).status).toBe(200);
    expect(await h.app.store.loginThrottle.get(enrollmentCodeThrottleKey(enrollmentTokenId(link.token)))).toBeUndefined();
  });

  it('refuses a verify whose options came before a lock', async () => {
    const { link } = await linkFor({ code: true });
    const issued = (await options(link.token, { code: link.code })).json();
    const wrongCode = link.code === '12345678' ? '87654321' : '12345678';
    for (let i = 0; i < MAX_ENROLLMENT_CODE_ATTEMPTS; i++) await options(link.token, { code: wrongCode });
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: softAuthenticatorFor(h).register(issued) });
    expect(res.status).toBe(410);
    expect(res.json().error).toBe('code-locked');
  });

  it("refuses another link's code", async () => {
    const a = await linkFor({ code: true });
    const b = await linkFor({ code: true });
    if (a.link.code === b.link.code) return; // one chance in 10^8
    expect((await options(a.link.token, { code: b.link.code })).json().error).toBe('code-wrong');
  });

  it.each([
    ['a number', 12345678],
    ['an array', ['12345678']],
    ['an object', { code: '12345678' }],
    ['seven digits', '1234567'],
    ['nine digits', '123456789'],
    ['letters', 'abcdefgh'],
    ['SQL', "' OR '1'='1"],
    ['a NUL byte', '1234\u00005678'],
    ['a huge string', '1'.repeat(40_000)],
  ])('answers hostile input (%s) with a counted 4xx, never a 500', async (_name, code) => {
    const { link } = await linkFor({ code: true });
    const res = await options(link.token, { code });
    expect(res.status).toBe(403);
    expect(res.json().error).toBe('code-wrong');
    expect((await h.app.store.loginThrottle.get(enrollmentCodeThrottleKey(enrollmentTokenId(link.token))))?.failures).toBe(1);
  });

  it('demands a code on every link when enrollment.requireCode is set', async () => {
    const g = await KanmonHarness.start({ enrollment: { requireCode: true } });
    try {
      await g.app.services.users.addUser({ username: 'kana' });
      expect((await g.app.services.enrollment.createLink('kana')).code).toMatch(/^[0-9]{8}$/);
      expect((await g.app.services.enrollment.createLink('kana', { requireCode: false })).code).toBeUndefined();
    } finally {
      await g.close();
    }
  });
});

describe('authenticator choices', () => {
  it('offers this device, a phone and a security key, in that order, and passes the choice on', async () => {
    const { link } = await linkFor();
    const page = (await h.get(`/.kanmon/enroll?token=${link.token}`)).text;
    const order = ['choice-platform', 'choice-phone', 'choice-security-key'].map((id) => page.indexOf(`id="${id}"`));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(page).toMatch(/id="choice-platform"[^>]*checked/);

    const platform = (await options(link.token, { authenticator: 'platform' })).json();
    expect(platform.authenticatorSelection.authenticatorAttachment).toBe('platform');
    expect(platform.hints).toEqual(['client-device']);
    const phone = (await options(link.token, { authenticator: 'phone' })).json();
    expect(phone.authenticatorSelection.authenticatorAttachment).toBeUndefined();
    expect(phone.hints).toEqual(['hybrid']);
    const key = (await options(link.token, { authenticator: 'security-key' })).json();
    expect(key.authenticatorSelection.authenticatorAttachment).toBe('cross-platform');
    expect(key.hints).toEqual(['security-key']);
    const odd = (await options(link.token, { authenticator: { toString: 1 } })).json();
    expect(odd.authenticatorSelection.authenticatorAttachment).toBeUndefined();
    expect(odd.hints).toEqual([]);
  });

  it('offers an authenticator app afterwards where a route takes one, and goes there when asked', async () => {
    const { link } = await linkFor();
    expect((await h.get(`/.kanmon/enroll?token=${link.token}`)).text).toContain('id="then-totp"');
    const opts = (await options(link.token)).json();
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: softAuthenticatorFor(h).register(opts), thenTotp: true });
    expect(res.json().redirect).toBe('/.kanmon/account/totp');
  });

  it('records the enrolling passkey in the new session (device evidence, hwk)', async () => {
    const { link } = await linkFor();
    const opts = (await options(link.token)).json();
    const key = softAuthenticatorFor(h, { backupEligible: false });
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register(opts) });
    const cookie = sessionCookieFrom(res)!;
    const session = await h.app.store.sessions.get(sessionIdFromToken(cookie.split('=')[1]!));
    expect(session).toMatchObject({ authMethods: ['passkey', 'hwk'], passkey: { deviceBound: true, attested: false, credentialId: [...key.credentials.keys()][0] } });
  });
});

describe('policy at registration', () => {
  it('starts a user with a device-bound route at "security key", and asks for one', async () => {
    const { link } = await linkFor({ groups: ['finance'] });
    const page = (await h.get(`/.kanmon/enroll?token=${link.token}`)).text;
    expect(page).toMatch(/id="choice-security-key"[^>]*checked/);
    expect(page).toContain('id="choice-platform"');
    expect(page).toContain('id="enroll-policy-note"');
    const opts = (await options(link.token)).json();
    expect(opts.authenticatorSelection.authenticatorAttachment).toBe('cross-platform');
    expect(opts.hints).toEqual(['security-key']);
    expect(opts.attestation).toBe('none');
  });

  it('requests direct attestation for a user with an AAGUID allowlist', async () => {
    const { link } = await linkFor({ groups: ['vault'] });
    expect((await h.get(`/.kanmon/enroll?token=${link.token}`)).text).toContain('id="enroll-attestation-note"');
    expect((await options(link.token)).json().attestation).toBe('direct');
  });

  it('gives a member of a device-bound group only the security key, and refuses a synced passkey without using up the link', async () => {
    const { link, username } = await linkFor({ groups: ['admins'] });
    const page = (await h.get(`/.kanmon/enroll?token=${link.token}`)).text;
    expect(page).not.toContain('id="choice-platform"');
    expect(page).not.toContain('id="choice-phone"');
    const chosenPhone = (await options(link.token, { authenticator: 'phone' })).json();
    expect(chosenPhone.authenticatorSelection.authenticatorAttachment).toBe('cross-platform');

    const synced = softAuthenticatorFor(h, { backupEligible: true, backedUp: true });
    const refused = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: synced.register(chosenPhone) });
    expect(refused.status).toBe(403);
    expect(refused.json().error).toBe('passkey-not-device-bound');
    expect(refused.json().message).toContain('needs a security key');
    expect(await h.app.store.credentials.listByUser((await h.app.services.users.require(username)).id)).toEqual([]);

    const key = softAuthenticatorFor(h, { attachment: 'cross-platform', transports: ['usb'] });
    const again = (await options(link.token, { authenticator: 'security-key' })).json();
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register(again) });
    expect(res.status).toBe(200);
    const [credential] = await h.app.store.credentials.listByUser((await h.app.services.users.require(username)).id);
    expect(credential).toMatchObject({ deviceType: 'singleDevice', transports: ['usb'] });
  });
});

describe('the account page', () => {
  it('says which passkeys a route does not accept and why, and adds the next one on a security key', async () => {
    const { link } = await linkFor({ groups: ['finance'] });
    const opts = (await options(link.token, { authenticator: 'platform' })).json();
    const phone = softAuthenticatorFor(h, { backupEligible: true, backedUp: true });
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: phone.register(opts), name: 'Phone' });
    const cookie = sessionCookieFrom(res)!;
    const page = (await h.get('/.kanmon/account', { cookie, headers: { 'accept-language': 'en' } })).text;
    expect(page).toContain('id="passkey-policy-notice"');
    expect(page).toMatch(/<li data-credential-id="[^"]+"><strong>Phone<\/strong>: synced, not a security key \(not accepted by finance\)<\/li>/);
    const ja = (await h.get('/.kanmon/account', { cookie, headers: { 'accept-language': 'ja' } })).text;
    expect(ja).toContain('同期されるパスキーで、セキュリティキーではありません');
    const addOptions = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    expect(addOptions.authenticatorSelection.authenticatorAttachment).toBe('cross-platform');
    expect(addOptions.hints).toEqual(['security-key']);
  });

  it('refuses to add a synced passkey for a member of a device-bound group', async () => {
    const { link } = await linkFor({ groups: ['admins'] });
    const key = softAuthenticatorFor(h, { attachment: 'cross-platform', transports: ['usb'] });
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: key.register((await options(link.token)).json()) });
    const cookie = sessionCookieFrom(res)!;
    const addOptions = (await h.post('/.kanmon/api/account/passkeys/options', {}, { cookie })).json();
    const synced = softAuthenticatorFor(h, { backupEligible: true, backedUp: true });
    const refused = await h.post('/.kanmon/api/account/passkeys/verify', { response: synced.register(addOptions), name: 'Phone' }, { cookie });
    expect(refused.status).toBe(403);
    expect(refused.json().error).toBe('passkey-not-device-bound');
  });
});
