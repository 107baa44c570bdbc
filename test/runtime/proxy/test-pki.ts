/**
 * A throwaway internal CA made with openssl, the way an operator's PKI would issue an
 * upstream's server certificate or the client certificate Kanmon presents upstream.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TestCa {
  readonly caFile: string;
  readonly caPem: Buffer;
  /** A certificate for `cn` with the given subjectAltName entries (e.g. ['DNS:app.corp.internal', 'IP:127.0.0.1']). */
  issue(name: string, opts: { cn: string; san?: readonly string[]; usage: 'serverAuth' | 'clientAuth' }): Issued;
}

export interface TestPki {
  readonly dir: string;
  createCa(name: string, subject: string): TestCa;
  /** A self-signed server certificate, not issued by any CA. */
  selfSigned(name: string, san: readonly string[]): Issued;
  remove(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-pki-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const read = (certFile: string, keyFile: string): Issued => ({ certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) });
  return {
    dir,
    createCa(name, subject) {
      const caFile = join(dir, `${name}.pem`);
      const caKey = join(dir, `${name}.key`);
      openssl('req', '-x509', ...EC, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', subject,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
      return {
        caFile,
        caPem: readFileSync(caFile),
        issue(leaf, opts) {
          const keyFile = join(dir, `${leaf}.key`);
          const csr = join(dir, `${leaf}.csr`);
          const certFile = join(dir, `${leaf}.pem`);
          const ext = join(dir, `${leaf}.ext`);
          writeFileSync(ext, [`basicConstraints=CA:FALSE`, `extendedKeyUsage=${opts.usage}`, ...(opts.san?.length ? [`subjectAltName=${opts.san.join(',')}`] : [])].join('\n'));
          openssl('req', '-new', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${opts.cn}`);
          openssl('x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '1', '-extfile', ext);
          return read(certFile, keyFile);
        },
      };
    },
    selfSigned(name, san) {
      const keyFile = join(dir, `${name}.key`);
      const certFile = join(dir, `${name}.pem`);
      openssl('req', '-x509', ...EC, '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san.join(',')}`);
      return read(certFile, keyFile);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
