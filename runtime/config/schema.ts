/**
 * Kanmon's configuration: one schema for the runtime and the CDK stack.
 *
 * This file must stay free of fastify, the AWS SDK and node-specific I/O so that
 * `lib/` can import it. `validateConfig` takes untrusted JSON and returns either a
 * frozen, fully defaulted config or every error found, each phrased as
 * "section: option 'x' must be …, got …".
 */
import { GROUP_OR_USER, HOST_NAME, asSection, bool, deepFreeze, dnString, int, isHttpUrl, isOrigin, joinPath, oneOf, optStr, origin, rejectUnknown, safeHostname, show, str, strList, isCidr } from './readers.js';
import { validateDirectory, type DirectoryConfig } from './directory.js';
import { routeUsesMtls, validateRoutes, type RouteConfig } from './routes.js';

export * from './routes.js';
export type { DirectoryConfig, LdapDirectoryConfig } from './directory.js';

export type UserVerification = 'required' | 'preferred';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';


export interface ServerConfig {
  /** TLS listener port; 0 picks a free port at start (tests). @default 8443 */
  readonly port: number;
  /** Address the TLS listener binds. @default "0.0.0.0" */
  readonly host: string;
  /**
   * The origin users type into the browser; used for WebAuthn origin checks and for links.
   * @default `https://localhost:<port>`
   */
  readonly publicOrigin: string;
  /** Internal port for /healthz and /readyz; 0 disables the health listener. @default 0 */
  readonly healthPort: number;
  /** Largest request body the portal accepts, in bytes. @default 65536 */
  readonly portalBodyLimitBytes: number;
  /** Plain-HTTP listener for ACME HTTP-01 and the redirect to https; 0 disables it. @default 0 */
  readonly httpPort: number;
  /** PROXY protocol v2 on the TLS (and plain) listener, accepted only from these networks. */
  readonly proxyProtocol: ProxyProtocolConfig;
  /** On SIGTERM, how long in-flight requests may take to finish before connections are cut. @default 20 */
  readonly shutdownGraceSeconds: number;
  /**
   * The first part of shutdownGraceSeconds during which readiness is already false but new
   * connections are still accepted, so a load balancer that learns from health checks has
   * moved traffic away before the listener closes. @default 0
   */
  readonly drainDelaySeconds: number;
  /**
   * Processes serving the listener: 1 is a single process; n ≥ 2 is a supervising primary plus
   * n workers (node:cluster); "auto" is one per CPU the process may use (cgroup quota included).
   * @default 1
   */
  readonly workers: number | 'auto';
}

/** Largest `server.workers` accepted: beyond this, memory grows with no CPU left to use. */
export const MAX_WORKERS = 64;

export interface ProxyProtocolConfig {
  /** @default false */
  readonly enabled: boolean;
  /** CIDRs of the load balancers allowed to send a PROXY header, e.g. the VPC CIDR. @default [] */
  readonly allowedNetworks: readonly string[];
}

export type TlsConfig =
  | { readonly source: 'self-signed-dev' }
  | { readonly source: 'file'; readonly certFile: string; readonly keyFile: string }
  | {
      readonly source: 'acme';
      /** Host names to certify. @default [host of server.publicOrigin] */
      readonly domains: readonly string[];
      /** ACME account contact. */
      readonly email: string;
      /** @default Let's Encrypt production */
      readonly directoryUrl: string;
      /** @default "ecdsa" */
      readonly keyType: 'ecdsa' | 'rsa';
      /**
       * The challenge answered to prove control of each name (RFC 8555 §8.3, RFC 8737).
       * @default "http-01" when server.httpPort is set, else "tls-alpn-01"
       */
      readonly challenge: 'http-01' | 'tls-alpn-01';
      /** Renewal starts this many days before the certificate expires. @default 30 */
      readonly renewBeforeDays: number;
      /** PEM file of a CA to trust for the ACME server's own HTTPS (a private ACME server). @default the system's roots */
      readonly directoryCaFile?: string;
    }
  | {
      /**
       * A certificate and key imported by an administrator: into the store with
       * `kanmon cert server import`, or (with `secretArn`) kept in AWS Secrets Manager as JSON
       * {"certificate","privateKey"} PEM.
       */
      readonly source: 'imported';
      readonly secretArn?: string;
    }
  | {
      /**
       * TLS ends in front of Kanmon (an NLB with an ACM certificate). The listener speaks plain
       * HTTP and must only be reachable from that load balancer; mTLS is impossible here.
       */
      readonly source: 'offloaded';
    };

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING_DIRECTORY = 'https://acme-staging-v02.api.letsencrypt.org/directory';

export type NotificationsConfig = (
  | { readonly kind: 'log' }
  | { readonly kind: 'sns'; readonly topicArn: string; readonly region?: string }
) & {
  /** E-mail to one person at a time (certificate links, expiry warnings to a certificate's user). @default absent: no mail */
  readonly mail?: MailConfig;
  /** Days before a client certificate expires at which its administrators and user are warned, once each. @default [30, 7, 1] */
  readonly certificateExpiryDays: readonly number[];
  /** Addresses that get every administrator notification by mail too, when `mail` is set (live setting). @default [] */
  readonly adminRecipients: readonly string[];
};

/**
 * An SMTP relay for messages to one recipient each (SNS topics reach only subscribed
 * administrators). On AWS, Amazon SES's SMTP interface with a verified sender.
 */
export interface MailConfig {
  readonly transport: 'smtp';
  readonly host: string;
  /** @default 587 for "starttls", 465 for "tls", 25 for "none" */
  readonly port: number;
  /**
   * "starttls": the session must upgrade to TLS before anything is sent (RFC 3207); "tls":
   * TLS from the first byte (RFC 8314); "none": plain text, warned about at every start.
   * The server's certificate is always verified. @default "starttls"
   */
  readonly security: 'starttls' | 'tls' | 'none';
  /** The From address, e.g. "Kanmon <kanmon@example.com>". */
  readonly from: string;
  /** SMTP AUTH user name. @default absent: no AUTH */
  readonly username?: string;
  /** The environment variable holding the SMTP AUTH password (never the password itself). */
  readonly passwordEnv?: string;
  /** PEM file of the CA(s) the relay's certificate must chain to. @default the system's trust store */
  readonly caFile?: string;
}

export type StoreConfig =
  | { readonly kind: 'sqlite'; /** @default `<dataDir>/kanmon.db` */ readonly file: string }
  | {
      readonly kind: 'dynamodb';
      readonly table: string;
      /** @default the AWS SDK's own region resolution */
      readonly region?: string;
      /** For DynamoDB Local and tests. */
      readonly endpoint?: string;
    };

export type SecretsConfig =
  | { readonly provider: 'local' }
  | { readonly provider: 'kms'; readonly keyId: string; readonly region?: string };

export interface WebAuthnConfig {
  /** Relying party id. @default the host name of `server.publicOrigin` */
  readonly rpId: string;
  /** Shown by authenticators. @default "Kanmon" */
  readonly rpName: string;
  /** Origins accepted in clientDataJSON. @default [server.publicOrigin] */
  readonly origins: readonly string[];
  /** @default "required" */
  readonly userVerification: UserVerification;
  /** Ceremony timeout given to the browser, and the challenge lifetime. @default 300 */
  readonly challengeTtlSeconds: number;
  /** A FIDO Metadata Service BLOB (JWT) on disk, to name authenticators and check their status; never fetched at run time. */
  readonly mdsBlobFile?: string;
  /**
   * PEM certificate(s) the BLOB's signing chain must end at, for a private metadata service.
   * @default the FIDO Alliance's roots (GlobalSign Root CA - R3 and Root R46), built in
   */
  readonly mdsRootCertFile?: string;
}

export interface SessionConfig {
  /** @default 1800 (30 min) */
  readonly idleTimeoutSeconds: number;
  /** @default 43200 (12 h) */
  readonly absoluteTimeoutSeconds: number;
  /** How stale a node's cached view of a session may be; also the revocation bound. @default 5 */
  readonly cacheSeconds: number;
  /** Upper bound on cached sessions per node. @default 100000 */
  readonly cacheMaxEntries: number;
}

export interface JwtConfig {
  /** Lifetime of the X-Kanmon-Jwt token; at most 300. @default 300 */
  readonly ttlSeconds: number;
  /** `iss` claim. @default server.publicOrigin */
  readonly issuer: string;
}

export interface EnrollmentConfig {
  /** Default lifetime of enrollment links. @default 86400 (24 h) */
  readonly linkTtlSeconds: number;
  /** New links demand a one-time code delivered on a second channel. @default false */
  readonly requireCode: boolean;
  /**
   * Passkey and authenticator-app enrollment need a valid client certificate of Kanmon's CA
   * that belongs to the enrolling user, presented in this TLS handshake, so a stolen link
   * alone is not enough. @default false
   */
  readonly requireClientCertificate: boolean;
}

export interface TotpConfig {
  /** Issuer shown in authenticator apps. @default webauthn.rpName */
  readonly issuer: string;
  /** Accepted clock skew in 30 s steps either side (RFC 6238 §5.2). @default 1 */
  readonly toleranceSteps: number;
}

export interface LoginProtectionConfig {
  /** Failures per user within the window before the account locks. @default 5 */
  readonly maxFailuresPerUser: number;
  /** Failures per client address within the window before it is locked out. @default 20 */
  readonly maxFailuresPerAddress: number;
  /** The window failures are counted in. @default 900 */
  readonly windowSeconds: number;
  /** How long a lock lasts. @default 900 */
  readonly lockoutSeconds: number;
  /** Delay added per failure so far (growing), capped at 10 s. @default 250 */
  readonly delayStepMs: number;
}

/**
 * Name fields of Kanmon's own client-certificate CA. Read when the CA is created (first start or
 * first use); changing them later does not touch a CA that exists.
 */
export interface CaConfig {
  /** @default "<webauthn.rpName> Client CA" */
  readonly commonName: string;
  /** @default absent */
  readonly organization?: string;
  /** @default absent */
  readonly organizationalUnit?: string;
  /** Two-letter ISO 3166 country code, e.g. "JP". @default absent */
  readonly country?: string;
  /** Validity of each CRL: nextUpdate = thisUpdate + this (RFC 5280 §5.1.2.5). @default 24 */
  readonly crlValidityHours: number;
}

export type ClientCertificateKeyType = 'ec-p256' | 'rsa-2048';

export interface ClientCertificatesConfig {
  /** Validity of a new client certificate. @default 365 */
  readonly lifetimeDays: number;
  /** Key pair generated for new certificates; rsa-2048 for clients without EC support. @default "ec-p256" */
  readonly keyType: ClientCertificateKeyType;
  /** Active (unrevoked, unexpired) certificates one user may hold. @default 5 */
  readonly maxActivePerUser: number;
  /** Downloads allowed of the PKCS#12 file of one issuance. @default 3 */
  readonly maxDownloadsPerIssuance: number;
  /** How long the file of an issuance, and each download link, can be fetched. @default 604800 (7 days) */
  readonly downloadLinkTtlSeconds: number;
  /**
   * How stale a node's cached view of a certificate's status may be: a revocation is refused by
   * every node within this bound. @default 5
   */
  readonly statusCacheSeconds: number;
  /** Certificates expiring within this many days are reported for renewal. @default 30 */
  readonly renewBeforeDays: number;
}

/**
 * How the TLS listener treats client certificates (RFC 8446 §4.3.2 CertificateRequest, RFC 5246
 * §7.4.4). The listener asks for one only when some route uses the 'mtls' factor or
 * `requiredFor` names someone.
 */
export interface MtlsConfig {
  /**
   * 'policy': a missing or invalid certificate does not break the handshake; routes decide.
   * 'reject-connection': no valid certificate from a trusted CA, no TLS session at all.
   * @default "policy"
   */
  readonly enforcement: 'policy' | 'reject-connection';
  /** PEM files of further CAs the handshake accepts (their certificates never prove 'mtls' by themselves). @default [] */
  readonly extraTrustedCaFiles: readonly string[];
  /** Who must present a valid certificate on every route, whatever the route says. @default nobody */
  readonly requiredFor: {
    readonly all: boolean;
    readonly groups: readonly string[];
    readonly users: readonly string[];
  };
}

/** Whether `mtls.requiredFor` names anyone at all. */
export function mtlsRequiredForAnyone(requiredFor: MtlsConfig['requiredFor']): boolean {
  return requiredFor.all || requiredFor.groups.length > 0 || requiredFor.users.length > 0;
}

export interface GroupPolicyConfig {
  /** Members' passkeys must be device-bound (BE = 0) wherever they sign in. @default false */
  readonly deviceBoundPasskeys: boolean;
  /** Right after enrolling a passkey, members are offered a client certificate for the device they enrolled on. @default false */
  readonly offerClientCertificate?: boolean;
}

/** The administrator's console at /.kanmon/admin (open to users with the admin role only). */
export interface AdminConfig {
  /** Console sessions must have been signed in with a device-bound passkey (a security key, BE = 0). @default false */
  readonly deviceBound: boolean;
  /** Console requests must also present a valid client certificate of Kanmon's CA (the 'mtls' factor). @default false */
  readonly requireMtls: boolean;
  /** Sensitive actions need a passkey assertion at most this many seconds old. @default 600 */
  readonly reauthSeconds: number;
}

export interface KanmonConfig {
  /** Directory for the SQLite file, local secrets and the development CA. @default "./.kanmon" */
  readonly dataDir: string;
  readonly server: ServerConfig;
  readonly tls: TlsConfig;
  readonly store: StoreConfig;
  readonly secrets: SecretsConfig;
  readonly webauthn: WebAuthnConfig;
  readonly session: SessionConfig;
  readonly jwt: JwtConfig;
  readonly enrollment: EnrollmentConfig;
  readonly totp: TotpConfig;
  readonly loginProtection: LoginProtectionConfig;
  /** Kanmon's own CA for client certificates. */
  readonly ca: CaConfig;
  readonly clientCertificates: ClientCertificatesConfig;
  /** The listener's client-certificate request, enforcement and who must always present one. */
  readonly mtls: MtlsConfig;
  /** Per-group rules, by group name. @default {} */
  readonly groups: Readonly<Record<string, GroupPolicyConfig>>;
  readonly routes: readonly RouteConfig[];
  readonly log: { readonly level: LogLevel };
  /** Where administrators are told about state changes. @default { kind: "log" } */
  readonly notifications: NotificationsConfig;
  /** CloudWatch Embedded Metric Format lines on stdout. @default { emf: false, namespace: "Kanmon" } */
  readonly metrics: { readonly emf: boolean; readonly namespace: string };
  /** Users and groups synchronised from LDAP / Active Directory. @default {} */
  readonly directory: DirectoryConfig;
  /** The administrator's console. @default { deviceBound: false, requireMtls: false, reauthSeconds: 600 } */
  readonly admin: AdminConfig;
}

/** What a config file may hold: every option optional. */
export type KanmonConfigInput = DeepPartial<KanmonConfig>;
type DeepPartial<T> = T extends readonly (infer U)[]
  ? readonly DeepPartial<U>[]
  : T extends object
    ? { -readonly [K in keyof T]?: DeepPartial<T[K]> }
    : T;

export type ValidationResult =
  | { readonly ok: true; readonly config: KanmonConfig }
  | { readonly ok: false; readonly errors: readonly string[] };

export class ConfigError extends Error {
  constructor(readonly errors: readonly string[]) {
    super(`invalid configuration:\n  - ${errors.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Validates and defaults a config; throws ConfigError listing every problem. */
export function parseConfig(input: unknown): KanmonConfig {
  const result = validateConfig(input);
  if (!result.ok) throw new ConfigError(result.errors);
  return result.config;
}


export function validateConfig(input: unknown): ValidationResult {
  const errors: string[] = [];
  const root = asSection(input, '(root)', errors);
  const known = ['dataDir', 'server', 'tls', 'store', 'secrets', 'webauthn', 'session', 'jwt', 'enrollment', 'totp', 'loginProtection', 'ca', 'clientCertificates', 'mtls', 'groups', 'routes', 'log', 'notifications', 'metrics', 'admin', 'directory'];
  rejectUnknown(root, known, '(root)', errors);

  const dataDir = str(root, 'dataDir', '(root)', errors, './.kanmon', { nonEmpty: true });

  const s = asSection(root.server, 'server', errors);
  rejectUnknown(s, ['port', 'host', 'publicOrigin', 'healthPort', 'portalBodyLimitBytes', 'httpPort', 'proxyProtocol', 'shutdownGraceSeconds', 'drainDelaySeconds', 'workers'], 'server', errors);
  const port = int(s, 'port', 'server', errors, 8443, 0, 65535);
  const host = str(s, 'host', 'server', errors, '0.0.0.0', { nonEmpty: true });
  const publicOrigin = origin(s, 'publicOrigin', 'server', errors, `https://localhost${port === 443 ? '' : `:${port}`}`);
  const healthPort = int(s, 'healthPort', 'server', errors, 0, 0, 65535);
  const portalBodyLimitBytes = int(s, 'portalBodyLimitBytes', 'server', errors, 65536, 1024, 10 * 1024 * 1024);
  if (healthPort !== 0 && healthPort === port) errors.push(`server: option 'healthPort' must differ from 'port', got ${healthPort}`);
  const httpPort = int(s, 'httpPort', 'server', errors, 0, 0, 65535);
  if (httpPort !== 0 && (httpPort === port || httpPort === healthPort)) {
    errors.push(`server: option 'httpPort' must differ from 'port' and 'healthPort', got ${httpPort}`);
  }
  const shutdownGraceSeconds = int(s, 'shutdownGraceSeconds', 'server', errors, 20, 0, 300);
  const drainDelaySeconds = int(s, 'drainDelaySeconds', 'server', errors, 0, 0, 300);
  if (drainDelaySeconds > 0 && drainDelaySeconds >= shutdownGraceSeconds) {
    errors.push(`server: option 'drainDelaySeconds' must be less than 'shutdownGraceSeconds' (${shutdownGraceSeconds}), the whole shutdown bound, got ${drainDelaySeconds}`);
  }
  const workersValid = s.workers === undefined || s.workers === 'auto' || (Number.isInteger(s.workers) && (s.workers as number) >= 1 && (s.workers as number) <= MAX_WORKERS);
  if (!workersValid) errors.push(`server: option 'workers' must be "auto" or an integer from 1 to ${MAX_WORKERS}, got ${show(s.workers)}`);
  const workers: number | 'auto' = workersValid && s.workers !== undefined ? (s.workers as number | 'auto') : 1;
  const pp = asSection(s.proxyProtocol, 'server.proxyProtocol', errors);
  rejectUnknown(pp, ['enabled', 'allowedNetworks'], 'server.proxyProtocol', errors);
  const proxyProtocol: ProxyProtocolConfig = {
    enabled: bool(pp, 'enabled', 'server.proxyProtocol', errors, false),
    allowedNetworks: strList(pp, 'allowedNetworks', 'server.proxyProtocol', errors, []),
  };
  proxyProtocol.allowedNetworks.forEach((cidr, i) => {
    if (!isCidr(cidr)) errors.push(`server.proxyProtocol: option 'allowedNetworks[${i}]' must be a CIDR like 10.0.0.0/16, got ${show(cidr)}`);
  });
  if (proxyProtocol.enabled && proxyProtocol.allowedNetworks.length === 0) {
    errors.push(`server.proxyProtocol: option 'allowedNetworks' must list the load balancers' networks when 'enabled' is true, got []`);
  }

  const t = asSection(root.tls, 'tls', errors);
  const tlsSource = oneOf(t, 'source', 'tls', errors, ['self-signed-dev', 'file', 'acme', 'imported', 'offloaded'] as const, 'self-signed-dev');
  let tls: TlsConfig;
  if (tlsSource === 'acme') {
    rejectUnknown(t, ['source', 'domains', 'email', 'directoryUrl', 'keyType', 'challenge', 'renewBeforeDays', 'directoryCaFile'], 'tls', errors);
    const domains = strList(t, 'domains', 'tls', errors, [safeHostname(publicOrigin)]);
    domains.forEach((d, i) => {
      if (!HOST_NAME.test(d)) errors.push(`tls: option 'domains[${i}]' must be a host name, got ${show(d)}`);
    });
    if (domains.length === 0) errors.push(`tls: option 'domains' must name at least one host, got []`);
    const email = str(t, 'email', 'tls', errors, undefined, { nonEmpty: true, required: true });
    if (email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) errors.push(`tls: option 'email' must be an e-mail address, got ${show(email)}`);
    const directoryUrl = str(t, 'directoryUrl', 'tls', errors, LETS_ENCRYPT_DIRECTORY, { nonEmpty: true });
    if (!isHttpUrl(directoryUrl)) errors.push(`tls: option 'directoryUrl' must be an http(s) URL, got ${show(directoryUrl)}`);
    const keyType = oneOf(t, 'keyType', 'tls', errors, ['ecdsa', 'rsa'] as const, 'ecdsa');
    const challenge = oneOf(t, 'challenge', 'tls', errors, ['http-01', 'tls-alpn-01'] as const, httpPort !== 0 ? 'http-01' : 'tls-alpn-01');
    if (challenge === 'http-01' && httpPort === 0) errors.push(`tls: option 'challenge' "http-01" needs server.httpPort (the plain-HTTP listener), got server.httpPort 0`);
    const renewBeforeDays = int(t, 'renewBeforeDays', 'tls', errors, 30, 7, 60);
    const directoryCaFile = optStr(t, 'directoryCaFile', 'tls', errors);
    tls = { source: 'acme', domains, email, directoryUrl, keyType, challenge, renewBeforeDays, ...(directoryCaFile ? { directoryCaFile } : {}) };
  } else if (tlsSource === 'imported') {
    rejectUnknown(t, ['source', 'secretArn'], 'tls', errors);
    const secretArn = optStr(t, 'secretArn', 'tls', errors);
    if (secretArn !== undefined && !/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/.test(secretArn)) {
      errors.push(`tls: option 'secretArn' must be a Secrets Manager secret ARN, got ${show(secretArn)}`);
    }
    tls = { source: 'imported', ...(secretArn ? { secretArn } : {}) };
  } else if (tlsSource === 'offloaded') {
    rejectUnknown(t, ['source'], 'tls', errors);
    tls = { source: 'offloaded' };
  } else if (tlsSource === 'file') {
    rejectUnknown(t, ['source', 'certFile', 'keyFile'], 'tls', errors);
    tls = {
      source: 'file',
      certFile: str(t, 'certFile', 'tls', errors, undefined, { nonEmpty: true, required: true }),
      keyFile: str(t, 'keyFile', 'tls', errors, undefined, { nonEmpty: true, required: true }),
    };
  } else {
    rejectUnknown(t, ['source'], 'tls', errors);
    tls = { source: 'self-signed-dev' };
  }

  const st = asSection(root.store, 'store', errors);
  const kind = oneOf(st, 'kind', 'store', errors, ['sqlite', 'dynamodb'] as const, 'sqlite');
  let store: StoreConfig;
  if (kind === 'dynamodb') {
    rejectUnknown(st, ['kind', 'table', 'region', 'endpoint'], 'store', errors);
    const table = str(st, 'table', 'store', errors, undefined, { nonEmpty: true, required: true });
    if (table && !/^[a-zA-Z0-9_.-]{3,255}$/.test(table)) {
      errors.push(`store: option 'table' must be a DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -), got ${show(table)}`);
    }
    const region = optStr(st, 'region', 'store', errors);
    const endpoint = optStr(st, 'endpoint', 'store', errors);
    if (endpoint !== undefined && !isHttpUrl(endpoint)) errors.push(`store: option 'endpoint' must be an http(s) URL, got ${show(endpoint)}`);
    store = { kind: 'dynamodb', table, ...(region ? { region } : {}), ...(endpoint ? { endpoint } : {}) };
  } else {
    rejectUnknown(st, ['kind', 'file'], 'store', errors);
    store = { kind: 'sqlite', file: str(st, 'file', 'store', errors, joinPath(dataDir, 'kanmon.db'), { nonEmpty: true }) };
  }

  const se = asSection(root.secrets, 'secrets', errors);
  const provider = oneOf(se, 'provider', 'secrets', errors, ['local', 'kms'] as const, 'local');
  let secrets: SecretsConfig;
  if (provider === 'kms') {
    rejectUnknown(se, ['provider', 'keyId', 'region'], 'secrets', errors);
    const region = optStr(se, 'region', 'secrets', errors);
    secrets = { provider: 'kms', keyId: str(se, 'keyId', 'secrets', errors, undefined, { nonEmpty: true, required: true }), ...(region ? { region } : {}) };
  } else {
    rejectUnknown(se, ['provider'], 'secrets', errors);
    secrets = { provider: 'local' };
  }

  const w = asSection(root.webauthn, 'webauthn', errors);
  rejectUnknown(w, ['rpId', 'rpName', 'origins', 'userVerification', 'challengeTtlSeconds', 'mdsBlobFile', 'mdsRootCertFile'], 'webauthn', errors);
  const originHost = safeHostname(publicOrigin);
  const rpId = str(w, 'rpId', 'webauthn', errors, originHost, { nonEmpty: true });
  if (rpId && !HOST_NAME.test(rpId)) errors.push(`webauthn: option 'rpId' must be a host name, got ${show(rpId)}`);
  if (rpId && originHost && !(originHost === rpId || originHost.endsWith(`.${rpId}`))) {
    errors.push(`webauthn: option 'rpId' must be server.publicOrigin's host or a parent domain of it, got ${show(rpId)} for ${show(publicOrigin)}`);
  }
  const origins = strList(w, 'origins', 'webauthn', errors, [publicOrigin]);
  origins.forEach((o, i) => {
    if (!isOrigin(o)) errors.push(`webauthn: option 'origins[${i}]' must be an origin like https://host[:port], got ${show(o)}`);
  });
  const webauthn: WebAuthnConfig = {
    rpId,
    rpName: str(w, 'rpName', 'webauthn', errors, 'Kanmon', { nonEmpty: true }),
    origins,
    userVerification: oneOf(w, 'userVerification', 'webauthn', errors, ['required', 'preferred'] as const, 'required'),
    challengeTtlSeconds: int(w, 'challengeTtlSeconds', 'webauthn', errors, 300, 30, 600),
  };
  const mdsBlobFile = optStr(w, 'mdsBlobFile', 'webauthn', errors);
  if (mdsBlobFile) Object.assign(webauthn, { mdsBlobFile });
  const mdsRootCertFile = optStr(w, 'mdsRootCertFile', 'webauthn', errors);
  if (mdsRootCertFile && !mdsBlobFile) errors.push(`webauthn: option 'mdsRootCertFile' needs 'mdsBlobFile', got only ${show(mdsRootCertFile)}`);
  if (mdsRootCertFile) Object.assign(webauthn, { mdsRootCertFile });

  const ss = asSection(root.session, 'session', errors);
  rejectUnknown(ss, ['idleTimeoutSeconds', 'absoluteTimeoutSeconds', 'cacheSeconds', 'cacheMaxEntries'], 'session', errors);
  const session: SessionConfig = {
    idleTimeoutSeconds: int(ss, 'idleTimeoutSeconds', 'session', errors, 1800, 60, 7 * 86400),
    absoluteTimeoutSeconds: int(ss, 'absoluteTimeoutSeconds', 'session', errors, 43200, 60, 30 * 86400),
    cacheSeconds: int(ss, 'cacheSeconds', 'session', errors, 5, 0, 60),
    cacheMaxEntries: int(ss, 'cacheMaxEntries', 'session', errors, 100000, 100, 10_000_000),
  };
  if (session.idleTimeoutSeconds > session.absoluteTimeoutSeconds) {
    errors.push(`session: option 'idleTimeoutSeconds' must not exceed 'absoluteTimeoutSeconds', got ${session.idleTimeoutSeconds} > ${session.absoluteTimeoutSeconds}`);
  }

  const j = asSection(root.jwt, 'jwt', errors);
  rejectUnknown(j, ['ttlSeconds', 'issuer'], 'jwt', errors);
  const jwt: JwtConfig = {
    ttlSeconds: int(j, 'ttlSeconds', 'jwt', errors, 300, 30, 300),
    issuer: str(j, 'issuer', 'jwt', errors, publicOrigin, { nonEmpty: true }),
  };

  const e = asSection(root.enrollment, 'enrollment', errors);
  rejectUnknown(e, ['linkTtlSeconds', 'requireCode', 'requireClientCertificate'], 'enrollment', errors);
  const enrollment: EnrollmentConfig = {
    linkTtlSeconds: int(e, 'linkTtlSeconds', 'enrollment', errors, 86400, 300, 30 * 86400),
    requireCode: bool(e, 'requireCode', 'enrollment', errors, false),
    requireClientCertificate: bool(e, 'requireClientCertificate', 'enrollment', errors, false),
  };
  if (enrollment.requireClientCertificate && tls.source === 'offloaded') {
    errors.push(`enrollment: option 'requireClientCertificate' needs client certificates, which are impossible when tls.source is "offloaded" (TLS ends before Kanmon)`);
  }

  const tp = asSection(root.totp, 'totp', errors);
  rejectUnknown(tp, ['issuer', 'toleranceSteps'], 'totp', errors);
  const totp: TotpConfig = {
    issuer: str(tp, 'issuer', 'totp', errors, webauthn.rpName, { nonEmpty: true }),
    toleranceSteps: int(tp, 'toleranceSteps', 'totp', errors, 1, 0, 10),
  };

  const lp = asSection(root.loginProtection, 'loginProtection', errors);
  rejectUnknown(lp, ['maxFailuresPerUser', 'maxFailuresPerAddress', 'windowSeconds', 'lockoutSeconds', 'delayStepMs'], 'loginProtection', errors);
  const loginProtection: LoginProtectionConfig = {
    maxFailuresPerUser: int(lp, 'maxFailuresPerUser', 'loginProtection', errors, 5, 1, 1000),
    maxFailuresPerAddress: int(lp, 'maxFailuresPerAddress', 'loginProtection', errors, 20, 1, 100000),
    windowSeconds: int(lp, 'windowSeconds', 'loginProtection', errors, 900, 10, 86400),
    lockoutSeconds: int(lp, 'lockoutSeconds', 'loginProtection', errors, 900, 10, 30 * 86400),
    delayStepMs: int(lp, 'delayStepMs', 'loginProtection', errors, 250, 0, 5000),
  };

  const caSection = asSection(root.ca, 'ca', errors);
  rejectUnknown(caSection, ['commonName', 'organization', 'organizationalUnit', 'country', 'crlValidityHours'], 'ca', errors);
  const ca: CaConfig = {
    commonName: dnString(caSection, 'commonName', 'ca', errors, `${webauthn.rpName} Client CA`.slice(0, 64)) ?? 'Kanmon Client CA',
    crlValidityHours: int(caSection, 'crlValidityHours', 'ca', errors, 24, 1, 24 * 31),
  };
  const caOrganization = dnString(caSection, 'organization', 'ca', errors);
  if (caOrganization !== undefined) Object.assign(ca, { organization: caOrganization });
  const caUnit = dnString(caSection, 'organizationalUnit', 'ca', errors);
  if (caUnit !== undefined) Object.assign(ca, { organizationalUnit: caUnit });
  const caCountry = optStr(caSection, 'country', 'ca', errors);
  if (caCountry !== undefined) {
    // X.520 countryName is a PrintableString of exactly two ISO 3166 letters (RFC 5280 Appendix A.1).
    if (/^[A-Z]{2}$/.test(caCountry)) Object.assign(ca, { country: caCountry });
    else errors.push(`ca: option 'country' must be a two-letter upper-case ISO 3166 code such as "JP", got ${show(caCountry)}`);
  }

  const cc = asSection(root.clientCertificates, 'clientCertificates', errors);
  rejectUnknown(
    cc,
    ['lifetimeDays', 'keyType', 'maxActivePerUser', 'maxDownloadsPerIssuance', 'downloadLinkTtlSeconds', 'statusCacheSeconds', 'renewBeforeDays'],
    'clientCertificates',
    errors,
  );
  const clientCertificates: ClientCertificatesConfig = {
    // At most 825 days: what Apple platforms accept for a TLS certificate, and well inside the CA's 10 years.
    lifetimeDays: int(cc, 'lifetimeDays', 'clientCertificates', errors, 365, 1, 825),
    keyType: oneOf(cc, 'keyType', 'clientCertificates', errors, ['ec-p256', 'rsa-2048'] as const, 'ec-p256'),
    maxActivePerUser: int(cc, 'maxActivePerUser', 'clientCertificates', errors, 5, 1, 100),
    maxDownloadsPerIssuance: int(cc, 'maxDownloadsPerIssuance', 'clientCertificates', errors, 3, 1, 20),
    downloadLinkTtlSeconds: int(cc, 'downloadLinkTtlSeconds', 'clientCertificates', errors, 7 * 86400, 300, 30 * 86400),
    statusCacheSeconds: int(cc, 'statusCacheSeconds', 'clientCertificates', errors, 5, 0, 60),
    renewBeforeDays: int(cc, 'renewBeforeDays', 'clientCertificates', errors, 30, 1, 365),
  };
  if (clientCertificates.renewBeforeDays >= clientCertificates.lifetimeDays) {
    errors.push(
      `clientCertificates: option 'renewBeforeDays' must be less than 'lifetimeDays' (${clientCertificates.lifetimeDays}), got ${clientCertificates.renewBeforeDays}`,
    );
  }

  const mt0 = asSection(root.mtls, 'mtls', errors);
  rejectUnknown(mt0, ['enforcement', 'extraTrustedCaFiles', 'requiredFor'], 'mtls', errors);
  const rf = asSection(mt0.requiredFor, 'mtls.requiredFor', errors);
  rejectUnknown(rf, ['all', 'groups', 'users'], 'mtls.requiredFor', errors);
  const mtls: MtlsConfig = {
    enforcement: oneOf(mt0, 'enforcement', 'mtls', errors, ['policy', 'reject-connection'] as const, 'policy'),
    extraTrustedCaFiles: strList(mt0, 'extraTrustedCaFiles', 'mtls', errors, []),
    requiredFor: {
      all: bool(rf, 'all', 'mtls.requiredFor', errors, false),
      groups: strList(rf, 'groups', 'mtls.requiredFor', errors, [], GROUP_OR_USER),
      users: strList(rf, 'users', 'mtls.requiredFor', errors, [], GROUP_OR_USER),
    },
  };
  mtls.extraTrustedCaFiles.forEach((f, i) => {
    if (f.trim() === '') errors.push(`mtls: option 'extraTrustedCaFiles[${i}]' must be a file path, got ${show(f)}`);
  });
  if (tls.source === 'offloaded') {
    // The certificate is part of the TLS handshake (RFC 8446 §4.4.2): where TLS ends before
    // Kanmon, Kanmon never sees one, and a header claiming it would be trusted hearsay.
    if (mtls.enforcement === 'reject-connection') {
      errors.push(`mtls: option 'enforcement' "reject-connection" is impossible when tls.source is "offloaded" (TLS ends before Kanmon); use "acme", "imported" or "file"`);
    }
    const rq = mtls.requiredFor;
    if (rq.all || rq.groups.length > 0 || rq.users.length > 0) {
      errors.push(`mtls: option 'requiredFor' needs client certificates, which are impossible when tls.source is "offloaded" (TLS ends before Kanmon)`);
    }
  }

  const groups: Record<string, GroupPolicyConfig> = {};
  const gs = asSection(root.groups, 'groups', errors);
  for (const [name, raw] of Object.entries(gs)) {
    const where = `groups[${JSON.stringify(name)}]`;
    if (!GROUP_OR_USER.test(name)) errors.push(`groups: group name must have no spaces or commas, got ${show(name)}`);
    const g = asSection(raw, where, errors);
    rejectUnknown(g, ['deviceBoundPasskeys', 'offerClientCertificate'], where, errors);
    const offerClientCertificate = bool(g, 'offerClientCertificate', where, errors, false);
    groups[name] = { deviceBoundPasskeys: bool(g, 'deviceBoundPasskeys', where, errors, false), ...(offerClientCertificate ? { offerClientCertificate } : {}) };
  }

  const routes = validateRoutes(root.routes, errors);
  // A route's timeouts can only tighten the global ones: the session ends at the global limits anyway.
  routes.forEach((r, i) => {
    const { idleTimeoutSeconds: idle, absoluteTimeoutSeconds: absolute } = r.policy;
    if (idle !== undefined && idle > session.idleTimeoutSeconds) {
      errors.push(`routes[${i}].policy: option 'idleTimeoutSeconds' may only tighten session.idleTimeoutSeconds (${session.idleTimeoutSeconds}), got ${idle}`);
    }
    if (absolute !== undefined && absolute > session.absoluteTimeoutSeconds) {
      errors.push(`routes[${i}].policy: option 'absoluteTimeoutSeconds' may only tighten session.absoluteTimeoutSeconds (${session.absoluteTimeoutSeconds}), got ${absolute}`);
    }
  });
  if (tls.source === 'offloaded') {
    for (const r of routes) {
      if (routeUsesMtls(r)) {
        errors.push(`routes: route ${show(r.id)} needs the 'mtls' factor, which is impossible when tls.source is "offloaded" (TLS ends before Kanmon); use "acme", "imported" or "file"`);
      }
    }
  }

  const l = asSection(root.log, 'log', errors);
  rejectUnknown(l, ['level'], 'log', errors);
  const level = oneOf(l, 'level', 'log', errors, ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info');

  const n = asSection(root.notifications, 'notifications', errors);
  const notifyKind = oneOf(n, 'kind', 'notifications', errors, ['log', 'sns'] as const, 'log');
  let notifications: NotificationsConfig;
  const mail = readMail(n.mail, errors);
  const certificateExpiryDays = readExpiryDays(n, errors);
  const adminRecipients = readAdminRecipients(n.adminRecipients, errors);
  const notifyCommon = { ...(mail ? { mail } : {}), certificateExpiryDays, adminRecipients };
  if (notifyKind === 'sns') {
    rejectUnknown(n, ['kind', 'topicArn', 'region', 'mail', 'certificateExpiryDays', 'adminRecipients'], 'notifications', errors);
    const topicArn = str(n, 'topicArn', 'notifications', errors, undefined, { nonEmpty: true, required: true });
    const region = optStr(n, 'region', 'notifications', errors);
    notifications = { kind: 'sns', topicArn, ...(region ? { region } : {}), ...notifyCommon };
  } else {
    rejectUnknown(n, ['kind', 'mail', 'certificateExpiryDays', 'adminRecipients'], 'notifications', errors);
    notifications = { kind: 'log', ...notifyCommon };
  }

  const mt = asSection(root.metrics, 'metrics', errors);
  rejectUnknown(mt, ['emf', 'namespace'], 'metrics', errors);
  const metrics = {
    emf: bool(mt, 'emf', 'metrics', errors, false),
    namespace: str(mt, 'namespace', 'metrics', errors, 'Kanmon', { nonEmpty: true }),
  };

  const ad = asSection(root.admin, 'admin', errors);
  rejectUnknown(ad, ['deviceBound', 'requireMtls', 'reauthSeconds'], 'admin', errors);
  const admin: AdminConfig = {
    deviceBound: bool(ad, 'deviceBound', 'admin', errors, false),
    requireMtls: bool(ad, 'requireMtls', 'admin', errors, false),
    reauthSeconds: int(ad, 'reauthSeconds', 'admin', errors, 600, 30, 3600),
  };
  if (admin.requireMtls && tls.source === 'offloaded') {
    errors.push(`admin: option 'requireMtls' needs client certificates, which are impossible when tls.source is "offloaded" (TLS ends before Kanmon)`);
  }

  const directory = validateDirectory(root.directory, errors);

  if (errors.length > 0) return { ok: false, errors };
  const config: KanmonConfig = {
    dataDir,
    server: { port, host, publicOrigin, healthPort, portalBodyLimitBytes, httpPort, proxyProtocol, shutdownGraceSeconds, drainDelaySeconds, workers },
    tls,
    store,
    secrets,
    webauthn,
    session,
    jwt,
    enrollment,
    totp,
    loginProtection,
    ca,
    clientCertificates,
    mtls,
    groups,
    routes,
    log: { level },
    notifications,
    metrics,
    admin,
    directory,
  };
  return { ok: true, config: deepFreeze(config) };
}

/** A mail address Kanmon may put in an envelope and a header: one addr-spec, no display name, nothing that could start a new header line. */
export const MAIL_ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

function readMail(raw: unknown, errors: string[]): MailConfig | undefined {
  if (raw === undefined) return undefined;
  const where = 'notifications.mail';
  const m = asSection(raw, where, errors);
  rejectUnknown(m, ['transport', 'host', 'port', 'security', 'from', 'username', 'passwordEnv', 'caFile'], where, errors);
  const transport = oneOf(m, 'transport', where, errors, ['smtp'] as const, 'smtp');
  const host = str(m, 'host', where, errors, undefined, { nonEmpty: true, required: true });
  if (host && !HOST_NAME.test(host) && !/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) errors.push(`${where}: option 'host' must be a host name, got ${show(host)}`);
  const security = oneOf(m, 'security', where, errors, ['starttls', 'tls', 'none'] as const, 'starttls');
  const port = int(m, 'port', where, errors, security === 'tls' ? 465 : security === 'none' ? 25 : 587, 1, 65535);
  const from = str(m, 'from', where, errors, undefined, { nonEmpty: true, required: true });
  // "Name <addr>" or a bare address; the address part must be one we would accept as a recipient.
  const fromAddress = /<([^<>]*)>\s*$/.exec(from)?.[1] ?? from;
  if (from && (!MAIL_ADDRESS.test(fromAddress) || /[\r\n]/.test(from) || from.length > 200)) {
    errors.push(`${where}: option 'from' must be an address like "Kanmon <kanmon@example.com>", got ${show(from)}`);
  }
  const username = optStr(m, 'username', where, errors);
  const passwordEnv = optStr(m, 'passwordEnv', where, errors);
  if (passwordEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(passwordEnv)) {
    errors.push(`${where}: option 'passwordEnv' must name an environment variable, got ${show(passwordEnv)}`);
  }
  if ((username === undefined) !== (passwordEnv === undefined)) {
    errors.push(`${where}: options 'username' and 'passwordEnv' go together, got only ${username === undefined ? "'passwordEnv'" : "'username'"}`);
  }
  if (username !== undefined && security === 'none') {
    errors.push(`${where}: option 'username' would send the SMTP password in plain text; use security "starttls" or "tls", got "none"`);
  }
  const caFile = optStr(m, 'caFile', where, errors);
  return {
    transport,
    host,
    port,
    security,
    from,
    ...(username !== undefined ? { username } : {}),
    ...(passwordEnv !== undefined ? { passwordEnv } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
  };
}

/** At most this many administrator mail recipients. */
export const MAX_ADMIN_RECIPIENTS = 50;

function readAdminRecipients(raw: unknown, errors: string[]): string[] {
  if (raw === undefined) return [];
  const bad = Array.isArray(raw) ? raw.filter((a) => typeof a !== 'string' || /[\u0000-\u001f\u007f]/.test(a) || a.length > 254 || !MAIL_ADDRESS.test(a)) : [];
  if (!Array.isArray(raw) || raw.length > MAX_ADMIN_RECIPIENTS || bad.length > 0) {
    const what = !Array.isArray(raw) ? `got ${show(raw)}` : raw.length > MAX_ADMIN_RECIPIENTS ? `got ${raw.length}` : `got ${show(bad[0])}`;
    errors.push(`notifications: option 'adminRecipients' must be a list of at most ${MAX_ADMIN_RECIPIENTS} plain e-mail addresses like "ops@example.com", ${what}`);
    return [];
  }
  return [...new Set(raw as string[])];
}

function readExpiryDays(n: Record<string, unknown>, errors: string[]): number[] {
  const raw = n.certificateExpiryDays;
  if (raw === undefined) return [30, 7, 1];
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 10 || !raw.every((d) => Number.isInteger(d) && d >= 1 && d <= 365)) {
    errors.push(`notifications: option 'certificateExpiryDays' must be 1-10 whole numbers of days from 1 to 365, got ${show(raw)}`);
    return [30, 7, 1];
  }
  return [...new Set(raw as number[])].sort((a, b) => b - a);
}
