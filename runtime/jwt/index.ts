export {
  SigningKeyService,
  SigningKeyUnusableError,
  signingKeyContext,
  type ActiveSigningKey,
  type Jwks,
  type PublicSigningJwk,
  type SigningKeyServiceDeps,
} from './signing-keys.js';
export {
  IdentityTokenCache,
  MAX_IDENTITY_TOKEN_TTL_SECONDS,
  mintIdentityToken,
  type IdentityToken,
  type IdentityTokenCacheOptions,
  type IdentityTokenClaims,
  type MintIdentityTokenInput,
  type TokenIdentity,
  type TokenSigningKey,
} from './identity-token.js';
