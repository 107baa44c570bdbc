/**
 * `kanmon cert …` and `kanmon ca …`: client certificates and Kanmon's own CA from the shell,
 * through the same services the portal uses. Files holding keys are written 0600 and never
 * over an existing file; a PKCS#12 password is printed once and kept nowhere.
 */
import { access, open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { REVOCATION_REASONS, type BulkUserResult, type IssuedCertificate, type IssueOptions } from '../ca/index.js';
import { parseUsernameCsv } from '../ca/csv.js';
import { CLI_CONTEXT, type Services } from '../services/index.js';
import type { ClientCertificate, ClientCertificateKeyType, RevocationReason } from '../store/types.js';
import { cleanMailAddress } from '../notify/mailer.js';
import { parseArgs, UsageError, type ParsedArgs } from './args.js';
import { iso, table } from './format.js';

export interface CertCliOutput {
  out(line: string): void;
}

export const CERT_USAGE = `  cert issue <name> [--device LABEL] [--key-type ec-p256|rsa-2048] [--legacy] [DELIVERY]
  cert issue --shared --label LABEL [--device LABEL] [--key-type …] [--legacy] [DELIVERY]
  cert issue --csv USERS.csv --zip OUT.zip [--device LABEL] [--key-type …] [--legacy] [--json]
  cert list <name> | --shared [--label LABEL] | --expiring [--days N]   [--all] [--json]
  cert download <name> | --shared --label LABEL | --serial S   [DELIVERY]
  cert download --csv USERS.csv --zip OUT.zip [--json]
  cert renew --serial S [--legacy] [DELIVERY]
  cert revoke <name> | --shared --label LABEL | --serial S | --csv USERS.csv   [--reason R] [--json]
  cert delete <name> | --shared --label LABEL | --serial S | --csv USERS.csv   [--json]
  cert contact <name> [EMAIL | --clear]
    DELIVERY: --link (a single-use link, the default) | --out FILE.p12 | --mail [--to EMAIL] | --letter FILE.html
  ca show [--pem]
  ca crl [--out FILE] [--pem]`;

const ACTOR = 'cli';

function last(a: ParsedArgs, name: string): string | undefined {
  return a.options.get(name)?.at(-1);
}

/** Checks the delivery options before any work is done, so nothing is issued without its file. */
async function checkDelivery(a: ParsedArgs, services: Services): Promise<void> {
  const chosen = [last(a, 'out') && '--out', a.flags.has('link') && '--link', a.flags.has('mail') && '--mail', last(a, 'letter') && '--letter'].filter(Boolean);
  if (chosen.length > 1) throw new UsageError(`give one of --out FILE, --link, --mail or --letter FILE, not ${chosen.join(' and ')}`);
  if (last(a, 'to') !== undefined && !a.flags.has('mail')) throw new UsageError('--to goes with --mail');
  if (a.flags.has('mail') && !services.certificateDistribution.canMail) throw new UsageError('--mail needs a mail transport: set notifications.mail in the config');
  const to = last(a, 'to');
  if (to !== undefined && !cleanMailAddress(to)) throw new UsageError(`--to must be one plain e-mail address, got ${JSON.stringify(to.slice(0, 80))}`);
  await assertNew(last(a, 'out'));
  await assertNew(last(a, 'letter'));
}

/** Refuses an output path that exists. */
async function assertNew(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  const exists = await access(resolve(path)).then(
    () => true,
    () => false,
  );
  if (exists) throw new UsageError(`${resolve(path)} exists; choose another file name`);
}

/** Writes a new file readable by its owner only; an existing file is never replaced. */
async function writePrivate(path: string, data: Uint8Array | string): Promise<string> {
  const full = resolve(path);
  let handle;
  try {
    handle = await open(full, 'wx', 0o600);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') throw new UsageError(`${full} exists; choose another file name`);
    throw err;
  }
  try {
    await handle.chmod(0o600);
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
  return full;
}

/** `kanmon cert <issue|list|download|renew|revoke|delete> …` */
export async function certCommand(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const [action, ...rest] = args;
  switch (action) {
    case 'issue':
      return issue(rest, services, io);
    case 'list':
      return list(rest, services, io);
    case 'download':
      return download(rest, services, io);
    case 'renew':
      return renew(rest, services, io);
    case 'revoke':
    case 'delete':
      return revokeOrDelete(action, rest, services, io);
    case 'contact':
      return contact(rest, services, io);
    default:
      throw new UsageError(`expected: kanmon cert issue|list|download|renew|revoke|delete|contact …`);
  }
}

/** `kanmon ca show|crl …` */
export async function caCommand(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'show') {
    const a = parseArgs(rest, { options: [], flags: ['pem'] });
    const info = await services.ca.ensure(CLI_CONTEXT);
    if (a.flags.has('pem')) {
      io.out((await services.ca.certificatePem()).trimEnd());
      return 0;
    }
    io.out(`subject:     ${info.subject}`);
    io.out(`key:         ${info.keyAlgorithm}`);
    io.out(`serial:      ${info.serial}`);
    io.out(`valid:       ${iso(info.notBefore.getTime())} to ${iso(info.notAfter.getTime())}`);
    io.out(`SHA-256:     ${info.fingerprint.toUpperCase().match(/../g)!.join(':')}`);
    io.out(`created:     ${iso(info.createdAt)}`);
    io.out('(the private key is sealed in the store and never shown)');
    return 0;
  }
  if (action === 'crl') {
    const a = parseArgs(rest, { options: ['out'], flags: ['pem'] });
    const out = last(a, 'out');
    const data = a.flags.has('pem') ? await services.ca.crlPem() : await services.ca.crlDer();
    if (out) {
      // A CRL is public; it is still written without replacing anything.
      io.out(`wrote ${await writePrivate(out, data)}`);
    } else if (typeof data === 'string') {
      io.out(data.trimEnd());
    } else {
      io.out(Buffer.from(data).toString('base64'));
    }
    return 0;
  }
  throw new UsageError('expected: kanmon ca show|crl …');
}

function issueOptions(a: ParsedArgs): IssueOptions {
  const keyType = last(a, 'key-type');
  if (keyType !== undefined && keyType !== 'ec-p256' && keyType !== 'rsa-2048') throw new UsageError(`--key-type must be ec-p256 or rsa-2048, got ${keyType}`);
  const device = last(a, 'device');
  return {
    ...(device ? { deviceLabel: device } : {}),
    ...(keyType ? { keyType: keyType as ClientCertificateKeyType } : {}),
    profile: a.flags.has('legacy') ? 'legacy' : 'modern',
    actor: ACTOR,
    context: CLI_CONTEXT,
  };
}

async function readCsv(path: string): Promise<string[]> {
  const names = parseUsernameCsv(await readFile(path, 'utf8'));
  if (names.length === 0) throw new UsageError(`${path} lists no users`);
  return names;
}

async function issue(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['device', 'key-type', 'out', 'label', 'csv', 'zip', 'to', 'letter'], flags: ['legacy', 'link', 'shared', 'json', 'mail'] });
  const options = issueOptions(a);
  const csv = last(a, 'csv');
  if (csv) {
    const zipPath = last(a, 'zip');
    if (!zipPath) throw new UsageError('cert issue --csv needs --zip OUT.zip for the files');
    const sheetPath = zipPath.replace(/\.zip$/i, '') + '-passwords.csv';
    await assertNew(zipPath);
    await assertNew(sheetPath);
    const result = await services.certificateBulk.issue(await readCsv(csv), options);
    const zipFull = await writePrivate(zipPath, result.zip);
    const sheetFull = await writePrivate(sheetPath, result.passwordSheetCsv);
    const code = printBulk(result.results, a.flags.has('json'), io);
    io.out(`files:     ${zipFull}`);
    io.out(`passwords: ${sheetFull}`);
    io.out('Hand the files and the passwords to people by different routes; the passwords are stored nowhere else.');
    return code;
  }
  await checkDelivery(a, services);
  let issued: IssuedCertificate;
  let owner: string;
  if (a.flags.has('shared')) {
    const label = last(a, 'label');
    if (!label || a.positionals.length > 0) throw new UsageError('expected: kanmon cert issue --shared --label LABEL');
    issued = await services.clientCertificates.issueShared(label, options);
    owner = `shared device ${label}`;
  } else {
    if (a.positionals.length !== 1) throw new UsageError('expected exactly one user name (or --shared --label LABEL, or --csv FILE)');
    const user = await services.users.require(a.positionals[0]!);
    // Nothing is issued that could not be delivered as asked.
    if (a.flags.has('mail') && last(a, 'to') === undefined && !(await services.contacts.get(user.id))) {
      throw new UsageError(`${user.username} has no e-mail address: set one with kanmon cert contact ${user.username} EMAIL, or give --to EMAIL`);
    }
    issued = await services.clientCertificates.issueForUser(user, options);
    owner = user.username;
  }
  io.out(`issued certificate ${issued.certificate.serial} for ${owner} (${issued.certificate.deviceLabel}, ${issued.certificate.keyType}), valid until ${iso(issued.certificate.expiresAt)}`);
  await deliver(issued.certificate, a, services, io);
  io.out(`PKCS#12 password (shown once, stored nowhere): ${issued.password}`);
  io.out(`(${issued.profile === 'legacy' ? 'legacy 3DES/SHA-1 file' : 'AES-256 file'}; ${issued.downloadsAllowed} download(s) until ${iso(issued.downloadExpiresAt)})`);
  return 0;
}

/** Writes the file (--out), mails (--mail) or prints on a letter (--letter) a single-use link, or prints one (--link, the default). */
async function deliver(certificate: ClientCertificate, a: ParsedArgs, services: Services, io: CertCliOutput): Promise<void> {
  if (a.flags.has('mail')) {
    const to = last(a, 'to');
    const mailed = await services.certificateDistribution.mailDownloadLink(certificate.serial, { ...(to !== undefined ? { to } : {}), actor: ACTOR, context: CLI_CONTEXT });
    io.out(`mailed a download link to ${mailed.to} (one use; expires ${iso(mailed.expiresAt)})`);
    return;
  }
  const letterPath = last(a, 'letter');
  if (letterPath) {
    const letter = await services.certificateDistribution.letter(certificate.serial, { actor: ACTOR, context: CLI_CONTEXT });
    io.out(`wrote letter ${await writePrivate(letterPath, letter.html)} (its link works once, until ${iso(letter.expiresAt)}; print it, then delete the file)`);
    return;
  }
  const out = last(a, 'out');
  if (out) {
    const file = await services.clientCertificates.download(certificate.serial, { actor: ACTOR, context: CLI_CONTEXT });
    io.out(`wrote ${await writePrivate(out, file.pkcs12)} (${file.downloadsLeft} download(s) left)`);
    return;
  }
  const link = await services.clientCertificates.createDownloadLink(certificate.serial, { actor: ACTOR, context: CLI_CONTEXT });
  io.out(`download link (one use; expires ${iso(link.expiresAt)}):`);
  io.out(link.url);
}

async function list(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['label', 'days'], flags: ['shared', 'expiring', 'all', 'json'] });
  let certificates: ClientCertificate[];
  if (a.flags.has('expiring')) {
    const days = last(a, 'days');
    const n = days === undefined ? undefined : Number(days);
    if (n !== undefined && (!Number.isInteger(n) || n < 0 || n > 3650)) throw new UsageError(`--days must be 0 to 3650, got ${days}`);
    certificates = await services.clientCertificates.listExpiring(n);
  } else if (a.flags.has('shared')) {
    const label = last(a, 'label');
    certificates = await services.clientCertificates.listShared({ ...(label ? { label } : {}), includeDeleted: a.flags.has('all') });
  } else {
    if (a.positionals.length !== 1) throw new UsageError('expected one user name, --shared or --expiring');
    const user = await services.users.require(a.positionals[0]!);
    certificates = await services.clientCertificates.listForUser(user.id, { includeDeleted: a.flags.has('all') });
  }
  if (a.flags.has('json')) {
    io.out(JSON.stringify(certificates.map(({ certificateDer: _der, ...rest }) => rest), null, 2));
    return 0;
  }
  if (certificates.length === 0) {
    io.out('no certificates');
    return 0;
  }
  const names = await ownerNames(certificates, services);
  const rows = [['SERIAL', 'OWNER', 'DEVICE', 'KEY', 'STATUS', 'ISSUED', 'EXPIRES', 'DOWNLOADS LEFT']];
  for (const c of certificates) {
    const pending = c.status === 'active' ? await services.clientCertificates.pendingDownload(c.serial) : undefined;
    const status = c.status === 'active' ? 'active' : `${c.status} ${iso(c.revokedAt ?? c.deletedAt)}${c.revocationReason ? ` (${c.revocationReason})` : ''}`;
    rows.push([c.serial, names.get(c.serial) ?? '-', c.deviceLabel, c.keyType, status, iso(c.issuedAt), iso(c.expiresAt), pending ? String(pending.downloadsLeft) : '-']);
  }
  for (const line of table(rows)) io.out(line);
  return 0;
}

async function download(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['out', 'serial', 'label', 'csv', 'zip', 'to', 'letter'], flags: ['link', 'shared', 'json', 'mail'] });
  const csv = last(a, 'csv');
  if (csv) {
    const zipPath = last(a, 'zip');
    if (!zipPath) throw new UsageError('cert download --csv needs --zip OUT.zip');
    await assertNew(zipPath);
    const result = await services.certificateBulk.download(await readCsv(csv), { actor: ACTOR, context: CLI_CONTEXT });
    const full = await writePrivate(zipPath, result.zip);
    const code = printBulk(result.results, a.flags.has('json'), io);
    io.out(`files: ${full}`);
    io.out('(their passwords were shown when they were issued and are not stored)');
    return code;
  }
  await checkDelivery(a, services);
  const certificate = await pickOne(a, services, (c) => c.status === 'active');
  await deliver(certificate, a, services, io);
  return 0;
}

async function renew(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['serial', 'out', 'key-type', 'to', 'letter'], flags: ['legacy', 'link', 'mail'] });
  const serial = last(a, 'serial');
  if (!serial) throw new UsageError('expected: kanmon cert renew --serial S');
  await checkDelivery(a, services);
  const { deviceLabel: _ignored, ...options } = issueOptions(a);
  const issued = await services.clientCertificates.renew(serial, options);
  const owner = (await ownerNames([issued.certificate], services)).get(issued.certificate.serial);
  io.out(`renewed ${serial} as ${issued.certificate.serial} for ${owner} (${issued.certificate.deviceLabel}), valid until ${iso(issued.certificate.expiresAt)}`);
  io.out('(the old certificate stays valid until it expires; revoke it once the new one is installed)');
  await deliver(issued.certificate, a, services, io);
  io.out(`PKCS#12 password (shown once, stored nowhere): ${issued.password}`);
  return 0;
}

async function revokeOrDelete(action: 'revoke' | 'delete', args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['serial', 'label', 'csv', 'reason'], flags: ['shared', 'json'] });
  const reasonText = last(a, 'reason');
  if (reasonText !== undefined && (action === 'delete' || !REVOCATION_REASONS.includes(reasonText as RevocationReason))) {
    throw new UsageError(action === 'delete' ? '--reason is for revoke' : `--reason must be one of ${REVOCATION_REASONS.join(', ')}`);
  }
  const reason = reasonText as RevocationReason | undefined;
  const csv = last(a, 'csv');
  if (csv) {
    const names = await readCsv(csv);
    const results =
      action === 'revoke'
        ? await services.certificateBulk.revoke(names, { actor: ACTOR, context: CLI_CONTEXT, ...(reason ? { reason } : {}) })
        : await services.certificateBulk.delete(names, { actor: ACTOR, context: CLI_CONTEXT });
    const code = printBulk(results, a.flags.has('json'), io);
    if (action === 'revoke') io.out(`(every node refuses them within ${services.clientCertificates.statusCacheMs / 1000} s)`);
    return code;
  }
  const targets = last(a, 'serial') !== undefined ? [await pickOne(a, services, () => true)] : await pickAll(a, services);
  let changed = 0;
  for (const target of targets) {
    const result =
      action === 'revoke'
        ? await services.clientCertificates.revoke(target.serial, { actor: ACTOR, context: CLI_CONTEXT, ...(reason ? { reason } : {}) })
        : await services.clientCertificates.delete(target.serial, { actor: ACTOR, context: CLI_CONTEXT });
    if (result.changed) changed++;
    io.out(`${target.serial}: ${result.changed ? (action === 'revoke' ? 'revoked' : 'deleted') : `already ${result.certificate.status}`}`);
  }
  if (targets.length === 0) io.out(`nothing to ${action}`);
  else io.out(`${action === 'revoke' ? 'revoked' : 'deleted'} ${changed} certificate(s)`);
  if (action === 'revoke' && changed > 0) io.out(`(every node refuses them within ${services.clientCertificates.statusCacheMs / 1000} s)`);
  return 0;
}

/** The certificates a command names: one user's or one shared label's (active ones for revoke, all for delete). */
async function pickAll(a: ParsedArgs, services: Services): Promise<ClientCertificate[]> {
  if (a.flags.has('shared')) {
    const label = last(a, 'label');
    if (!label) throw new UsageError('--shared needs --label LABEL');
    return (await services.clientCertificates.listShared({ label })).filter((c) => c.status !== 'deleted');
  }
  if (a.positionals.length !== 1) throw new UsageError('expected one user name, --shared --label LABEL, --serial S or --csv FILE');
  const user = await services.users.require(a.positionals[0]!);
  return services.clientCertificates.listForUser(user.id);
}

/** One certificate: by --serial, or the newest matching one of a user or a shared label. */
async function pickOne(a: ParsedArgs, services: Services, accept: (c: ClientCertificate) => boolean): Promise<ClientCertificate> {
  const serial = last(a, 'serial');
  const candidates = serial ? [await services.clientCertificates.get(serial)].filter((c): c is ClientCertificate => c !== undefined) : (await pickAll(a, services)).filter(accept);
  if (serial && candidates.length === 0) throw new UsageError(`no certificate with serial ${serial}`);
  const chosen = candidates.at(-1);
  if (!chosen) throw new UsageError('no matching certificate');
  return chosen;
}

async function ownerNames(certificates: readonly ClientCertificate[], services: Services): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const users = new Map<string, string>();
  for (const c of certificates) {
    if (c.owner.kind === 'shared') {
      names.set(c.serial, `shared:${c.owner.label}`);
      continue;
    }
    if (!users.has(c.owner.userId)) users.set(c.owner.userId, (await services.users.getById(c.owner.userId))?.username ?? `(deleted user ${c.owner.userId})`);
    names.set(c.serial, users.get(c.owner.userId)!);
  }
  return names;
}

/** Prints one line per user and a summary; exit code 1 when any user failed. */
function printBulk(results: readonly BulkUserResult[], json: boolean, io: CertCliOutput): number {
  const failed = results.filter((r) => !r.ok).length;
  if (json) {
    io.out(JSON.stringify(results, null, 2));
  } else {
    for (const line of table([['USERNAME', 'RESULT', 'SERIALS', 'ERROR'], ...results.map((r) => [r.username, r.outcome, r.serials.join(' ') || '-', r.error?.message ?? ''])])) io.out(line);
  }
  io.out(`${results.length - failed} of ${results.length} user(s) done${failed ? `, ${failed} failed` : ''}`);
  return failed ? 1 : 0;
}

/** `kanmon cert contact <name> [EMAIL | --clear]`: where a user's certificate links and expiry warnings are mailed. */
async function contact(args: readonly string[], services: Services, io: CertCliOutput): Promise<number> {
  const a = parseArgs(args, { options: [], flags: ['clear'] });
  if (a.positionals.length < 1 || a.positionals.length > 2 || (a.flags.has('clear') && a.positionals.length !== 1)) {
    throw new UsageError('expected: kanmon cert contact <name> [EMAIL | --clear]');
  }
  const user = await services.users.require(a.positionals[0]!);
  if (a.flags.has('clear')) {
    await services.contacts.set(user, undefined, { actor: ACTOR, context: CLI_CONTEXT });
    io.out(`${user.username}: no e-mail address`);
    return 0;
  }
  const address = a.positionals[1];
  if (address !== undefined) await services.contacts.set(user, address, { actor: ACTOR, context: CLI_CONTEXT });
  io.out(`${user.username}: ${(await services.contacts.get(user.id)) ?? 'no e-mail address'}`);
  return 0;
}
