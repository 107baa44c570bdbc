/**
 * One ACME order (RFC 8555 §7.4) for the server certificate, through acme-client: the account
 * (created once per directory and kept in the store), a fresh key and CSR, one challenge per
 * name, finalization and the chain. The challenge answers go to the store, where whichever node
 * the ACME server reaches finds them (HTTP-01 on the plain listener, TLS-ALPN-01 on the TLS one).
 */
import { Agent as HttpsAgent } from 'node:https';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import * as acme from 'acme-client';
import { alpnChallengeId, httpChallengeId, type ServerCertificateDocuments } from './server-certificate-documents.js';

export type AcmeChallengeType = 'http-01' | 'tls-alpn-01';

export interface AcmeOrderOptions {
  readonly directoryUrl: string;
  readonly email: string;
  readonly domains: readonly string[];
  readonly keyType: 'ecdsa' | 'rsa';
  readonly challenge: AcmeChallengeType;
  /** PEM file of a CA that signs the ACME server's own HTTPS certificate (a private ACME server). */
  readonly directoryCaFile?: string;
  readonly documents: ServerCertificateDocuments;
  readonly now: () => number;
  /**
   * Polling of pending authorizations and orders: first wait and longest wait in ms.
   * @default 5000 and 30000, acme-client's own, which suit public ACME servers
   */
  readonly pollMinMs?: number;
  readonly pollMaxMs?: number;
  /** Called once the order has been placed (the ACME newOrder request succeeded). */
  readonly onOrderPlaced?: () => void;
}

export interface AcmeOrderResult {
  readonly chainPem: string;
  readonly keyPem: string;
}

/** How long a challenge answer stays in the store: an order is validated within minutes. */
const CHALLENGE_TTL_MS = 60 * 60_000;

let trustedDirectoryCa: string | undefined;

/**
 * acme-client sends every request through one shared HTTP client; a private ACME server's CA is
 * added to the system roots there (one process serves one configuration, so one CA at most).
 */
function trustDirectoryCa(file: string | undefined): void {
  if (file === undefined || file === trustedDirectoryCa) return;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`tls: option 'directoryCaFile' names ${JSON.stringify(file)}, which cannot be read: ${(err as Error).message}`);
  }
  acme.axios.defaults.httpsAgent = new HttpsAgent({ ca: [...rootCertificates, pem], keepAlive: false });
  trustedDirectoryCa = file;
}

/** Places one order and returns the issued chain and its new private key. */
export async function orderServerCertificate(opts: AcmeOrderOptions): Promise<AcmeOrderResult> {
  trustDirectoryCa(opts.directoryCaFile);
  const { documents } = opts;
  const account = await documents.readAccount(opts.directoryUrl, opts.now());
  let accountKeyPem = account?.keyPem;
  if (!accountKeyPem) {
    accountKeyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString('utf8');
  }
  const client = new acme.Client({
    directoryUrl: opts.directoryUrl,
    accountKey: accountKeyPem,
    backoffMin: opts.pollMinMs ?? 5000,
    backoffMax: opts.pollMaxMs ?? 30_000,
  });
  // newAccount with an existing key returns that account (RFC 8555 §7.3.1), so a directory that
  // forgot us (a reset test server) is handled the same way as the first order.
  await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${opts.email}`] });
  const accountUrl = client.getAccountUrl();
  if (!account || account.accountUrl !== accountUrl) {
    await documents.writeAccount(opts.directoryUrl, accountKeyPem, accountUrl, { now: opts.now(), expectedVersion: account?.version ?? 0 });
  }

  const keyPem = (opts.keyType === 'rsa' ? await acme.crypto.createPrivateRsaKey(2048) : await acme.crypto.createPrivateEcdsaKey('P-256')).toString('utf8');
  const [, csr] = await acme.crypto.createCsr({ commonName: opts.domains[0]!, altNames: [...opts.domains] }, keyPem);

  const order = await client.createOrder({ identifiers: opts.domains.map((value) => ({ type: 'dns', value })) });
  opts.onOrderPlaced?.();
  const authorizations = await client.getAuthorizations(order);
  const answered: string[] = [];
  try {
    await Promise.all(
      authorizations.map(async (authz) => {
        // RFC 8555 §7.1.3: an authorization the server already holds as valid needs no challenge.
        if (authz.status === 'valid') return;
        const challenge = authz.challenges.find((c) => c.type === opts.challenge);
        if (!challenge) {
          throw new Error(`the ACME server offers no ${opts.challenge} challenge for ${authz.identifier.value} (offered: ${authz.challenges.map((c) => c.type).join(', ')})`);
        }
        const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
        const id = opts.challenge === 'http-01' ? httpChallengeId((challenge as { token: string }).token) : alpnChallengeId(authz.identifier.value);
        await documents.putChallenge(id, keyAuthorization, { now: opts.now(), ttlMs: CHALLENGE_TTL_MS });
        answered.push(id);
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(authz);
      }),
    );
  } finally {
    await Promise.allSettled(answered.map((id) => documents.deleteChallenge(id)));
  }
  const finalized = await client.finalizeOrder(order, csr);
  const chainPem = await client.getCertificate(finalized);
  return { chainPem, keyPem };
}

/**
 * Whether an ACME error says a rate limit was hit (RFC 8555 §6.6, urn:ietf:params:acme:error:rateLimited);
 * acme-client keeps only the problem's detail, which names the limit.
 */
export function isRateLimitError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /rate.?limit|too many/i.test(message);
}
