/**
 * tls.source "imported" with secretArn: the certificate and key an operator keeps in AWS
 * Secrets Manager as JSON {"certificate": "<PEM chain>", "privateKey": "<PEM>"} (the shape the
 * CDK stack documents and grants read access to). Each node reads it at start and again every
 * poll; a new secret version is put into service without a restart.
 */
import { GetSecretValueCommand, SecretsManagerClient, type SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';
import { awsClientOptions } from '../aws/client-options.js';
import { describeCertificate, ServerCertificateError, type ServerCertificate } from './server-certificate-documents.js';

/** Secrets Manager is asked this often by each node (one GetSecretValue per poll). @default 5 minutes */
export const SECRETS_MANAGER_POLL_MS = 5 * 60_000;
/** Larger than any certificate chain and key; Secrets Manager itself allows 64 KiB. */
const MAX_SECRET_BYTES = 65_536;

export interface SecretsManagerCertificateOptions {
  readonly secretArn: string;
  /** @default the region in the ARN */
  readonly region?: string;
  /** Another endpoint than the regional one (VPC endpoint DNS name, tests). */
  readonly endpoint?: string;
  readonly credentials?: SecretsManagerClientConfig['credentials'];
  /** A ready client; region, endpoint and credentials are then ignored. */
  readonly client?: SecretsManagerClient;
}

export class SecretsManagerCertificate {
  readonly #client: SecretsManagerClient;

  constructor(private readonly opts: SecretsManagerCertificateOptions) {
    const region = opts.region ?? opts.secretArn.split(':')[3];
    this.#client =
      opts.client ??
      new SecretsManagerClient({ ...awsClientOptions({ region, endpoint: opts.endpoint, credentials: opts.credentials }), maxAttempts: 2 });
  }

  /**
   * The current version of the secret as a certificate, or undefined when its version is
   * `knownVersion` (nothing to swap). Throws ServerCertificateError with the reason when the
   * secret cannot be read or does not hold a usable certificate and key.
   */
  async read(knownVersion?: string): Promise<(ServerCertificate & { readonly secretVersion: string }) | undefined> {
    let answer;
    try {
      answer = await this.#client.send(new GetSecretValueCommand({ SecretId: this.opts.secretArn }));
    } catch (err) {
      const name = (err as { name?: string }).name ?? 'Error';
      throw new ServerCertificateError(`the certificate secret ${this.opts.secretArn} could not be read: ${name}: ${(err as Error).message}`, { cause: err });
    }
    const version = answer.VersionId ?? '';
    if (knownVersion !== undefined && version === knownVersion) return undefined;
    const text = answer.SecretString;
    if (typeof text !== 'string') throw new ServerCertificateError(`the certificate secret ${this.opts.secretArn} holds no SecretString (binary secrets are not supported)`);
    if (Buffer.byteLength(text) > MAX_SECRET_BYTES) throw new ServerCertificateError(`the certificate secret ${this.opts.secretArn} is larger than ${MAX_SECRET_BYTES} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ServerCertificateError(`the certificate secret ${this.opts.secretArn} must be JSON {"certificate": "<PEM chain>", "privateKey": "<PEM>"}, got text that is not JSON`);
    }
    const { certificate, privateKey } = (parsed ?? {}) as { certificate?: unknown; privateKey?: unknown };
    if (typeof certificate !== 'string' || typeof privateKey !== 'string') {
      throw new ServerCertificateError(`the certificate secret ${this.opts.secretArn} must be JSON {"certificate": "<PEM chain>", "privateKey": "<PEM>"}, got keys ${JSON.stringify(Object.keys((parsed as object) ?? {}))}`);
    }
    const info = describeCertificate(certificate, privateKey);
    return { source: 'imported', chainPem: certificate, keyPem: privateKey, ...info, secretVersion: version };
  }
}
