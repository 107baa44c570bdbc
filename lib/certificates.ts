import type * as acm from 'aws-cdk-lib/aws-certificatemanager';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/**
 * Where the server certificate comes from.
 * - `letsencrypt`: the runtime obtains and renews it over ACME (HTTP-01 on port 80) and keeps
 *   account key, orders and certificates in the store table; TLS and mTLS end in the container.
 * - `acm`: the NLB terminates TLS with an ACM certificate and forwards plain TCP with PROXY v2
 *   (config `tls.source: "offloaded"`); client certificates cannot reach Kanmon, so mTLS routes are refused.
 * - `imported`: a certificate and key the operator stores in Secrets Manager as JSON
 *   `{"certificate": "<PEM chain>", "privateKey": "<PEM>"}`; TLS and mTLS end in the container.
 */
export type CertificateSource = 'letsencrypt' | 'acm' | 'imported';

export const CERTIFICATE_SOURCES: readonly CertificateSource[] = ['letsencrypt', 'acm', 'imported'];

/** ACME settings for `certificates: 'letsencrypt'`. */
export interface LetsEncryptOptions {
  /**
   * ACME account contact; Let's Encrypt writes here about expiry problems.
   * @default the first of `adminEmails`
   */
  readonly email?: string;
  /**
   * ACME directory. Use LETS_ENCRYPT_STAGING_DIRECTORY while trying things out: its rate limits are far higher.
   * @default LETS_ENCRYPT_DIRECTORY (production)
   */
  readonly directoryUrl?: string;
}

/** The certificate-related props of {@link KanmonProps}, gathered for validation. */
export interface CertificateProps {
  readonly certificates?: CertificateSource;
  readonly letsEncrypt?: LetsEncryptOptions;
  readonly acmCertificate?: acm.ICertificate;
  readonly certificateSecret?: secretsmanager.ISecret;
}
