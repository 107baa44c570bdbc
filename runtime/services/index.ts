export { createServices, type Services } from './create-services.js';
export { AuditLog } from './audit-log.js';
export { EnrollmentService } from './enrollment.js';
export { FallbackLoginService, FallbackLoginError, AFTER_RECOVERY_PATH } from './fallback-login.js';
export { LoginGuard, LoginLockedError, MAX_LOGIN_DELAY_MS, loginDelayMs, type GuardedVerdict, type LockKind, type LockedUser, type Verdict } from './login-guard.js';
export { PasskeyAccountService } from './passkey-account.js';
export { PasskeyLoginService } from './passkey-login.js';
export { RecoveryCodeService, RECOVERY_CODE_COUNT, type RecoveryCodeStatus } from './recovery-codes.js';
export { TotpService, type TotpStatus, type TotpEnrollmentView } from './totp.js';
export { SessionService, SESSION_COOKIE, sessionIdFromToken, type ActiveSession } from './sessions.js';
export { UserService, normalizeUsername } from './users.js';
export { ServiceError } from './errors.js';
export { CLI_CONTEXT, type RequestContext } from './request-context.js';
export {
  BulkCertificateOperations,
  CertificateAuthorityService,
  ClientCertificateService,
  type BulkUserResult,
  type CaInfo,
  type IssuedCertificate,
  type PresentedCertificateCheck,
} from '../ca/index.js';
