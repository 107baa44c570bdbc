import type { KanmonConfig } from '../config/schema.js';
import { openKmsSecretBox } from './kms-secret-box.js';
import { openLocalSecretBox } from './local-secret-box.js';
import type { SecretBox } from './secret-box.js';

/** The SecretBox the config names; the server and the CLI must open the same one. */
export async function openSecretBox(config: KanmonConfig): Promise<SecretBox> {
  if (config.secrets.provider === 'kms') {
    return openKmsSecretBox({ keyId: config.secrets.keyId, ...(config.secrets.region ? { region: config.secrets.region } : {}) });
  }
  return openLocalSecretBox(config.dataDir);
}
