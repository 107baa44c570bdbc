import type { Logger } from 'pino';
import { BulkCertificateOperations } from '../ca/bulk.js';
import { CertificateAuthorityService } from '../ca/ca-service.js';
import { ClientCertificateService } from '../ca/client-certificates.js';
import type { KanmonConfig } from '../config/schema.js';
import { SigningKeyService } from '../jwt/signing-keys.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { Store } from '../store/types.js';
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

/** Every service; HTTP handlers and the CLI both call these, never the store. */
export interface Services {
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
  /** Throttling and lockout for every sign-in path; `kanmon user unlock` clears a lock here. */
  readonly loginGuard: LoginGuard;
  /** The console's user search and edits, every active session, audit views. */
  readonly adminConsole: AdminConsoleService;
  /** Fresh passkey assertions for the console's sensitive actions. */
  readonly adminReauth: AdminReauthService;
  /** Sealed upstream credentials (legacy form login, HTTP Basic, API headers), per user or shared, per route. */
  readonly upstreamCredentials: UpstreamCredentialService;
}

export function createServices(deps: { config: KanmonConfig; store: Store; secrets: SecretBox; logger: Logger; now?: () => number }): Services {
  const { config, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const audit = new AuditLog(store, logger, now);
  const users = new UserService(store, audit, now);
  // Activity is recorded often enough to measure the tightest idle limit, a route's or the global one.
  const sessions = new SessionService(store, config.session, audit, now, Math.min(config.session.idleTimeoutSeconds, ...config.routes.map((r) => r.policy.idleTimeoutSeconds ?? Infinity)));
  // Verified once at start; a BLOB that does not verify stops the start-up with the reason (no silent fallback).
  const metadata = AuthenticatorMetadata.fromConfig(config.webauthn, now());
  if (metadata.source) logger.info({ mds: metadata.source }, 'FIDO metadata BLOB loaded');
  if (metadata.isStale(now())) logger.warn({ mds: metadata.source }, 'the FIDO metadata BLOB is past its nextUpdate date; install a newer one');
  const policyTable = { routes: config.routes, groups: config.groups };
  const rp = config.webauthn;
  const totp = new TotpService({ store, secrets: deps.secrets, audit, config: config.totp, now });
  const recoveryCodes = new RecoveryCodeService({ store, audit, now });
  // One guard for every sign-in path, so a lock holds whichever factor is tried next.
  const loginGuard = new LoginGuard({ store, config: config.loginProtection, audit, now });
  const ca = new CertificateAuthorityService({ store, secrets: deps.secrets, audit, config: config.ca, now });
  const clientCertificates = new ClientCertificateService({
    store,
    ca,
    secrets: deps.secrets,
    audit,
    config: config.clientCertificates,
    publicOrigin: config.server.publicOrigin,
    ...(config.ca.organization ? { organization: config.ca.organization } : {}),
    now,
  });
  return {
    audit,
    users,
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
    adminConsole: new AdminConsoleService({ store, audit, sessions, idleTimeoutSeconds: config.session.idleTimeoutSeconds, now }),
    adminReauth: new AdminReauthService({ store, rp, audit, metadata, now }),
    upstreamCredentials: new UpstreamCredentialService({ documents: store.documents, secrets: deps.secrets, audit, routes: config.routes, now }),
  };
}
