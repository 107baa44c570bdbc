export { CeremonyError, CEREMONY_FAILURE_REASONS, isCeremonyError, type CeremonyFailureReason } from './errors.js';
export { SUPPORTED_ALGORITHM_IDS, type CeremonyDeps } from './ceremony.js';
export {
  startPasskeyRegistration,
  verifyPasskeyRegistration,
  userHandleFor,
  type StartPasskeyRegistrationInput,
  type VerifyPasskeyRegistrationInput,
  type VerifiedPasskeyRegistration,
} from './registration.js';
export {
  startPasskeyAuthentication,
  verifyPasskeyAuthentication,
  type StartPasskeyAuthenticationInput,
  type VerifyPasskeyAuthenticationInput,
  type VerifiedPasskeyAuthentication,
} from './authentication.js';
export {
  parseRegistrationResponse,
  parseAuthenticationResponse,
  decodeClientData,
  isCanonicalBase64Url,
  RESPONSE_LIMITS,
  type ClientData,
  type ParsedRegistrationResponse,
  type ParsedAuthenticationResponse,
} from './response-shape.js';
export { authenticatorName, ZERO_AAGUID } from './aaguids.js';
export { AuthenticatorMetadata, type AuthenticatorStatus, type MetadataSource } from './authenticator-metadata.js';
export { judgeAttestation, type AttestationVerdict } from './attestation-trust.js';
export { MetadataBlobError, verifyMetadataBlob, REFUSED_STATUSES, type MetadataEntry, type VerifiedMetadataBlob } from './metadata-blob.js';
