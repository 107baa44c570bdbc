/** Named store errors: implementations translate driver errors into these, never leak raw SDK errors. */

export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class UsernameTakenError extends StoreError {
  constructor(readonly username: string) {
    super(`username ${JSON.stringify(username)} is already taken`);
  }
}

export class UserExistsError extends StoreError {
  constructor(readonly userId: string) {
    super(`user id ${userId} already exists`);
  }
}

export class CredentialExistsError extends StoreError {
  constructor(readonly credentialId: string) {
    super(`credential ${credentialId} is already registered`);
  }
}

export class KeyExistsError extends StoreError {
  constructor(readonly kid: string) {
    super(`signing key ${kid} already exists`);
  }
}

export class NotFoundError extends StoreError {
  constructor(readonly entity: string, readonly key: string) {
    super(`${entity} ${key} not found`);
  }
}

export class ConcurrentUpdateError extends StoreError {
  constructor(readonly entity: string, readonly key: string) {
    super(`${entity} ${key} was changed concurrently`);
  }
}

export type TokenUnusableReason = 'unknown' | 'used' | 'expired';

export class TokenUnusableError extends StoreError {
  constructor(readonly reason: TokenUnusableReason) {
    super(`enrollment token is ${reason}`);
  }
}

export class CertificateAuthorityExistsError extends StoreError {
  constructor(readonly caId: string) {
    super(`certificate authority ${caId} already exists`);
  }
}

export class CertificateExistsError extends StoreError {
  constructor(readonly serial: string) {
    super(`client certificate serial ${serial} already exists`);
  }
}

/** The owner already holds the maximum number of active, unexpired client certificates. */
export class CertificateLimitError extends StoreError {
  constructor(readonly ownerKey: string, readonly maxActive: number) {
    super(`${ownerKey} already holds ${maxActive} active client certificate(s), the maximum`);
  }
}

export class DownloadLinkUnusableError extends StoreError {
  constructor(readonly reason: TokenUnusableReason) {
    super(`certificate download link is ${reason}`);
  }
}

/** The store could not be reached or failed; callers fail closed. */
export class StoreUnavailableError extends StoreError {}
