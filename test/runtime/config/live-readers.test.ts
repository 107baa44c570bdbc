/**
 * Parts of a running node that read live config at each use rather than once at start: the
 * client-certificate expiry warnings (notifications.certificateExpiryDays,
 * clientCertificates.renewBeforeDays), the self-check's upstream list (the live routes), and
 * the console's list of active sessions (session.idleTimeoutSeconds). A real Kanmon with TLS
 * and SQLite; changes arrive as stored config versions, as from the console.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KanmonHarness } from '../../support/kanmon-harness.js';
import { SESSION_COOKIE, sessionIdFromToken } from '../../../runtime/services/sessions.js';

const DAY = 86_400_000;
const DEMO = { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' };

let h: KanmonHarness;
let upstream: Server;
beforeAll(async () => {
  h = await KanmonHarness.start({
    routes: [DEMO],
    clientCertificates: { lifetimeDays: 20, renewBeforeDays: 15 },
    notifications: { certificateExpiryDays: [7, 1] },
    session: { idleTimeoutSeconds: 3600, absoluteTimeoutSeconds: 43200 },
  });
  // An upstream that only accepts TCP: enough for the self-check's reachability probe.
  upstream = createServer((s) => s.destroy());
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  await h?.close();
  await new Promise((r) => upstream?.close(r));
});

/** Saves a state as a new config version; this node applies its own save at once (polled for here). */
async function save(state: Record<string, unknown>, applied: () => boolean | Promise<boolean>): Promise<void> {
  const saved = await h.app.services.configVersions.save({ routes: [DEMO], ...state }, { author: 'test' });
  if (!saved.ok) throw new Error(saved.errors.join('\n'));
  for (let i = 0; i < 100 && !(await applied()); i++) await new Promise((r) => setTimeout(r, 50));
}

describe('live settings read at each use', () => {
  it('expiry warnings use the thresholds and renewal window of the version in force at each run', async () => {
    const user = await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
    // 20 days of life: inside renewBeforeDays (15)? no; inside a 7- or 1-day threshold? no.
    const issued = await h.app.services.clientCertificates.issueForUser(user, { deviceLabel: 'laptop' });
    expect(issued.certificate.expiresAt - Date.now()).toBeGreaterThan(19 * DAY);
    const first = await h.app.certificateExpiryWarnings.runOnce();
    expect(first).toMatchObject({ ran: true, warned: [], expiringCount: 0 });

    // The administrator warns 30 days ahead now, and counts 25 days as due for renewal.
    let run = first;
    await save({ notifications: { certificateExpiryDays: [30] }, clientCertificates: { lifetimeDays: 40, renewBeforeDays: 25 } }, async () => {
      run = await h.app.certificateExpiryWarnings.runOnce();
      return run.warned.length > 0;
    });
    expect(run.warned.map((w) => [w.serial, w.thresholdDays])).toEqual([[issued.certificate.serial, 30]]);
    expect(run.expiringCount).toBe(1);
    expect(h.app.metrics.read('clientCertificatesExpiring', {})).toBe(1);
  });

  it("the self-check probes the upstreams of the routes in force, and drops a removed route's", async () => {
    await h.app.selfCheck.runOnce();
    expect(h.app.selfCheck.snapshot().map((r) => r.name)).toContain('upstream:demo');
    const port = (upstream.address() as { port: number }).port;
    const extra = { id: 'extra', match: { pathPrefix: '/extra' }, upstream: `http://127.0.0.1:${port}` };
    await save({ routes: [DEMO, extra] }, async () => {
      await h.app.selfCheck.runOnce();
      return h.app.selfCheck.snapshot().some((r) => r.name === 'upstream:extra');
    });
    expect(h.app.selfCheck.snapshot().find((r) => r.name === 'upstream:extra')).toMatchObject({ state: 'ok' });

    await save({ routes: [DEMO] }, async () => {
      await h.app.selfCheck.runOnce();
      return !h.app.selfCheck.snapshot().some((r) => r.name === 'upstream:extra');
    });
    expect(h.app.selfCheck.snapshot().map((r) => r.name)).not.toContain('upstream:extra');
    expect(h.app.selfCheck.snapshot().map((r) => r.name)).toContain('upstream:demo');
  });

  it("the console's active sessions follow the live idle timeout", async () => {
    const user = await h.app.services.users.addUser({ username: 'idler', groups: [], actor: 'test' });
    // Last seen 20 minutes ago: live under the file's hour, idle under a 10-minute limit.
    const token = randomBytes(32).toString('base64url');
    const id = sessionIdFromToken(token);
    const now = Date.now();
    await h.app.store.sessions.create({ id, userId: user.id, authMethods: ['passkey'], createdAt: now - 30 * 60_000, lastSeenAt: now - 20 * 60_000, absoluteExpiresAt: now + 60 * 60_000, ip: '127.0.0.1', userAgent: 'test' });
    const cookie = `${SESSION_COOKIE}=${token}`;
    const listed = async () => (await h.app.services.adminConsole.activeSessions()).some((r) => r.session.id === id);
    expect(await listed()).toBe(true);
    await save({ session: { idleTimeoutSeconds: 600 } }, async () => !(await listed()));
    expect(await listed()).toBe(false);
    // The gateway agrees: the session is over.
    expect((await h.get('/', { cookie, headers: { accept: 'application/json' } })).status).toBe(401);
  });
});
