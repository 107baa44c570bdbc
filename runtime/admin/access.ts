import type { AdminConfig, RouteConfig } from '../config/schema.js';
import { validateRoutes } from '../config/routes.js';
import { decideAccess, type Decision, type PolicyDevice, type PolicyEnvironment } from '../policy/decide.js';
import { policySubjectOf, type ActiveSession } from '../services/sessions.js';

/**
 * The console as a route, so its sign-in rule is decided by the same pure function as every
 * proxied route: a passkey always, device-bound and/or a client certificate when configured.
 * OTP or recovery codes alone never open the console.
 */
export function adminRoute(admin: AdminConfig): RouteConfig {
  // Read through the routes schema, so the console's route has every default a route has.
  const errors: string[] = [];
  const [route] = validateRoutes(
    [{ id: 'kanmon-admin', match: { pathPrefix: '/' }, upstream: 'demo', policy: { factors: [admin.requireMtls ? ['passkey', 'mtls'] : ['passkey']], deviceBound: admin.deviceBound } }],
    errors,
  );
  if (!route || errors.length > 0) throw new Error(`the console's route did not validate: ${errors.join('; ')}`);
  return route;
}

export type AdminAccess =
  | { readonly kind: 'allow' }
  | { readonly kind: 'login' }
  | { readonly kind: 'not-admin' }
  | { readonly kind: 'refused'; readonly decision: Exclude<Decision, { kind: 'allow' }> };

/** Whether this session may use the console, and if not, why. */
export function adminAccess(route: RouteConfig, active: ActiveSession | undefined, device: PolicyDevice, env: PolicyEnvironment): AdminAccess {
  if (!active) return { kind: 'login' };
  if (!active.user.isAdmin || active.user.disabled) return { kind: 'not-admin' };
  const decision = decideAccess(route, policySubjectOf(active), device, env);
  return decision.kind === 'allow' ? { kind: 'allow' } : { kind: 'refused', decision };
}
