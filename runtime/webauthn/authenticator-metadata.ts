/**
 * What Kanmon knows about authenticator models: names (the built-in list plus a FIDO Metadata
 * Service BLOB, when one is configured), the roots their attestation certificates chain to,
 * and whether their status reports forbid them. Built once at start-up and never changed.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';

import { authenticatorName } from './aaguids.js';
import { FIDO_MDS_ROOTS } from './fido-mds-roots.js';
import { blobFingerprint, MetadataBlobError, REFUSED_STATUSES, verifyMetadataBlob, type MetadataEntry } from './metadata-blob.js';

export interface MetadataSource {
  readonly file: string;
  readonly serial: number;
  readonly nextUpdate: string;
  readonly entries: number;
  readonly signer: string;
  readonly root: string;
  readonly fingerprint: string;
}

export interface AuthenticatorStatus {
  /** A status report says the model is revoked or compromised (MDS3 §3.1.4). */
  readonly refused: boolean;
  /** The refusing status, or the latest one. */
  readonly status?: string;
}

export class AuthenticatorMetadata {
  private readonly byAaguid: ReadonlyMap<string, MetadataEntry>;
  private readonly anchorCache = new Map<string, X509Certificate[]>();

  private constructor(
    entries: readonly MetadataEntry[],
    /** Where the entries came from; absent when no BLOB is configured. */
    readonly source?: MetadataSource,
  ) {
    this.byAaguid = new Map(entries.map((e) => [e.aaguid, e]));
  }

  /** The built-in names only: no trust anchors, nothing refused. */
  static builtIn(): AuthenticatorMetadata {
    return new AuthenticatorMetadata([]);
  }

  static fromEntries(entries: readonly MetadataEntry[], source?: MetadataSource): AuthenticatorMetadata {
    return new AuthenticatorMetadata(entries, source);
  }

  /**
   * Loads and verifies a BLOB file. `rootsFile` (PEM, one or more certificates) replaces the
   * FIDO Alliance roots, for a private metadata service or tests.
   * @throws MetadataBlobError when the file cannot be read or does not verify
   */
  static loadFile(file: string, opts: { rootsFile?: string; now?: number } = {}): AuthenticatorMetadata {
    let jwt: string;
    let roots: string[];
    try {
      jwt = readFileSync(file, 'utf8');
      roots = opts.rootsFile ? splitPem(readFileSync(opts.rootsFile, 'utf8')) : [...FIDO_MDS_ROOTS];
    } catch (err) {
      throw new MetadataBlobError(`the metadata BLOB could not be read: ${(err as Error).message}`, { cause: err });
    }
    if (roots.length === 0) throw new MetadataBlobError(`${opts.rootsFile} holds no PEM certificate`);
    let blob;
    try {
      blob = verifyMetadataBlob(jwt, { roots, now: opts.now ?? Date.now() });
    } catch (err) {
      if (err instanceof MetadataBlobError) throw new MetadataBlobError(`${file}: ${err.message}; the BLOB is not used`, { cause: err });
      throw err;
    }
    return new AuthenticatorMetadata(blob.entries, {
      file,
      serial: blob.serial,
      nextUpdate: blob.nextUpdate,
      entries: blob.entries.length,
      signer: blob.signer,
      root: blob.root,
      fingerprint: blobFingerprint(jwt),
    });
  }

  /** The metadata the configuration names: the BLOB file when set (verified, or an error), else built-in names. */
  static fromConfig(webauthn: { readonly mdsBlobFile?: string; readonly mdsRootCertFile?: string }, now: number = Date.now()): AuthenticatorMetadata {
    if (!webauthn.mdsBlobFile) return AuthenticatorMetadata.builtIn();
    return AuthenticatorMetadata.loadFile(webauthn.mdsBlobFile, { ...(webauthn.mdsRootCertFile ? { rootsFile: webauthn.mdsRootCertFile } : {}), now });
  }

  /** A human name for an AAGUID: the metadata statement's description, else the built-in list. */
  nameOf(aaguid: string): string | undefined {
    return this.byAaguid.get(aaguid.toLowerCase())?.description ?? authenticatorName(aaguid);
  }

  /** The roots an attestation of this model must chain to; empty when the model is unknown. */
  trustAnchorsFor(aaguid: string): readonly X509Certificate[] {
    const key = aaguid.toLowerCase();
    const cached = this.anchorCache.get(key);
    if (cached) return cached;
    const anchors: X509Certificate[] = [];
    for (const der of this.byAaguid.get(key)?.attestationRootCertificates ?? []) {
      try {
        anchors.push(new X509Certificate(der));
      } catch {
        // A root that does not parse cannot anchor anything; the others still may.
      }
    }
    this.anchorCache.set(key, anchors);
    return anchors;
  }

  /**
   * Any report with a revoked or compromised status refuses the model: a later report (e.g.
   * UPDATE_AVAILABLE) does not make the devices already in users' hands safe.
   */
  statusOf(aaguid: string): AuthenticatorStatus {
    const reports = this.byAaguid.get(aaguid.toLowerCase())?.statusReports ?? [];
    const refusing = reports.find((r) => REFUSED_STATUSES.has(r.status));
    if (refusing) return { refused: true, status: refusing.status };
    const latest = reports.at(-1);
    return { refused: false, ...(latest ? { status: latest.status } : {}) };
  }

  /** Whether the BLOB's nextUpdate date has passed: a newer BLOB exists and should be installed. */
  isStale(now: number): boolean {
    return this.source !== undefined && Date.parse(this.source.nextUpdate) < now;
  }
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
