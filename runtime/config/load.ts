import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, parseConfig, type KanmonConfig } from './schema.js';

/**
 * Environment variables that override single options. Values are parsed the way the file
 * would hold them (numbers for ports) so the schema reports bad values in its own words.
 */
const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: readonly string[]; type: 'string' | 'int' }> = [
  { env: 'KANMON_PORT', path: ['server', 'port'], type: 'int' },
  { env: 'KANMON_HOST', path: ['server', 'host'], type: 'string' },
  { env: 'KANMON_PUBLIC_ORIGIN', path: ['server', 'publicOrigin'], type: 'string' },
  { env: 'KANMON_HEALTH_PORT', path: ['server', 'healthPort'], type: 'int' },
  { env: 'KANMON_HTTP_PORT', path: ['server', 'httpPort'], type: 'int' },
  { env: 'KANMON_DATA_DIR', path: ['dataDir'], type: 'string' },
  { env: 'KANMON_STORE', path: ['store', 'kind'], type: 'string' },
  { env: 'KANMON_DYNAMODB_TABLE', path: ['store', 'table'], type: 'string' },
  { env: 'KANMON_DYNAMODB_REGION', path: ['store', 'region'], type: 'string' },
  { env: 'KANMON_DYNAMODB_ENDPOINT', path: ['store', 'endpoint'], type: 'string' },
  { env: 'KANMON_LOG_LEVEL', path: ['log', 'level'], type: 'string' },
];

export const ENV_OVERRIDE_NAMES = ENV_OVERRIDES.map((o) => o.env);

export interface LoadConfigOptions {
  /** `--config FILE`, which wins over KANMON_CONFIG_FILE. */
  readonly file?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface LoadedConfig {
  readonly config: KanmonConfig;
  /** Where the options came from, for the start-up log. */
  readonly source: string;
}

/**
 * Resolves the config: KANMON_CONFIG_JSON (the whole config, as the AWS stack hands it
 * over), else --config FILE, else KANMON_CONFIG_FILE, else ./kanmon.config.json when
 * present, else built-in defaults; then single-value environment overrides.
 */
export function loadConfig(opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  let raw: unknown = {};
  let source = 'defaults';
  if (env.KANMON_CONFIG_JSON) {
    raw = parseJson(env.KANMON_CONFIG_JSON, 'KANMON_CONFIG_JSON');
    source = 'KANMON_CONFIG_JSON';
  } else {
    const file = opts.file ?? env.KANMON_CONFIG_FILE ?? (existsSync(resolve(cwd, 'kanmon.config.json')) ? 'kanmon.config.json' : undefined);
    if (file) {
      const path = resolve(cwd, file);
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (err) {
        throw new ConfigError([`config file ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
      }
      raw = parseJson(text, path);
      source = path;
    }
  }
  const merged = applyEnvOverrides(raw, env);
  return { config: parseConfig(merged), source };
}

export function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = structuredClone(raw as Record<string, unknown>);
  for (const o of ENV_OVERRIDES) {
    const v = env[o.env];
    if (v === undefined || v === '') continue;
    const value = o.type === 'int' && /^\d+$/.test(v) ? Number(v) : v;
    let node = out;
    for (const key of o.path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[o.path[o.path.length - 1]!] = value;
  }
  return out;
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${where}: not valid JSON (${(err as Error).message})`]);
  }
}
