/**
 * For a process that does not serve TLS itself but reports on the certificate its workers serve
 * (the cluster primary's readiness and expiry check): the expiry of the certificate in the
 * store (acme, imported) or in Secrets Manager (imported with secretArn), polled.
 */
import type { Logger } from 'pino';
import type { KanmonConfig } from '../config/schema.js';
import { SECRETS_MANAGER_POLL_MS, SecretsManagerCertificate } from './secrets-manager-certificate.js';
import { DEFAULT_CERTIFICATE_POLL_MS } from './serving-certificate.js';
import type { ServerCertificateService } from './server-certificate-service.js';

export interface CertificateWatch {
  /** Expiry of the certificate the workers serve; undefined until there is one. */
  readonly notAfter: Date | undefined;
  stop(): void;
}

/** Undefined for sources whose certificate the process reads itself (self-signed-dev, file) or that have none (offloaded). */
export function watchStoredCertificate(config: KanmonConfig, certificates: ServerCertificateService, logger: Logger): CertificateWatch | undefined {
  const tls = config.tls;
  if (tls.source !== 'acme' && tls.source !== 'imported') return undefined;
  const secret = tls.source === 'imported' && tls.secretArn ? new SecretsManagerCertificate({ secretArn: tls.secretArn }) : undefined;
  let notAfter: Date | undefined;
  const check = async () => {
    try {
      if (secret) {
        const cert = await secret.read();
        if (cert) notAfter = new Date(cert.notAfter);
      } else {
        const status = await certificates.status();
        if (status.certificate) notAfter = new Date(status.certificate.notAfter);
      }
    } catch (err) {
      logger.warn({ err }, 'the server certificate could not be read for the expiry check');
    }
  };
  void check();
  const timer = setInterval(() => void check(), secret ? SECRETS_MANAGER_POLL_MS : DEFAULT_CERTIFICATE_POLL_MS);
  timer.unref();
  return {
    get notAfter() {
      return notAfter;
    },
    stop: () => clearInterval(timer),
  };
}
