import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { runCommand } from '../../../runtime/cli/commands.js';
import { KanmonHarness, softAuthenticatorFor } from '../../support/kanmon-harness.js';

const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
let h: KanmonHarness;

beforeAll(async () => {
  h = await KanmonHarness.start({
    groups: { admins: { deviceBoundPasskeys: true } },
    routes: [
      { id: 'groupware', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [['passkey'], ['otp']] } },
      { id: 'finance', match: { pathPrefix: '/finance' }, upstream: 'demo', policy: { allowGroups: ['finance'], factors: [['passkey', 'mtls']] } },
      { id: 'vault', match: { pathPrefix: '/vault' }, upstream: 'demo', policy: { aaguidAllowlist: [YUBIKEY] } },
      { id: 'nas', match: { host: 'nas.example', pathPrefix: '/' }, upstream: 'demo', policy: { deviceBound: true } },
    ],
  });
  await h.app.services.users.addUser({ username: 'aiko', groups: ['finance'] });
  await h.app.services.users.addUser({ username: 'root', groups: ['admins'] });
  // aiko has a synced phone passkey and a security key; registered through the real ceremony.
  for (const [name, opts] of [
    ['Phone', { backupEligible: true, backedUp: true }],
    ['YubiKey', { backupEligible: false, aaguid: YUBIKEY, attachment: 'cross-platform' as const, transports: ['usb'] }],
  ] as const) {
    const link = await h.app.services.enrollment.createLink('aiko');
    const options = (await h.post('/.kanmon/api/enroll/options', { token: link.token })).json();
    const res = await h.post('/.kanmon/api/enroll/verify', { token: link.token, response: softAuthenticatorFor(h, opts).register(options), name });
    expect(res.status).toBe(200);
  }
});
afterAll(async () => h?.close());

async function check(...args: string[]): Promise<string> {
  const lines: string[] = [];
  expect(await runCommand(['policy', 'check', ...args], h.app.services, h.app.config, { out: (l) => lines.push(l) })).toBe(0);
  return lines.join('\n');
}

const base = () => h.origin;

describe('kanmon policy check', () => {
  it('allows a passkey on the open route, for each of the user\'s passkeys', async () => {
    const text = await check('aiko', `${base()}/mail`);
    expect(text).toContain('route:  groupware (host *; path /; factors passkey | otp)');
    expect(text).toContain('with passkey "Phone" (synced, model not disclosed, not attested):\n  ALLOW');
    expect(text).toContain('with passkey "YubiKey" (device-bound, YubiKey 5 Series, not attested):\n  ALLOW');
  });

  it('asks for the device certificate on the finance route, and allows it with --cert', async () => {
    const without = await check('aiko', `${base()}/finance/ledger`);
    expect(without).toContain('route:  finance');
    expect(without).toContain('CERTIFICATE-REQUIRED');
    expect(without).toContain('needs a company device certificate, and none was presented: issue one with kanmon cert issue aiko');
    const withCert = await check('aiko', `${base()}/finance/ledger`, '--cert');
    expect(withCert).not.toContain('CERTIFICATE-REQUIRED');
    expect(withCert).toContain('ALLOW');
  });

  it('denies a user outside the route\'s groups and says who is admitted', async () => {
    const text = await check('root', `${base()}/finance`);
    expect(text).toContain('DENY');
    expect(text).toContain('the route admits users [] and groups [finance]; root is in [admins].');
  });

  it('explains a device-bound route: the synced passkey steps up, the security key is allowed', async () => {
    const text = await check('aiko', 'https://nas.example/admin');
    expect(text).toContain('route:  nas (host nas.example');
    const [phone, key] = text.split('with passkey "YubiKey"');
    expect(phone).toContain('STEP-UP');
    expect(phone).toContain('route nas demands a device-bound passkey (BE = 0), and this one is synced or unknown.');
    expect(phone).toContain('what qualifies: a security key');
    expect(key).toContain('ALLOW');
  });

  it('explains an AAGUID allowlist: a listed key registered without attestation is not proven', async () => {
    const text = await check('aiko', `${base()}/vault/`);
    const key = text.split('with passkey "YubiKey"')[1]!;
    expect(key).toContain('STEP-UP');
    expect(key).toContain('needs the model proven by a verified attestation');
    expect(key).toContain('set webauthn.mdsBlobFile');
  });

  it('names the group rule for an administrator without passkeys, and tries other methods with --methods', async () => {
    const text = await check('root', `${base()}/`);
    expect(text).toContain('the user has none registered yet');
    expect(text).toContain('the rule of group admins demands a device-bound passkey');
    expect(await check('root', `${base()}/`, '--methods', 'otp')).toContain('ALLOW');
    expect(await check('root', 'https://nas.example/', '--methods', 'otp')).toContain('satisfy none of passkey');
  });

  it('says when no route matches', async () => {
    const g = await KanmonHarness.start({ routes: [{ id: 'app', match: { pathPrefix: '/app' }, upstream: 'demo' }] });
    try {
      await g.app.services.users.addUser({ username: 'zoe' });
      const lines: string[] = [];
      await runCommand(['policy', 'check', 'zoe', 'https://gate.example/other'], g.app.services, g.app.config, { out: (l) => lines.push(l) });
      expect(lines.join('\n')).toContain('route:  none');
      expect(lines.join('\n')).toContain('DENY\n  no route matches this host and path');
    } finally {
      await g.close();
    }
  });

  it('prints JSON with --json', async () => {
    const lines: string[] = [];
    await runCommand(['policy', 'check', 'aiko', 'https://nas.example/', '--json'], h.app.services, h.app.config, { out: (l) => lines.push(l) });
    const json = JSON.parse(lines.join('\n'));
    expect(json).toMatchObject({ user: 'aiko', route: 'nas', methods: ['passkey'] });
    expect(json.results.map((r: { decision: { kind: string } }) => r.decision.kind)).toEqual(['step-up', 'allow']);
    expect(json.results[0].decision).toMatchObject({ reason: 'passkey-not-device-bound', passkeyRule: { requiredBy: ['route'] } });
  });

  it('refuses bad arguments with a usage error', async () => {
    const run = (...args: string[]) => runCommand(['policy', 'check', ...args], h.app.services, h.app.config, { out: () => undefined });
    await expect(run('aiko')).rejects.toBeInstanceOf(UsageError);
    await expect(run('aiko', 'not a url')).rejects.toBeInstanceOf(UsageError);
    await expect(run('aiko', `${base()}/`, '--methods', 'password')).rejects.toBeInstanceOf(UsageError);
    await expect(run('nobody', `${base()}/`)).rejects.toThrow(/nobody/);
  });
});
