/**
 * The administrator's console at /.kanmon/admin.
 *
 * Adding a page: create runtime/admin/pages/<area>.ts exporting `register<Area>(c: AdminConsole)`
 * and add it to PAGES below. Inside, `c.addNav({ href, label, order })` puts it in the
 * navigation; `c.page(path, handler)` serves a GET page, `c.action(path, handler, { sensitive })`
 * a form POST, `c.api(path, handler)` a JSON POST. All three are only reachable by a signed-in
 * administrator whose session meets the `admin` policy (a passkey, plus device-bound or mTLS when
 * configured); POSTs need the CSRF token (`postForm` adds it; the API takes the X-Kanmon-Csrf
 * header); `sensitive` ones (creating an admin, changing a policy, revoking a certificate, bulk
 * operations, exporting) also need a passkey assertion within `admin.reauthSeconds`. Render with
 * `c.render(req, a, { section, title, body })`; record every change with
 * `c.recordChange(req, a, { type, target, before, after })`; call services, never the store.
 * Texts go in runtime/portal/messages/admin.ts, in both languages.
 */
import type { FastifyInstance } from 'fastify';
import type { PortalKit } from '../portal/kit.js';
import { ADMIN_PREFIX, AdminConsole, type AdminConsoleDeps } from './console.js';
import { registerAudit } from './pages/audit.js';
import { registerCertificates } from './pages/certificates.js';
import { registerDashboard } from './pages/dashboard.js';
import { registerEnrollment } from './pages/enrollment.js';
import { registerReauth } from './pages/reauth.js';
import { registerSessions } from './pages/sessions.js';
import { registerUserById, registerUsers } from './pages/users.js';
import { registerRoutes } from './pages/routes.js';
import { registerSettings } from './pages/settings.js';
import { registerImports } from './pages/imports.js';
import { ServiceError } from '../services/errors.js';

export { ADMIN_PREFIX, AdminConsole, type AdminConsoleDeps } from './console.js';

const PAGES: ReadonlyArray<(c: AdminConsole) => void> = [
  registerDashboard,
  registerUsers,
  registerUserById,
  registerEnrollment,
  registerCertificates,
  registerAudit,
  registerSessions,
  registerReauth,
  registerRoutes,
  registerSettings,
  registerImports,
];

/** Registers the console on the portal's fastify instance; returns it so more pages can be added. */
export function registerAdminConsole(app: FastifyInstance, kit: PortalKit, deps: AdminConsoleDeps = {}): AdminConsole {
  const c = new AdminConsole(app, kit, deps);
  for (const register of PAGES) register(c);
  // Anything else under the prefix: the same access rule first (403 for non-admins), then 404.
  const notFound = async () => {
    throw new ServiceError('not-found', 'no such console page');
  };
  c.page(`${ADMIN_PREFIX}/*`, notFound);
  c.action(`${ADMIN_PREFIX}/*`, notFound);
  return c;
}
