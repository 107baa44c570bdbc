/**
 * `npx kanmon <command>`: administration from the shell, on whichever store the config
 * names, through the same services the portal uses.
 */
import 'reflect-metadata';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config/index.js';
import type { KanmonConfig } from '../config/schema.js';
import { openSecretBox } from '../secrets/index.js';
import { createServices, ServiceError } from '../services/index.js';
import { openStore } from '../store/index.js';
import { StoreError } from '../store/errors.js';
import { UsageError } from './args.js';
import { runCommand, USAGE } from './commands.js';

async function main(argv: string[]): Promise<number> {
  let file: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') file = argv[++i];
    else if (a.startsWith('--config=')) file = a.slice(9);
    else rest.push(a);
  }
  if (rest.length === 0 || rest[0] === '--help' || rest[0] === 'help' || rest[0] === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return rest.length === 0 ? 2 : 0;
  }
  const { config } = loadConfig(file ? { file } : {});
  const logger = pino({ level: 'warn' }, process.stderr);
  const store = await openStore(config);
  try {
    const secrets = await openSecretBox(config);
    // Routes and live settings as stored (what the nodes run), e.g. a route given upstreamAuth in the console.
    let stored: KanmonConfig | undefined;
    const services = createServices({ config, store, secrets, logger, live: { get config() { return stored ?? config; } } });
    stored = await services.configVersions.effective().then(
      (e) => e.config,
      (err: unknown) => {
        logger.warn({ err }, 'the stored config version is not usable with this config file; using the file\'s routes and settings');
        return undefined;
      },
    );
    return await runCommand(rest, services, config, { out: (line) => process.stdout.write(`${line}\n`) });
  } finally {
    await store.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError) {
      process.stderr.write(`kanmon: ${err.message}\n\n${USAGE}\n`);
      process.exit(2);
    }
    if (err instanceof ConfigError || err instanceof ServiceError || err instanceof StoreError) {
      process.stderr.write(`kanmon: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`kanmon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
