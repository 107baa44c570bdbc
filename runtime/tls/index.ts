export { DEV_CA_DIR, ensureDevCertificates, type DevCertificateOptions, type DevCertificates } from './dev-ca.js';
