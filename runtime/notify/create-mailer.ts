import type { Logger } from 'pino';
import type { MailConfig } from '../config/schema.js';
import type { Mailer } from './mailer.js';
import { SmtpMailer } from './smtp-mailer.js';

/**
 * The per-recipient mail channel the configuration names, or undefined when there is none
 * (certificate links are then handed out by the CLI, a letter or the console, and expiry
 * warnings reach administrators only). Weaker settings are warned about at every start.
 */
export function createMailer(config: MailConfig | undefined, logger: Logger, env: NodeJS.ProcessEnv = process.env): Mailer | undefined {
  if (!config) return undefined;
  let password: string | undefined;
  if (config.passwordEnv !== undefined) {
    password = env[config.passwordEnv];
    if (password === undefined || password === '') {
      throw new Error(`notifications.mail: option 'passwordEnv' names ${config.passwordEnv}, which is not set in the environment`);
    }
  }
  if (config.security === 'none') {
    logger.warn(
      { mail: true, host: config.host, port: config.port },
      'notifications.mail.security is "none": certificate download links are mailed to the relay in plain text; use "starttls" or "tls" unless the relay is on this host',
    );
  }
  return new SmtpMailer({ config, ...(password !== undefined ? { password } : {}), logger });
}
