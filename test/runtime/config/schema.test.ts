import { describe, expect, it } from 'vitest';
import { parseConfig, validateConfig, ConfigError } from '../../../runtime/config/schema.js';
import { applyEnvOverrides, loadConfig } from '../../../runtime/config/load.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('config schema', () => {
  it('fills every default from an empty config', () => {
    const c = parseConfig({});
    expect(c.server).toMatchObject({ port: 8443, host: '0.0.0.0', publicOrigin: 'https://localhost:8443', healthPort: 0, httpPort: 0 });
    expect(c.dataDir).toBe('./.kanmon');
    expect(c.store).toEqual({ kind: 'sqlite', file: './.kanmon/kanmon.db' });
    expect(c.tls).toEqual({ source: 'self-signed-dev' });
    expect(c.webauthn).toMatchObject({ rpId: 'localhost', origins: ['https://localhost:8443'], userVerification: 'required', challengeTtlSeconds: 300 });
    expect(c.session).toMatchObject({ idleTimeoutSeconds: 1800, absoluteTimeoutSeconds: 43200, cacheSeconds: 5 });
    expect(c.jwt).toEqual({ ttlSeconds: 300, issuer: 'https://localhost:8443' });
    expect(c.enrollment.linkTtlSeconds).toBe(86400);
    expect(c.routes).toEqual([]);
    expect(Object.isFrozen(c.server)).toBe(true);
  });

  it('defaults a route to passkey-only, any signed-in user, upstream Host', () => {
    const c = parseConfig({ routes: [{ id: 'wiki', upstream: 'http://10.0.0.5:8080' }] });
    expect(c.routes[0]).toEqual({ id: 'wiki', match: { pathPrefix: '/' }, upstream: 'http://10.0.0.5:8080', policy: { factors: [['passkey']], allowUsers: [], allowGroups: [], deviceBound: false, aaguidAllowlist: [] }, preserveHost: false, connection: { connectTimeoutMs: 10000, responseTimeoutMs: 60000, idleTimeoutMs: 60000, keepAlive: true, poolSize: 128, retries: 1, maxRequestBodyBytes: 104857600 } });
  });

  it('reports every error at once, each naming its section, option, expectation and value', () => {
    const r = validateConfig({
      server: { port: 'abc', publicOrigin: 'http://insecure.example' },
      session: { idleTimeoutSeconds: 5 },
      store: { kind: 'postgres' },
      routes: [{ id: 'a b', upstream: 'ftp://x' }, { upstream: 'http://ok:1', match: { pathPrefix: '/.kanmon/x' } }],
      bogus: 1,
    });
    expect(r.ok).toBe(false);
    const errors = r.ok ? [] : r.errors;
    expect(errors).toEqual(
      expect.arrayContaining([
        `server: option 'port' must be an integer from 0 to 65535, got "abc"`,
        expect.stringMatching(/^server: option 'publicOrigin' must be an https origin .* got "http:\/\/insecure.example"$/),
        `session: option 'idleTimeoutSeconds' must be an integer from 60 to 604800, got 5`,
        `store: option 'kind' must be one of "sqlite", "dynamodb", got "postgres"`,
        expect.stringMatching(/^routes\[0\]: option 'id' must be 1-63 letters/),
        expect.stringMatching(/^routes\[0\]: option 'upstream' must be an http:\/\/ or https:\/\/ URL/),
        `routes[1]: option 'id' is required`,
        expect.stringMatching(/^routes\[1\]\.match: option 'pathPrefix' must not be under the reserved \/\.kanmon\/ prefix/),
        expect.stringMatching(/^\(root\): option 'bogus' is not known/),
      ]),
    );
    expect(errors.length).toBeGreaterThanOrEqual(9);
  });

  it('refuses duplicate route ids and duplicate matches', () => {
    const r = validateConfig({ routes: [{ id: 'a', upstream: 'http://x:1' }, { id: 'a', upstream: 'http://y:1' }] });
    expect(r.ok ? [] : r.errors).toEqual(expect.arrayContaining([`routes[1]: option 'id' must be unique, got "a" twice`, expect.stringContaining('another route already matches')]));
  });

  it('accepts the factor language as alternatives of combinations, including mtls', () => {
    const c = parseConfig({ routes: [{ id: 'fin', upstream: 'http://x:1', policy: { factors: [['passkey'], ['otp', 'mtls']] } }] });
    expect(c.routes[0]!.policy.factors).toEqual([['passkey'], ['otp', 'mtls']]);
    for (const bad of [[], [[]], ['passkey'], [['password']]]) {
      expect(validateConfig({ routes: [{ id: 'x', upstream: 'http://x:1', policy: { factors: bad } }] }).ok, JSON.stringify(bad)).toBe(false);
    }
  });

  it('refuses an mtls route when TLS is offloaded to a load balancer', () => {
    const r = validateConfig({ tls: { source: 'offloaded' }, routes: [{ id: 'fin', upstream: 'http://x:1', policy: { factors: [['passkey', 'mtls']] } }] });
    expect(r.ok ? [] : r.errors).toEqual([expect.stringContaining(`route "fin" needs the 'mtls' factor`)]);
  });

  it('requires rpId to be the origin host or a parent of it', () => {
    expect(validateConfig({ server: { publicOrigin: 'https://gate.example.com' }, webauthn: { rpId: 'example.com' } }).ok).toBe(true);
    expect(validateConfig({ server: { publicOrigin: 'https://gate.example.com' }, webauthn: { rpId: 'evil.com' } }).ok).toBe(false);
  });

  it('validates the AWS-facing options', () => {
    expect(validateConfig({ store: { kind: 'dynamodb' } }).ok).toBe(false);
    expect(validateConfig({ store: { kind: 'dynamodb', table: 'kanmon' }, secrets: { provider: 'kms', keyId: 'arn:aws:kms:x' }, notifications: { kind: 'sns', topicArn: 'arn:aws:sns:x' } }).ok).toBe(true);
    expect(validateConfig({ server: { proxyProtocol: { enabled: true } } }).ok).toBe(false);
    expect(validateConfig({ server: { proxyProtocol: { enabled: true, allowedNetworks: ['10.0.0.0/16'] } } }).ok).toBe(true);
    expect(validateConfig({ server: { proxyProtocol: { enabled: true, allowedNetworks: ['10.0.0.0/33'] } } }).ok).toBe(false);
    expect(validateConfig({ tls: { source: 'acme', email: 'ops@example.com' }, server: { publicOrigin: 'https://gate.example.com' } }).ok).toBe(true);
    expect(validateConfig({ tls: { source: 'acme' } }).ok).toBe(false);
  });

  it('throws ConfigError listing the errors', () => {
    expect(() => parseConfig({ server: { port: -1 } })).toThrow(ConfigError);
    expect(() => parseConfig('nonsense')).toThrow(/\(root\): must be an object/);
  });
});

describe('config loading', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-config-'));

  it('lets environment variables override single values, keeping numbers numbers', () => {
    const merged = applyEnvOverrides({ server: { port: 1 } }, { KANMON_PORT: '9443', KANMON_DATA_DIR: '/srv/k', KANMON_STORE: 'dynamodb', KANMON_DYNAMODB_TABLE: 't1' });
    expect(merged).toEqual({ server: { port: 9443 }, dataDir: '/srv/k', store: { kind: 'dynamodb', table: 't1' } });
  });

  it('reports a bad environment value in the schema’s words', () => {
    expect(() => loadConfig({ env: { KANMON_PORT: 'eighty' }, cwd: dir })).toThrow(`server: option 'port' must be an integer from 0 to 65535, got "eighty"`);
  });

  it('prefers --config over KANMON_CONFIG_FILE, and KANMON_CONFIG_JSON over both', () => {
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ server: { port: 1001 } }));
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ server: { port: 1002 } }));
    expect(loadConfig({ file: 'a.json', env: { KANMON_CONFIG_FILE: 'b.json' }, cwd: dir }).config.server.port).toBe(1001);
    expect(loadConfig({ env: { KANMON_CONFIG_FILE: 'b.json' }, cwd: dir }).config.server.port).toBe(1002);
    expect(loadConfig({ file: 'a.json', env: { KANMON_CONFIG_JSON: '{"server":{"port":1003}}' }, cwd: dir }).config.server.port).toBe(1003);
  });

  it('explains an unreadable or invalid file', () => {
    expect(() => loadConfig({ file: 'missing.json', env: {}, cwd: dir })).toThrow(/cannot be read: ENOENT/);
    writeFileSync(join(dir, 'broken.json'), '{ "server": ');
    expect(() => loadConfig({ file: 'broken.json', env: {}, cwd: dir })).toThrow(/not valid JSON/);
  });

  it('reads the shipped kanmon.config.json with the demo routes (groupware, legacy form sign-in, legacy Basic)', () => {
    const { config } = loadConfig({ env: {} });
    expect(config.routes.map((r) => [r.id, r.upstream])).toEqual([
      ['demo', 'demo'],
      ['legacy', 'demo'],
      ['legacy-basic', 'demo'],
    ]);
    expect(config.routes.map((r) => r.upstreamAuth?.kind)).toEqual([undefined, 'form', 'basic']);
  });
});

describe('config for fallback factors and stronger routes', () => {
  it('defaults TOTP, login protection, groups and enrollment codes', () => {
    const c = parseConfig({});
    expect(c.totp).toEqual({ issuer: 'Kanmon', toleranceSteps: 1 });
    expect(c.loginProtection).toEqual({ maxFailuresPerUser: 5, maxFailuresPerAddress: 20, windowSeconds: 900, lockoutSeconds: 900, delayStepMs: 250 });
    expect(c.groups).toEqual({});
    expect(c.enrollment.requireCode).toBe(false);
  });

  it('reads device-bound routes, AAGUID allowlists, per-route timeouts and group rules', () => {
    const c = parseConfig({
      groups: { admins: { deviceBoundPasskeys: true } },
      routes: [{ id: 'fin', upstream: 'http://x:1', policy: { aaguidAllowlist: ['CB69481E-8FF7-4039-93EC-0A2729A154A8'], idleTimeoutSeconds: 300 } }],
    });
    expect(c.groups.admins).toEqual({ deviceBoundPasskeys: true });
    expect(c.routes[0]!.policy).toMatchObject({ deviceBound: true, aaguidAllowlist: ['cb69481e-8ff7-4039-93ec-0a2729a154a8'], idleTimeoutSeconds: 300 });
    expect(c.routes[0]!.policy.absoluteTimeoutSeconds).toBeUndefined();
    const bad = validateConfig({ groups: { 'a b': {} }, routes: [{ id: 'x', upstream: 'http://x:1', policy: { aaguidAllowlist: ['nope'], idleTimeoutSeconds: 5 } }] });
    expect(bad.ok ? [] : bad.errors).toEqual(
      expect.arrayContaining([expect.stringContaining('group name must have no spaces'), expect.stringContaining("'aaguidAllowlist[0]' must be an AAGUID"), expect.stringContaining("'idleTimeoutSeconds' must be an integer from 60")]),
    );
  });

  it('lets route timeouts only tighten the global ones', () => {
    const bad = validateConfig({
      session: { idleTimeoutSeconds: 600, absoluteTimeoutSeconds: 3600 },
      routes: [
        { id: 'a', upstream: 'http://x:1', policy: { idleTimeoutSeconds: 900 } },
        { id: 'b', match: { pathPrefix: '/b' }, upstream: 'http://x:1', policy: { absoluteTimeoutSeconds: 7200, idleTimeoutSeconds: 600 } },
      ],
    });
    expect(bad.ok ? [] : bad.errors).toEqual([
      "routes[0].policy: option 'idleTimeoutSeconds' may only tighten session.idleTimeoutSeconds (600), got 900",
      "routes[1].policy: option 'absoluteTimeoutSeconds' may only tighten session.absoluteTimeoutSeconds (3600), got 7200",
    ]);
  });

  it('reads the metadata BLOB file and its optional private root, which needs the BLOB', () => {
    const c = parseConfig({ webauthn: { mdsBlobFile: '/etc/kanmon/mds.jwt', mdsRootCertFile: '/etc/kanmon/mds-root.pem' } });
    expect(c.webauthn).toMatchObject({ mdsBlobFile: '/etc/kanmon/mds.jwt', mdsRootCertFile: '/etc/kanmon/mds-root.pem' });
    expect(parseConfig({}).webauthn.mdsRootCertFile).toBeUndefined();
    const bad = validateConfig({ webauthn: { mdsRootCertFile: '/etc/kanmon/mds-root.pem' } });
    expect(bad.ok ? [] : bad.errors).toEqual([`webauthn: option 'mdsRootCertFile' needs 'mdsBlobFile', got only "/etc/kanmon/mds-root.pem"`]);
  });
});

describe('config for the client-certificate CA', () => {
  it('defaults the CA name and the certificate lifecycle', () => {
    const c = parseConfig({ webauthn: { rpName: 'Example Corp' } });
    expect(c.ca).toEqual({ commonName: 'Example Corp Client CA', crlValidityHours: 24 });
    expect(c.clientCertificates).toEqual({
      lifetimeDays: 365,
      keyType: 'ec-p256',
      maxActivePerUser: 5,
      maxDownloadsPerIssuance: 3,
      downloadLinkTtlSeconds: 604800,
      statusCacheSeconds: 5,
      renewBeforeDays: 30,
    });
    expect(Object.isFrozen(c.clientCertificates)).toBe(true);
  });

  it('reads every name field and option', () => {
    const c = parseConfig({
      ca: { commonName: '関門 社内端末 CA', organization: 'Example K.K.', organizationalUnit: 'IT', country: 'JP', crlValidityHours: 12 },
      clientCertificates: { lifetimeDays: 90, keyType: 'rsa-2048', maxActivePerUser: 2, maxDownloadsPerIssuance: 1, downloadLinkTtlSeconds: 3600, statusCacheSeconds: 0, renewBeforeDays: 14 },
    });
    expect(c.ca).toEqual({ commonName: '関門 社内端末 CA', organization: 'Example K.K.', organizationalUnit: 'IT', country: 'JP', crlValidityHours: 12 });
    expect(c.clientCertificates).toMatchObject({ lifetimeDays: 90, keyType: 'rsa-2048', maxActivePerUser: 2, statusCacheSeconds: 0, renewBeforeDays: 14 });
  });

  it('reports every bad CA and certificate option at once', () => {
    const r = validateConfig({
      ca: { commonName: 'x'.repeat(65), organization: '', country: 'jp', color: 'red' },
      clientCertificates: { lifetimeDays: 0, keyType: 'ed25519', maxActivePerUser: 1000, maxDownloadsPerIssuance: 0, downloadLinkTtlSeconds: 10, statusCacheSeconds: 120 },
    });
    expect(r.ok ? [] : r.errors).toEqual([
      `ca: option 'color' is not known (known: commonName, organization, organizationalUnit, country, crlValidityHours)`,
      `ca: option 'commonName' must be 1-64 characters without control characters, got "${'x'.repeat(65)}"`,
      `ca: option 'organization' must be 1-64 characters without control characters, got ""`,
      `ca: option 'country' must be a two-letter upper-case ISO 3166 code such as "JP", got "jp"`,
      `clientCertificates: option 'lifetimeDays' must be an integer from 1 to 825, got 0`,
      `clientCertificates: option 'keyType' must be one of "ec-p256", "rsa-2048", got "ed25519"`,
      `clientCertificates: option 'maxActivePerUser' must be an integer from 1 to 100, got 1000`,
      `clientCertificates: option 'maxDownloadsPerIssuance' must be an integer from 1 to 20, got 0`,
      `clientCertificates: option 'downloadLinkTtlSeconds' must be an integer from 300 to 2592000, got 10`,
      `clientCertificates: option 'statusCacheSeconds' must be an integer from 0 to 60, got 120`,
    ]);
  });

  it('wants renewal to start before a certificate lapses', () => {
    const r = validateConfig({ clientCertificates: { lifetimeDays: 30, renewBeforeDays: 30 } });
    expect(r.ok ? [] : r.errors).toEqual([`clientCertificates: option 'renewBeforeDays' must be less than 'lifetimeDays' (30), got 30`]);
  });
});

describe('config for the mTLS listener', () => {
  it('defaults to policy enforcement, no extra CAs and nobody required', () => {
    const c = parseConfig({});
    expect(c.mtls).toEqual({ enforcement: 'policy', extraTrustedCaFiles: [], requiredFor: { all: false, groups: [], users: [] } });
    expect(Object.isFrozen(c.mtls.requiredFor)).toBe(true);
  });

  it('reads enforcement, extra CAs and who must present a certificate', () => {
    const c = parseConfig({ mtls: { enforcement: 'reject-connection', extraTrustedCaFiles: ['/etc/kanmon/old-ca.pem'], requiredFor: { groups: ['経理部'], users: ['alice'] } } });
    expect(c.mtls).toEqual({ enforcement: 'reject-connection', extraTrustedCaFiles: ['/etc/kanmon/old-ca.pem'], requiredFor: { all: false, groups: ['経理部'], users: ['alice'] } });
  });

  it('reports every bad mTLS option at once', () => {
    const r = validateConfig({ mtls: { enforcement: 'strict', extraTrustedCaFiles: 'ca.pem', requiredFor: { all: 'yes', groups: ['a b'], users: [1], teams: [] }, crl: true } });
    expect(r.ok ? [] : r.errors).toEqual([
      `mtls: option 'crl' is not known (known: enforcement, extraTrustedCaFiles, requiredFor)`,
      `mtls.requiredFor: option 'teams' is not known (known: all, groups, users)`,
      `mtls: option 'enforcement' must be one of "policy", "reject-connection", got "strict"`,
      `mtls: option 'extraTrustedCaFiles' must be a list of strings, got "ca.pem"`,
      `mtls.requiredFor: option 'all' must be true or false, got "yes"`,
      `mtls.requiredFor: option 'groups' must be a list of names without spaces or commas, got ["a b"]`,
      `mtls.requiredFor: option 'users' must be a list of names without spaces or commas, got [1]`,
    ]);
  });

  it('refuses reject-connection and requiredFor when TLS ends before Kanmon', () => {
    const r = validateConfig({ tls: { source: 'offloaded' }, mtls: { enforcement: 'reject-connection', requiredFor: { all: true } } });
    expect(r.ok ? [] : r.errors).toEqual([
      `mtls: option 'enforcement' "reject-connection" is impossible when tls.source is "offloaded" (TLS ends before Kanmon); use "acme", "imported" or "file"`,
      `mtls: option 'requiredFor' needs client certificates, which are impossible when tls.source is "offloaded" (TLS ends before Kanmon)`,
    ]);
    expect(validateConfig({ tls: { source: 'offloaded' }, mtls: { enforcement: 'policy' } }).ok).toBe(true);
  });
});
