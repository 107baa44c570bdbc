import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { BulkCertificateOperations } from '../../../runtime/ca/bulk.js';
import { CertificateAuthorityService } from '../../../runtime/ca/ca-service.js';
import { ClientCertificateService } from '../../../runtime/ca/client-certificates.js';
import { parseConfig, type KanmonConfigInput } from '../../../runtime/config/schema.js';
import { openLocalSecretBox } from '../../../runtime/secrets/index.js';
import type { SecretBox } from '../../../runtime/secrets/secret-box.js';
import { AuditLog } from '../../../runtime/services/audit-log.js';
import { UserService } from '../../../runtime/services/users.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { Store } from '../../../runtime/store/types.js';

export const run = promisify(execFile);

/** Runs openssl and returns stdout and stderr together, failing with both when it fails. */
export async function openssl(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('openssl', args, { maxBuffer: 16 * 1024 * 1024 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** One node: its own services over a shared store and secret box, with a clock the test moves. */
export interface CaNode {
  readonly ca: CertificateAuthorityService;
  readonly certificates: ClientCertificateService;
  readonly users: UserService;
  readonly bulk: BulkCertificateOperations;
  readonly audit: AuditLog;
}

export class CaWorld {
  /** The clock every node reads; tests move it instead of waiting. */
  clock = Date.now();
  readonly now = () => this.clock;
  private constructor(
    readonly dir: string,
    readonly store: Store,
    readonly secrets: SecretBox,
    readonly config: ReturnType<typeof parseConfig>,
  ) {}

  static async create(configInput: KanmonConfigInput = {}): Promise<CaWorld> {
    const dir = mkdtempSync(join(tmpdir(), 'kanmon-ca-'));
    const store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
    const secrets = await openLocalSecretBox(dir);
    const config = parseConfig({ dataDir: dir, server: { publicOrigin: 'https://gate.example.test' }, ...configInput });
    return new CaWorld(dir, store, secrets, config);
  }

  node(store: Store = this.store): CaNode {
    const audit = new AuditLog(store, pino({ level: 'silent' }), this.now);
    const ca = new CertificateAuthorityService({ store, secrets: this.secrets, audit, config: this.config.ca, now: this.now });
    const certificates = new ClientCertificateService({
      store,
      ca,
      secrets: this.secrets,
      audit,
      config: this.config.clientCertificates,
      publicOrigin: this.config.server.publicOrigin,
      ...(this.config.ca.organization ? { organization: this.config.ca.organization } : {}),
      now: this.now,
    });
    const users = new UserService(store, audit, this.now);
    return { ca, certificates, users, audit, bulk: new BulkCertificateOperations({ certificates, users, now: this.now }) };
  }

  /** Writes a file into the world's directory and returns its path. */
  file(name: string, contents: string | Uint8Array): string {
    const path = join(this.dir, name);
    writeFileSync(path, contents);
    return path;
  }

  async close(): Promise<void> {
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function pemOf(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').trim();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
