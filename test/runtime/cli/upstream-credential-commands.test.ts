/**
 * `kanmon upstream-credentials`: an administrator sets a shared service account and a user's
 * own credentials for a route, and the gateway signs in with them (user's own first).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { runCommand } from '../../../runtime/cli/commands.js';
import { upstreamCredentialsCommand } from '../../../runtime/cli/upstream-credential-commands.js';
import { LEGACY_DEMO_PASSWORD } from '../../../runtime/demo/legacy.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';

let h: KanmonHarness;
let dir: string;
beforeAll(async () => {
  h = await KanmonHarness.start({
    routes: [
      { id: 'demo', match: { pathPrefix: '/' }, upstream: 'demo' },
      { id: 'legacy', match: { pathPrefix: '/legacy' }, upstream: 'demo', upstreamAuth: { kind: 'form', loginUrl: '/legacy/login', credentials: 'user-or-shared' } },
    ],
  });
  await h.app.services.users.addUser({ username: 'hanako', groups: [], actor: 'test' });
  await h.app.services.users.addUser({ username: 'jiro', groups: [], actor: 'test' });
  dir = mkdtempSync(join(tmpdir(), 'kanmon-cli-upstream-'));
  writeFileSync(join(dir, 'password'), `${LEGACY_DEMO_PASSWORD}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function run(...args: string[]): Promise<string> {
  const lines: string[] = [];
  expect(await runCommand(['upstream-credentials', ...args], h.app.services, h.app.config, { out: (l) => lines.push(l) })).toBe(0);
  return lines.join('\n');
}

async function legacyUserOf(username: string): Promise<string | undefined> {
  const user = await h.app.services.users.require(username);
  const page = await h.get('/legacy/', { cookie: await h.sessionCookie(user) });
  return /id="legacy-user">([^<]+)</.exec(page.text)?.[1];
}

describe('kanmon upstream-credentials', () => {
  it('sets the shared service account from a file; users without their own sign in with it', async () => {
    expect(await run('set', 'legacy', '--shared', '--username', 'svc-groupware', '--password-file', join(dir, 'password'))).toContain('stored the shared credentials for legacy');
    expect(await legacyUserOf('jiro')).toBe('svc-groupware');
    expect(await run('status', 'legacy', '--shared')).toMatch(/stored for user name svc-groupware, changed .* by cli/);
  });

  it("sets a user's own credentials from standard input; they win over the shared account", async () => {
    const lines: string[] = [];
    await upstreamCredentialsCommand(['set', 'legacy', '--user', 'hanako', '--username', 'hanako.k', '--password-stdin'], h.app.services, { out: (l) => lines.push(l) }, async () => `${LEGACY_DEMO_PASSWORD}\n`);
    expect(lines.join()).toContain("stored hanako's credentials");
    expect(await legacyUserOf('hanako')).toBe('hanako.k');
    const audit = await h.app.services.audit.tail({ limit: 5 });
    expect(audit.some((e) => e.type === 'upstream.credentials.set' && e.actor === 'cli' && e.username === 'hanako')).toBe(true);
  });

  it('clears, and says so when there was nothing', async () => {
    expect(await run('clear', 'legacy', '--user', 'hanako')).toContain("cleared hanako's credentials");
    expect(await run('clear', 'legacy', '--user', 'hanako')).toContain('were not stored');
    expect(await legacyUserOf('hanako')).toBe('svc-groupware');
  });

  it('refuses bad invocations with a usage error, and unknown routes and users by name', async () => {
    const out = { out: () => undefined };
    await expect(upstreamCredentialsCommand(['set', 'legacy', '--user', 'hanako', '--shared', '--password-stdin'], h.app.services, out)).rejects.toBeInstanceOf(UsageError);
    await expect(upstreamCredentialsCommand(['set', 'legacy', '--shared'], h.app.services, out)).rejects.toBeInstanceOf(UsageError);
    await expect(upstreamCredentialsCommand(['rotate', 'legacy'], h.app.services, out)).rejects.toBeInstanceOf(UsageError);
    await expect(upstreamCredentialsCommand(['status', 'demo', '--shared'], h.app.services, out)).rejects.toThrow(/no route with upstream sign-in/);
    await expect(upstreamCredentialsCommand(['status', 'legacy', '--user', 'nobody'], h.app.services, out)).rejects.toThrow();
  });
});
