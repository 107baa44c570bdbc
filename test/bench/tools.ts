/**
 * The bench's outside tools: nginx, wrk, taskset and openssl, installed from Debian when
 * missing (the bench is meant to run on a fresh project machine with one command).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Tools {
  readonly nginx: string;
}

/** Debian package that provides each command. */
const PACKAGES: Readonly<Record<string, string>> = { nginx: 'nginx-light', wrk: 'wrk', taskset: 'util-linux', openssl: 'openssl' };

export function ensureTools(log: (line: string) => void): Tools {
  const missing = Object.keys(PACKAGES).filter((command) => !findCommand(command));
  if (missing.length > 0) {
    const packages = missing.map((c) => PACKAGES[c]!);
    if (process.getuid?.() !== 0) {
      throw new Error(`the bench needs ${missing.join(', ')}; install them with: sudo apt-get install -y ${packages.join(' ')}`);
    }
    log(`installing ${packages.join(' ')} with apt-get …`);
    // Another apt may hold the lock (a developer or CI step); wait for it instead of failing.
    const apt = (args: string[]) => execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    try {
      apt(['install', '-y', '--no-install-recommends', ...packages]);
    } catch {
      apt(['update']);
      apt(['install', '-y', '--no-install-recommends', ...packages]);
    }
  }
  const nginx = findCommand('nginx');
  if (!nginx || !findCommand('wrk') || !findCommand('taskset') || !findCommand('openssl')) {
    throw new Error('nginx, wrk, taskset and openssl must be installed for the bench');
  }
  return { nginx };
}

/** Looks in PATH and the sbin directories (nginx lives in /usr/sbin, often not on a user's PATH). */
function findCommand(command: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, command);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** A throwaway self-signed P-256 certificate for 127.0.0.1, made with openssl. */
export function makeCertificate(dir: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { certFile, keyFile };
}
