/**
 * A real OpenLDAP server (Debian's slapd) for directory tests: a throw-away database in a
 * temporary directory, listening on 127.0.0.1 at a free port, with the memberof overlay so both
 * group modes (memberOf on users, group search) can be tested.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { freePort } from './ports.js';

export const SLAPD = '/usr/sbin/slapd';
export const LDAP_BASE = 'dc=corp,dc=example';
export const LDAP_ADMIN = `cn=admin,${LDAP_BASE}`;
export const LDAP_PASSWORD = 'directory-test-secret';

export interface Slapd {
  readonly url: string;
  /** Adds entries, as the directory's administrator. */
  edit(work: (client: Client) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

export async function startSlapd(): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-slapd-'));
  const db = join(dir, 'db');
  mkdirSync(db);
  const conf = join(dir, 'slapd.conf');
  writeFileSync(
    conf,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      'include /etc/ldap/schema/nis.schema',
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'moduleload memberof',
      `pidfile ${join(dir, 'slapd.pid')}`,
      'database mdb',
      `suffix "${LDAP_BASE}"`,
      `rootdn "${LDAP_ADMIN}"`,
      `rootpw ${LDAP_PASSWORD}`,
      `directory ${db}`,
      'maxsize 10485760',
      'overlay memberof',
      'memberof-group-oc groupOfNames',
      'memberof-member-ad member',
      'memberof-memberof-ad memberOf',
      'memberof-refint true',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(SLAPD, ['-f', conf, '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const connect = async () => {
    const client = new Client({ url, timeout: 5000, connectTimeout: 2000 });
    await client.bind(LDAP_ADMIN, LDAP_PASSWORD);
    return client;
  };
  // Ready when a bind succeeds.
  for (let attempt = 0; ; attempt++) {
    try {
      const c = await connect();
      await c.unbind();
      break;
    } catch (err) {
      if (child.exitCode !== null || attempt > 100) {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`slapd did not start: ${stderr.slice(-2000) || (err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const admin = await connect();
  await admin.add(LDAP_BASE, { objectClass: ['top', 'dcObject', 'organization'], o: 'Example Corp', dc: 'corp' });
  await admin.add(`ou=people,${LDAP_BASE}`, { objectClass: ['organizationalUnit'], ou: 'people' });
  await admin.add(`ou=groups,${LDAP_BASE}`, { objectClass: ['organizationalUnit'], ou: 'groups' });
  await admin.unbind();

  return {
    url,
    async edit(work) {
      const c = await connect();
      try {
        await work(c);
      } finally {
        await c.unbind();
      }
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
