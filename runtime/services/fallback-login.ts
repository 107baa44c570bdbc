import type { User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import type { LoginGuard } from './login-guard.js';
import type { RecoveryCodeService } from './recovery-codes.js';
import type { RequestContext } from './request-context.js';
import type { SessionService } from './sessions.js';
import type { TotpService } from './totp.js';
import type { UserService } from './users.js';

/**
 * A fallback sign-in was refused. The client always gets the same generic answer; `reason`
 * (unknown user, wrong code, replayed code, …) goes only to the audit log.
 */
export class FallbackLoginError extends Error {
  constructor(
    readonly method: 'otp' | 'recovery',
    readonly reason: string,
  ) {
    super(`${method} sign-in refused: ${reason}`);
    this.name = 'FallbackLoginError';
  }
}

export interface FallbackLoginResult {
  readonly user: User;
  readonly setCookie: string;
  /** The methods the new session carries, e.g. ['passkey', 'otp'] after a step-up. */
  readonly authMethods: readonly string[];
}

/** Where a recovery-code sign-in lands: the account page, at the step that registers a new passkey. */
export const AFTER_RECOVERY_PATH = '/.kanmon/account?step=add-passkey';

/**
 * Signing in with a username and a code, for users without their passkey: an authenticator
 * app code (TOTP), or a single-use recovery code.
 *
 * Unknown, disabled and unenrolled users go through the same steps as enrolled ones (the
 * code services do their work against dummies), so the answer and the work done are the same
 * whether or not the username exists. Every outcome is audited as a 'login' event. The login
 * guard counts every attempt under the typed username, whether or not it exists, and refuses
 * a locked one unverified with the same answer as a wrong code.
 */
export class FallbackLoginService {
  constructor(
    private readonly deps: {
      users: UserService;
      sessions: SessionService;
      totp: TotpService;
      recoveryCodes: RecoveryCodeService;
      audit: AuditLog;
      guard: LoginGuard;
    },
  ) {}

  /**
   * TOTP sign-in, alone or as a step-up: when the browser already has a session of the same
   * user, the new session carries both methods (e.g. ['passkey', 'otp']). The session is
   * always a fresh one (the old one ends), as at every privilege change.
   */
  async loginWithTotp(input: { username: unknown; code: unknown }, context: RequestContext, previousToken?: string): Promise<FallbackLoginResult> {
    const { user, refusal } = await this.lookUp(input.username);
    const verdict = await this.deps.guard.protect(guardedAttempt(input.username, user, context), async () => {
      const check = await this.deps.totp.verifyForLogin(refusal ? undefined : user!.id, input.code);
      const reason = refusal ?? (check.ok ? undefined : check.reason);
      return reason ? { ok: false, reason } : { ok: true, value: check };
    });
    if (!verdict.ok) return this.refuse('otp', verdict.reason, input.username, user, context);
    const previous = previousToken ? await this.deps.sessions.resolve(previousToken) : undefined;
    const carried = previous && previous.user.id === user!.id ? previous.session.authMethods : [];
    const authMethods = [...new Set([...carried, 'otp'])];
    const started = await this.deps.sessions.start(user!, authMethods, context, previousToken);
    await this.deps.audit.record({
      type: 'login',
      result: 'success',
      method: 'otp',
      userId: user!.id,
      username: user!.username,
      context,
      details: { authMethods, stepUp: carried.length > 0 },
    });
    return { user: user!, setCookie: started.setCookie, authMethods };
  }

  /**
   * Recovery-code sign-in. The session proves only 'recovery' (no route's passkey policy is
   * met by it), and the user is sent to register a new passkey. Audited as a 'login' with
   * method 'recovery', which the app turns into an administrator notification.
   */
  async loginWithRecoveryCode(input: { username: unknown; code: unknown }, context: RequestContext, previousToken?: string): Promise<FallbackLoginResult & { redirect: string; remaining: number }> {
    const { user, refusal } = await this.lookUp(input.username);
    const verdict = await this.deps.guard.protect(guardedAttempt(input.username, user, context), async () => {
      const check = await this.deps.recoveryCodes.consume(refusal ? undefined : user!.id, input.code);
      if (refusal || !check.ok) return { ok: false, reason: refusal ?? (check.ok ? 'wrong-code' : check.reason) };
      return { ok: true, value: check };
    });
    if (!verdict.ok) return this.refuse('recovery', verdict.reason, input.username, user, context);
    const check = verdict.value;
    const authMethods = ['recovery'];
    const started = await this.deps.sessions.start(user!, authMethods, context, previousToken);
    await this.deps.audit.record({
      type: 'login',
      result: 'success',
      method: 'recovery',
      userId: user!.id,
      username: user!.username,
      context,
      details: { remainingCodes: check.remaining },
    });
    return { user: user!, setCookie: started.setCookie, authMethods, redirect: AFTER_RECOVERY_PATH, remaining: check.remaining };
  }

  /** The user behind a typed username, or why there is none to sign in (kept for the audit log). */
  private async lookUp(username: unknown): Promise<{ user?: User; refusal?: string }> {
    if (typeof username !== 'string' || username.length === 0 || username.length > 256) return { refusal: 'malformed-username' };
    const user = await this.deps.users.get(username);
    if (!user) return { refusal: 'unknown-user' };
    if (user.disabled) return { user, refusal: 'user-disabled' };
    return { user };
  }

  private async refuse(method: 'otp' | 'recovery', reason: string, typed: unknown, user: User | undefined, context: RequestContext): Promise<never> {
    await this.deps.audit.record({
      type: 'login',
      result: 'failure',
      method,
      reason,
      context,
      ...(user ? { userId: user.id, username: user.username } : {}),
      ...(!user && typeof typed === 'string' ? { details: { typedUsername: typed.slice(0, 64) } } : {}),
    });
    throw new FallbackLoginError(method, reason);
  }
}

/** What the guard counts: the typed username when it is one (a name nobody has included). */
function guardedAttempt(typed: unknown, user: User | undefined, context: RequestContext) {
  const username = typeof typed === 'string' && typed.length > 0 && typed.length <= 256 ? typed : undefined;
  return { ...(username !== undefined ? { username } : {}), ...(user ? { user } : {}), context };
}
