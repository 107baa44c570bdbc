export { SecretKeyFileError, SecretOpenError, type SecretBox } from './secret-box.js';
export { LOCAL_SECRET_KEY_FILE, openLocalSecretBox } from './local-secret-box.js';
export { openSecretBox } from './open-secret-box.js';
