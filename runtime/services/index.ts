export { createServices, type Services } from './create-services.js';
export { AuditLog } from './audit-log.js';
export { EnrollmentService } from './enrollment.js';
export { PasskeyAccountService } from './passkey-account.js';
export { PasskeyLoginService } from './passkey-login.js';
export { SessionService, SESSION_COOKIE, sessionIdFromToken, type ActiveSession } from './sessions.js';
export { UserService, normalizeUsername } from './users.js';
export { ServiceError } from './errors.js';
export { CLI_CONTEXT, type RequestContext } from './request-context.js';
