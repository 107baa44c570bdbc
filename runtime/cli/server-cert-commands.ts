/**
 * `kanmon cert server …`: the gateway's own TLS certificate. `status` reads what every node
 * serves from the store, `renew` orders through the same lease the nodes use (running nodes
 * answer the challenge and load the result within their poll bound), `import` puts a
 * certificate obtained elsewhere into the store for tls.source "imported".
 */
import { readFile } from 'node:fs/promises';
import type { KanmonConfig } from '../config/schema.js';
import type { Services } from '../services/index.js';
import { ServerCertificateError } from '../tls/server-certificate-documents.js';
import { parseArgs, UsageError } from './args.js';
import { iso } from './format.js';

export const SERVER_CERT_USAGE = `  cert server status [--json]
  cert server renew
  cert server import --cert CHAIN.pem --key KEY.pem`;

export interface ServerCertCliOutput {
  out(line: string): void;
}

/** Runs `kanmon cert server <sub>`; returns the exit code. */
export async function serverCertCommand(argv: readonly string[], services: Services, config: KanmonConfig, io: ServerCertCliOutput): Promise<number> {
  const [sub, ...rest] = argv;
  const certificates = services.serverCertificates;
  switch (sub) {
    case 'status': {
      const a = parseArgs(rest, { options: [], flags: ['json'] });
      if (a.positionals.length > 0) throw new UsageError('cert server status takes no arguments');
      const status = await certificates.status();
      if (a.flags.has('json')) {
        io.out(JSON.stringify(status, null, 2));
        return 0;
      }
      io.out(`source:            ${config.tls.source}`);
      if (config.tls.source === 'file') io.out(`files:             ${config.tls.certFile}, ${config.tls.keyFile} (each node reads its own files)`);
      if (config.tls.source === 'self-signed-dev') io.out('certificate:       made by each node from the development CA in its data directory');
      if (config.tls.source === 'offloaded') io.out('certificate:       none here; TLS ends at the load balancer');
      if (config.tls.source === 'acme') io.out(`directory:         ${config.tls.directoryUrl} (${config.tls.challenge}, ${config.tls.keyType})`);
      const c = status.certificate;
      if (c) {
        io.out(`names:             ${c.names.join(', ')}`);
        io.out(`issuer:            ${c.issuer}`);
        io.out(`serial:            ${c.serial}`);
        io.out(`valid:             ${iso(c.notBefore)} to ${iso(c.notAfter)} (${Math.floor((c.notAfter - Date.now()) / 86_400_000)} days left)`);
        io.out(`stored:            ${iso(c.obtainedAt)} (${c.source})`);
        if (status.renewFrom !== undefined) io.out(`renewal from:      ${iso(status.renewFrom)}`);
      } else if (config.tls.source === 'acme' || config.tls.source === 'imported') {
        io.out('certificate:       none in the store yet');
      }
      const r = status.renewal;
      if (config.tls.source === 'acme' || r.lastAttemptAt !== undefined) {
        io.out(`last attempt:      ${iso(r.lastAttemptAt)}${r.lastOrderBy ? ` by ${r.lastOrderBy}` : ''}`);
        io.out(`last success:      ${iso(r.lastSuccessAt)}`);
        io.out(`last error:        ${r.consecutiveFailures > 0 ? `${r.lastError ?? '-'} (${r.consecutiveFailures} failures in a row)` : '-'}`);
        if (r.nextAttemptAt !== undefined) io.out(`next attempt:      not before ${iso(r.nextAttemptAt)}`);
      }
      return 0;
    }
    case 'renew': {
      const a = parseArgs(rest, { options: [], flags: [] });
      if (a.positionals.length > 0) throw new UsageError('cert server renew takes no arguments');
      if (config.tls.source !== 'acme') throw new ServerCertificateError(`tls.source is "${config.tls.source}": only "acme" certificates are renewed by Kanmon`);
      const outcome = await certificates.renewIfDue({ force: true });
      switch (outcome.action) {
        case 'renewed':
          io.out(`renewed: ${outcome.certificate.names.join(', ')}, serial ${outcome.certificate.serial}, valid until ${iso(outcome.certificate.notAfter)}`);
          io.out('running nodes load it within their certificate poll interval (30 s).');
          return 0;
        case 'busy':
          io.out('another node is ordering right now; see `kanmon cert server status` in a minute.');
          return 1;
        case 'failed':
          io.out(`renewal failed: ${outcome.error}`);
          io.out(`the certificate in service stays; nodes try again from ${iso(outcome.nextAttemptAt)}.`);
          return 1;
        default:
          return 1;
      }
    }
    case 'import': {
      const a = parseArgs(rest, { options: ['cert', 'key'], flags: [] });
      const certFile = a.options.get('cert')?.at(-1);
      const keyFile = a.options.get('key')?.at(-1);
      if (!certFile || !keyFile || a.positionals.length > 0) throw new UsageError('cert server import needs --cert CHAIN.pem and --key KEY.pem');
      const [chainPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
      const imported = await certificates.importCertificate(chainPem, keyPem, 'cli');
      io.out(`imported: ${imported.names.join(', ')}, serial ${imported.serial}, valid until ${iso(imported.notAfter)}`);
      if (config.tls.source !== 'imported') io.out(`note: tls.source is "${config.tls.source}"; nodes serve the imported certificate only with tls.source "imported".`);
      else io.out('running nodes load it within their certificate poll interval (30 s).');
      return 0;
    }
    default:
      throw new UsageError('cert server needs status, renew or import');
  }
}
