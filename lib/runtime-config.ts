import { Token } from 'aws-cdk-lib';
import { validateConfig, type KanmonConfigInput } from '../runtime/config/schema.js';
import { DEFAULT_METRICS_NAMESPACE } from './metrics.js';

/**
 * Builds the runtime configuration the container receives in {@link CONFIG_ENVIRONMENT_VARIABLE},
 * from the same schema the runtime validates at start-up, and checks it at synth time.
 */

/** The one environment variable that carries the runtime configuration as JSON. */
export const CONFIG_ENVIRONMENT_VARIABLE = 'KANMON_CONFIG_JSON';

/**
 * Container ports. All above 1024 because the container runs as a non-root user.
 * `tls` receives the NLB's 443 traffic (TLS passthrough, or plain HTTP when TLS is offloaded),
 * `http` receives port 80 (ACME HTTP-01 and the redirect), `health` serves /healthz and /readyz
 * to the NLB health checks and the container health check only.
 */
export const CONTAINER_PORTS = { tls: 8443, http: 8080, health: 8081 } as const;

/** Writable scratch directory inside the container (the root filesystem is read-only). */
export const SCRATCH_PATH = '/tmp';

/** The TLS part of the config, one shape per `certificates` choice. */
export type RuntimeTlsConfig =
  | { readonly source: 'acme'; readonly domains: readonly string[]; readonly email: string; readonly directoryUrl: string }
  | { readonly source: 'imported'; readonly secretArn: string }
  | { readonly source: 'offloaded' };

export interface RuntimeConfigParts {
  /** Public host name; the origin users type is `https://<domain>`. */
  readonly domain: string;
  readonly tls: RuntimeTlsConfig;
  readonly tableName: string;
  readonly region: string;
  /** The customer-managed key that encrypts the runtime's secrets. */
  readonly keyArn: string;
  readonly topicArn: string;
  /** Networks the NLB sends PROXY v2 headers from. */
  readonly proxyNetworks: readonly string[];
  /** Options from the operator's config file; must not set what the stack owns. */
  readonly base?: KanmonConfigInput;
  /** `server.workers` when the config file does not set it; see {@link workersForTaskCpu}. */
  readonly workers?: number;
}

/**
 * Worker processes for a Fargate task of `cpu` units: one per whole vCPU, at least one. The
 * stack knows the task size exactly, while a container may see more CPUs than its task may use
 * (a 0.5 vCPU task sees two), so this is set explicitly rather than left to "auto".
 */
export function workersForTaskCpu(cpu: number): number {
  return Math.max(1, Math.floor(cpu / 1024));
}

/**
 * Options the stack sets from its own resources and props. A config file that sets one of
 * them is refused, rather than silently overridden, so nobody wonders why an edit has no effect.
 */
export const STACK_OWNED_OPTIONS: readonly string[] = [
  'dataDir',
  'server.port',
  'server.host',
  'server.publicOrigin',
  'server.healthPort',
  'server.httpPort',
  'server.proxyProtocol',
  'tls',
  'store',
  'secrets',
  'notifications',
  'metrics.emf',
];

/** Lists the stack-owned options the given config file sets (dotted paths). */
export function stackOwnedOptionsIn(base: KanmonConfigInput | undefined): string[] {
  if (!base) return [];
  const record = base as Record<string, unknown>;
  return STACK_OWNED_OPTIONS.filter((path) => {
    const [section, option] = path.split('.') as [string, string | undefined];
    const value = record[section];
    if (option === undefined) return value !== undefined;
    return typeof value === 'object' && value !== null && (value as Record<string, unknown>)[option] !== undefined;
  });
}

/** The metrics namespace the runtime will use for the given config file. */
export function metricsNamespace(base: KanmonConfigInput | undefined): string {
  return base?.metrics?.namespace ?? DEFAULT_METRICS_NAMESPACE;
}

export function buildRuntimeConfig(parts: RuntimeConfigParts): KanmonConfigInput {
  const base = parts.base ?? {};
  return {
    ...base,
    dataDir: `${SCRATCH_PATH}/kanmon`,
    server: {
      ...(parts.workers !== undefined ? { workers: parts.workers } : {}),
      ...base.server,
      port: CONTAINER_PORTS.tls,
      host: '0.0.0.0',
      publicOrigin: `https://${parts.domain}`,
      healthPort: CONTAINER_PORTS.health,
      httpPort: CONTAINER_PORTS.http,
      proxyProtocol: { enabled: true, allowedNetworks: [...parts.proxyNetworks] },
    },
    tls: parts.tls.source === 'acme' ? { ...parts.tls, domains: [...parts.tls.domains] } : parts.tls,
    store: { kind: 'dynamodb', table: parts.tableName, region: parts.region },
    secrets: { provider: 'kms', keyId: parts.keyArn, region: parts.region },
    notifications: { kind: 'sns', topicArn: parts.topicArn, region: parts.region },
    metrics: { namespace: metricsNamespace(base), emf: true },
  };
}

/**
 * Stand-ins for values only known at deploy time, chosen to satisfy the schema's format checks
 * so that every other value can be checked now.
 */
const PLACEHOLDERS: Record<string, string> = {
  table: 'kanmon-placeholder-table',
  region: 'us-east-1',
  keyId: 'arn:aws:kms:us-east-1:111111111111:key/00000000-0000-0000-0000-000000000000',
  topicArn: 'arn:aws:sns:us-east-1:111111111111:kanmon-placeholder',
  secretArn: 'arn:aws:secretsmanager:us-east-1:111111111111:secret:kanmon-placeholder-AbCdEf',
  allowedNetworks: '10.0.0.0/16',
};

/** Replaces unresolved tokens with placeholders, by the name of the option that holds them. */
export function withPlaceholders(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    return Token.isUnresolved(value) ? (PLACEHOLDERS[key] ?? 'placeholder') : value;
  }
  if (Array.isArray(value)) return value.map((v) => withPlaceholders(v, key));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withPlaceholders(v, k)]));
  }
  return value;
}

/** Runs the runtime's own validator on the config, deploy-time values replaced by placeholders. */
export function checkRuntimeConfig(config: KanmonConfigInput): readonly string[] {
  const result = validateConfig(withPlaceholders(config));
  return result.ok ? [] : result.errors;
}
