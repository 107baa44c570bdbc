import type { Logger } from 'pino';
import type { KanmonConfig } from '../config/schema.js';
import { SigningKeyService } from '../jwt/signing-keys.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { Store } from '../store/types.js';
import { AuditLog } from './audit-log.js';
import { EnrollmentService } from './enrollment.js';
import { FallbackLoginService } from './fallback-login.js';
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
}

export function createServices(deps: { config: KanmonConfig; store: Store; secrets: SecretBox; logger: Logger; now?: () => number }): Services {
  const { config, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const audit = new AuditLog(store, logger, now);
  const users = new UserService(store, audit, now);
  const sessions = new SessionService(store, config.session, audit, now);
  const rp = config.webauthn;
  const totp = new TotpService({ store, secrets: deps.secrets, audit, config: config.totp, now });
  const recoveryCodes = new RecoveryCodeService({ store, audit, now });
  return {
    audit,
    users,
    sessions,
    enrollment: new EnrollmentService({ store, users, audit, rp, enrollment: config.enrollment, publicOrigin: config.server.publicOrigin, now }),
    passkeyLogin: new PasskeyLoginService({ store, rp, audit, sessions, now }),
    passkeyAccount: new PasskeyAccountService({ store, rp, audit, now }),
    signingKeys: new SigningKeyService({ store, secrets: deps.secrets, now }),
    totp,
    recoveryCodes,
    fallbackLogin: new FallbackLoginService({ users, sessions, totp, recoveryCodes, audit }),
  };
}
