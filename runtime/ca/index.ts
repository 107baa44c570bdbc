export { CertificateAuthorityService, CA_ID, CA_KEY_CONTEXT, type CaInfo, type CertificateAuthorityServiceDeps } from './ca-service.js';
export {
  ClientCertificateService,
  CA_CERT_PATH,
  CA_CRL_PATH,
  CERT_DOWNLOAD_PATH,
  REVOCATION_REASONS,
  type CertificateFile,
  type ClientCertificateServiceDeps,
  type DownloadLink,
  type IssueOptions,
  type IssuedCertificate,
  type PresentedCertificateCheck,
  type PresentedCertificateRefusal,
} from './client-certificates.js';
export { BulkCertificateOperations, MAX_BULK_USERS, type BulkDownloadResult, type BulkIssueResult, type BulkUserResult } from './bulk.js';
export { buildPkcs12, type Pkcs12Input, type Pkcs12Profile } from './pkcs12.js';
export { buildCrl } from './crl.js';
export { buildZip, type ZipEntry } from './zip.js';
export { parseUsernameCsv } from './csv.js';
export { OWNER_URI_PREFIX, ownerFromUri, ownerUri } from './names.js';
