import type { Logger } from 'pino';
import { BulkCertificateOperations } from '../ca/bulk.js';
import { CertificateAuthorityService } from '../ca/ca-service.js';
import { ClientCertificateService } from '../ca/client-certificates.js';
import type { KanmonConfig } from '../config/schema.js';
import { SigningKeyService } from '../jwt/signing-keys.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { Store } from '../store/types.js';
import { ServerCertificateDocuments } from '../tls/server-certificate-documents.js';
import { ServerCertificateService } from '../tls/server-certificate-service.js';
import { AuthenticatorMetadata } from '../webauthn/authenticator-metadata.js';
import { AdminConsoleService } from './admin-console.js';
import { AdminReauthService } from './admin-reauth.js';
import { UpstreamCredentialService } from './upstream-credentials.js';
import { AuditLog } from './audit-log.js';
import { EnrollmentService } from './enrollment.js';
import { FallbackLoginService } from './fallback-login.js';
import { LoginGuard } from './login-guard.js';
import { PasskeyAccountService } from './passkey-account.js';
import { PasskeyLoginService } from './passkey-login.js';
import { RecoveryCodeService } from './recovery-codes.js';
import { SessionService } from './sessions.js';
import { TotpService } from './totp.js';
import { UserService } from './users.js';
import { CertificateDistributionService } from './certificate-distribution.js';
import { ContactAddressService } from './contact-addresses.js';
import { DeviceEnrollmentService } from './device-enrollment.js';
import { createMailer } from '../notify/create-mailer.js';
import type { Mailer } from '../notify/mailer.js';
import { UserImportService } from './user-import.js';
import { DirectorySyncService } from './directory-sync.js';
import { ConfigVersionService } from './config-versions.js';
import { ImportStagingService } from './import-staging.js';
import { liveView } from '../config/live.js';
import type { RequestContext } from './request-context.js';

/** Every service; HTTP handlers and the CLI both call these, never the store. */
export interface Services {
  /** CSV and directory imports: a dry-run plan and an idempotent apply. */
  readonly userImport: UserImportService;
  /** LDAP / Active Directory sync, when config.directory.ldap is set. */
  readonly directorySync?: DirectorySyncService;
  readonly audit: AuditLog;
  readonly users: UserService;
  readonly sessions: SessionService;
  readonly enrollment: EnrollmentService;
  readonly passkeyLogin: PasskeyLoginService;
  readonly passkeyAccount: PasskeyAccountService;
  readonly signingKeys: SigningKeyService;
  readonly totp: TotpService;
  readonly recoveryCodes: RecoveryCodeService;
  readonly fallbackLogin: FallbackLoginService;
  /** Authenticator names, attestation roots and status reports (built-in, plus a FIDO MDS BLOB when configured). */
  readonly metadata: AuthenticatorMetadata;
  /** Kanmon's client-certificate CA: made on first use, its certificate, its CRL. */
  readonly ca: CertificateAuthorityService;
  /** Client certificates: issue, download, revoke, delete, and the check of a presented certificate. */
  readonly clientCertificates: ClientCertificateService;
  /** Certificate operations over a list of users, each with its own result. */
  readonly certificateBulk: BulkCertificateOperations;
  /** Users' e-mail addresses, for certificate links and expiry warnings. */
  readonly contacts: ContactAddressService;
  /** A certificate's download link by mail or on a printed letter. */
  readonly certificateDistribution: CertificateDistributionService;
  /** The client-certificate gate on enrollment, and the certificate offered right after it. */
  readonly deviceEnrollment: DeviceEnrollmentService;
  /** Mail to one recipient (notifications.mail); absent when not configured. */
  readonly mailer?: Mailer;
  /** Throttling and lockout for every sign-in path; `kanmon user unlock` clears a lock here. */
  readonly loginGuard: LoginGuard;
  /** The console's user search and edits, every active session, audit views. */
  readonly adminConsole: AdminConsoleService;
  /** Fresh passkey assertions for the console's sensitive actions. */
  readonly adminReauth: AdminReauthService;
  /** Sealed upstream credentials (legacy form login, HTTP Basic, API headers), per user or shared, per route. */
  readonly upstreamCredentials: UpstreamCredentialService;
  /** The server certificate kept in the store (acme, imported): status, renewal under the store lease, import. */
  readonly serverCertificates: ServerCertificateService;
  /** Routes, policies and live settings as versions in the store: save, diff, rollback, import, export. */
  readonly configVersions: ConfigVersionService;
  /** A console CSV upload kept between its dry run and its apply. */
  readonly importStaging: ImportStagingService;
}

export function createServices(deps: {
  config: KanmonConfig;
  store: Store;
  secrets: SecretBox;
  logger: Logger;
  now?: () => number;
  /** Where the running config is read when it changes while Kanmon runs (runtime/config/live.ts); default: `config`, fixed. */
  live?: { readonly config: KanmonConfig };
}): Services {
  const { config, store, logger } = deps;
  // Settings an administrator may change while Kanmon runs are read through these views at each use.
  const live = deps.live ?? { config };
  const now = deps.now ?? Date.now;
  const audit = new AuditLog(store, logger, now);
  // Activity is recorded often enough to measure the tightest idle limit, a route's or the global one.
  const sessions = new SessionService(store, () => live.config.session, audit, now, Math.min(config.session.idleTimeoutSeconds, ...config.routes.map((r) => r.policy.idleTimeoutSeconds ?? Infinity)));
  // Disabling a user ends their sessions through the session service, so its end listeners (upstream sign-out) hear of it.
  const endSessions = (userId: string, context: RequestContext) => sessions.endAllOf(userId, context);
  const users = new UserService(store, audit, now, endSessions);
  // Verified once at start; a BLOB that does not verify stops the start-up with the reason (no silent fallback).
  const metadata = AuthenticatorMetadata.fromConfig(config.webauthn, now());
  if (metadata.source) logger.info({ mds: metadata.source }, 'FIDO metadata BLOB loaded');
  if (metadata.isStale(now())) logger.warn({ mds: metadata.source }, 'the FIDO metadata BLOB is past its nextUpdate date; install a newer one');
  const policyTable = { get routes() { return live.config.routes; }, groups: config.groups };
  const rp = config.webauthn;
  const totp = new TotpService({ store, secrets: deps.secrets, audit, config: liveView(() => live.config.totp), now });
  const recoveryCodes = new RecoveryCodeService({ store, audit, now });
  // One guard for every sign-in path, so a lock holds whichever factor is tried next.
  const loginGuard = new LoginGuard({ store, config: liveView(() => live.config.loginProtection), audit, now });
  const ca = new CertificateAuthorityService({ store, secrets: deps.secrets, audit, config: config.ca, now });
  const clientCertificates = new ClientCertificateService({
    store,
    ca,
    secrets: deps.secrets,
    audit,
    config: liveView(() => live.config.clientCertificates),
    publicOrigin: config.server.publicOrigin,
    ...(config.ca.organization ? { organization: config.ca.organization } : {}),
    now,
  });
  const contacts = new ContactAddressService({ documents: store.documents, audit, now });
  const mailer = createMailer(config.notifications.mail, logger);
  const userImport = new UserImportService({ store, audit, now, endSessions });
  const ldap = config.directory.ldap;
  return {
    audit,
    users,
    userImport,
    ...(ldap ? { directorySync: new DirectorySyncService({ config: ldap, imports: userImport, store, password: process.env[ldap.bindPasswordEnv], now }) } : {}),
    sessions,
    passkeyLogin: new PasskeyLoginService({ store, rp, audit, sessions, guard: loginGuard, metadata, now }),
    enrollment: new EnrollmentService({ store, users, audit, rp, enrollment: config.enrollment, publicOrigin: config.server.publicOrigin, policy: policyTable, metadata, now }),
    passkeyAccount: new PasskeyAccountService({ store, rp, audit, policy: policyTable, metadata, now }),
    signingKeys: new SigningKeyService({ store, secrets: deps.secrets, now }),
    totp,
    recoveryCodes,
    fallbackLogin: new FallbackLoginService({ users, sessions, totp, recoveryCodes, audit, guard: loginGuard }),
    loginGuard,
    metadata,
    ca,
    clientCertificates,
    certificateBulk: new BulkCertificateOperations({ certificates: clientCertificates, users, now }),
    contacts,
    certificateDistribution: new CertificateDistributionService({
      certificates: clientCertificates,
      users,
      contacts,
      audit,
      ...(mailer ? { mailer } : {}),
      organisation: config.ca.organization ?? config.webauthn.rpName,
    }),
    deviceEnrollment: new DeviceEnrollmentService({ config, certificates: clientCertificates, documents: store.documents, audit, now }),
    ...(mailer ? { mailer } : {}),
    adminConsole: new AdminConsoleService({ store, audit, sessions, idleTimeoutSeconds: () => live.config.session.idleTimeoutSeconds, now }),
    adminReauth: new AdminReauthService({ store, rp, audit, metadata, now }),
    // Trusted per node for as long as a session is (session.cacheSeconds): a signed-in request costs no store read.
    upstreamCredentials: new UpstreamCredentialService({ documents: store.documents, secrets: deps.secrets, audit, routes: () => live.config.routes, now, cacheSeconds: () => live.config.session.cacheSeconds }),
    serverCertificates: new ServerCertificateService({
      tls: config.tls,
      documents: store.documents,
      certificates: new ServerCertificateDocuments(store.documents, deps.secrets),
      audit: (input) => audit.record(input),
      logger,
      now,
    }),
    configVersions: new ConfigVersionService({ documents: store.documents, audit, base: config, now }),
    importStaging: new ImportStagingService({ documents: store.documents, now }),
  };
}
