/**
 * The `directory` section: users and groups synchronised from LDAP or Active Directory.
 * The bind password is never in config: it comes from the environment variable named here.
 */
import { asSection, bool, int, oneOf, optStr, rejectUnknown, show, str } from './readers.js';

export interface LdapDirectoryConfig {
  /** The source name recorded on imported users and in audit events. @default "ldap" */
  readonly name: string;
  /** `ldaps://host[:port]` or `ldap://host[:port]`. */
  readonly url: string;
  /** Upgrade an ldap:// connection with StartTLS before binding. @default false */
  readonly startTls: boolean;
  /**
   * Send the bind password over an unencrypted ldap:// connection. Only for a directory on the
   * same host or a trusted segment; logs a warning at every start. @default false
   */
  readonly allowPlaintext: boolean;
  /** PEM file of the CA that signed the directory's certificate. @default the system roots */
  readonly caFile?: string;
  readonly bindDn: string;
  /** Environment variable holding the bind password. @default "KANMON_LDAP_PASSWORD" */
  readonly bindPasswordEnv: string;
  /** Where users are searched (subtree). */
  readonly baseDn: string;
  /** @default "(objectClass=inetOrgPerson)" */
  readonly userFilter: string;
  /** @default "uid" (Active Directory: "sAMAccountName") */
  readonly usernameAttribute: string;
  /** Falls back to `cn`. @default "displayName" */
  readonly displayNameAttribute: string;
  /**
   * `memberOf`: groups from the users' memberOf attribute (Active Directory, or OpenLDAP with
   * the memberof overlay); `search`: groups searched under groupBaseDn, members listed in them.
   * @default "memberOf"
   */
  readonly groupsFrom: 'memberOf' | 'search';
  /** @default baseDn */
  readonly groupBaseDn?: string;
  /** @default "(objectClass=groupOfNames)" */
  readonly groupFilter: string;
  /** Attribute of a group listing member DNs. @default "member" */
  readonly groupMemberAttribute: string;
  /** @default "cn" */
  readonly groupNameAttribute: string;
  /** Run every this many minutes (one node at a time); 0 runs only when asked. @default 0 */
  readonly scheduleMinutes: number;
  /** @default 15 */
  readonly timeoutSeconds: number;
}

export interface DirectoryConfig {
  readonly ldap?: LdapDirectoryConfig;
}

export function validateDirectory(value: unknown, errors: string[]): DirectoryConfig {
  const d = asSection(value, 'directory', errors);
  rejectUnknown(d, ['ldap'], 'directory', errors);
  if (d.ldap === undefined) return {};
  const where = 'directory.ldap';
  const l = asSection(d.ldap, where, errors);
  rejectUnknown(
    l,
    ['name', 'url', 'startTls', 'allowPlaintext', 'caFile', 'bindDn', 'bindPasswordEnv', 'baseDn', 'userFilter', 'usernameAttribute', 'displayNameAttribute', 'groupsFrom', 'groupBaseDn', 'groupFilter', 'groupMemberAttribute', 'groupNameAttribute', 'scheduleMinutes', 'timeoutSeconds'],
    where,
    errors,
  );
  const url = str(l, 'url', where, errors, undefined, { nonEmpty: true, required: true });
  let scheme = '';
  try {
    const u = new URL(url);
    scheme = u.protocol;
    if ((scheme !== 'ldap:' && scheme !== 'ldaps:') || !u.hostname || (u.pathname !== '' && u.pathname !== '/') || u.search) throw new Error();
  } catch {
    if (url) errors.push(`${where}: option 'url' must be ldaps://host[:port] or ldap://host[:port], got ${show(url)}`);
  }
  const startTls = bool(l, 'startTls', where, errors, false);
  const allowPlaintext = bool(l, 'allowPlaintext', where, errors, false);
  if (scheme === 'ldap:' && !startTls && !allowPlaintext) {
    errors.push(`${where}: an ldap:// url would send the bind password unencrypted; use ldaps://, set 'startTls': true, or set 'allowPlaintext': true for a directory on a trusted network`);
  }
  if (scheme === 'ldaps:' && startTls) errors.push(`${where}: option 'startTls' is for ldap:// urls; ldaps:// is already encrypted`);
  const attribute = (key: string, fallback: string) => {
    const v = str(l, key, where, errors, fallback, { nonEmpty: true });
    if (!/^[A-Za-z][A-Za-z0-9-]{0,63}$/.test(v)) errors.push(`${where}: option '${key}' must be an attribute name, got ${show(v)}`);
    return v;
  };
  const filter = (key: string, fallback: string) => {
    const v = str(l, key, where, errors, fallback, { nonEmpty: true });
    if (!v.startsWith('(') || !v.endsWith(')')) errors.push(`${where}: option '${key}' must be an LDAP filter in parentheses, got ${show(v)}`);
    return v;
  };
  const caFile = optStr(l, 'caFile', where, errors);
  const groupBaseDn = optStr(l, 'groupBaseDn', where, errors);
  const passwordEnv = str(l, 'bindPasswordEnv', where, errors, 'KANMON_LDAP_PASSWORD', { nonEmpty: true });
  if (!/^[A-Z_][A-Z0-9_]{0,127}$/.test(passwordEnv)) errors.push(`${where}: option 'bindPasswordEnv' must be an environment variable name, got ${show(passwordEnv)}`);
  const name = str(l, 'name', where, errors, 'ldap', { nonEmpty: true });
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) errors.push(`${where}: option 'name' must be 1-32 of a-z, 0-9 and '-', got ${show(name)}`);
  return {
    ldap: {
      name,
      url,
      startTls,
      allowPlaintext,
      ...(caFile ? { caFile } : {}),
      bindDn: str(l, 'bindDn', where, errors, undefined, { nonEmpty: true, required: true }),
      bindPasswordEnv: passwordEnv,
      baseDn: str(l, 'baseDn', where, errors, undefined, { nonEmpty: true, required: true }),
      userFilter: filter('userFilter', '(objectClass=inetOrgPerson)'),
      usernameAttribute: attribute('usernameAttribute', 'uid'),
      displayNameAttribute: attribute('displayNameAttribute', 'displayName'),
      groupsFrom: oneOf(l, 'groupsFrom', where, errors, ['memberOf', 'search'] as const, 'memberOf'),
      ...(groupBaseDn ? { groupBaseDn } : {}),
      groupFilter: filter('groupFilter', '(objectClass=groupOfNames)'),
      groupMemberAttribute: attribute('groupMemberAttribute', 'member'),
      groupNameAttribute: attribute('groupNameAttribute', 'cn'),
      scheduleMinutes: int(l, 'scheduleMinutes', where, errors, 0, 0, 7 * 24 * 60),
      timeoutSeconds: int(l, 'timeoutSeconds', where, errors, 15, 1, 300),
    },
  };
}
