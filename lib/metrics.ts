/**
 * The metrics the Kanmon runtime emits as CloudWatch Embedded Metric Format (EMF) lines on
 * stdout, and that the stack's alarms and dashboard read.
 *
 * This file is the contract between `runtime/` (which emits) and `lib/` (which alarms). The
 * runtime cannot import it (runtime never imports lib/), so it is deliberately plain data: the
 * runtime author mirrors these names, dimension sets and units exactly. Each EMF record uses
 * the namespace from config `metrics.namespace` (default {@link DEFAULT_METRICS_NAMESPACE}) and
 * exactly ONE dimension set per metric, the one listed here; the alarms select on that set
 * (Metrics Insights `SCHEMA(namespace, ...dimensions)`), so a different set is invisible to them.
 */

/** Namespace used when config `metrics.namespace` is not set; mirrors the config schema default. */
export const DEFAULT_METRICS_NAMESPACE = 'Kanmon';

/** One metric of the contract. */
export interface KanmonMetricDefinition {
  /** Metric name in the EMF record. */
  readonly name: string;
  /** The single dimension set the runtime emits the metric with. */
  readonly dimensions: readonly string[];
  /** EMF unit. */
  readonly unit: 'Count' | 'Milliseconds' | 'None';
  /** What one data point means. */
  readonly description: string;
}

export const KANMON_METRICS = {
  requests: {
    name: 'Requests',
    dimensions: ['Route', 'StatusClass'],
    unit: 'Count',
    description: 'One per proxied response; Route is the route id (or "portal"), StatusClass one of STATUS_CLASSES.',
  },
  upstream5xx: {
    name: 'Upstream5xx',
    dimensions: ['Route'],
    unit: 'Count',
    description: 'One per upstream response with a 5xx status.',
  },
  upstreamErrors: {
    name: 'UpstreamErrors',
    dimensions: ['Route'],
    unit: 'Count',
    description: 'One per upstream failure without a response: connection refused or reset, timeout, TLS error.',
  },
  upstreamLatency: {
    name: 'UpstreamLatency',
    dimensions: ['Route'],
    unit: 'Milliseconds',
    description: 'Time from sending the request upstream to receiving the response headers.',
  },
  upstreamTimeouts: {
    name: 'UpstreamTimeouts',
    dimensions: ['Route'],
    unit: 'Count',
    description: 'One per request answered 504 because the upstream did not connect or answer in time (also counted in UpstreamErrors).',
  },
  requestBodyTooLarge: {
    name: 'RequestBodyTooLarge',
    dimensions: ['Route'],
    unit: 'Count',
    description: "One per request refused with 413 because its body is larger than the route's connection.maxRequestBodyBytes.",
  },
  loginSuccess: {
    name: 'LoginSuccess',
    dimensions: ['Method'],
    unit: 'Count',
    description: 'One per completed login; Method one of LOGIN_METHODS.',
  },
  loginFailure: {
    name: 'LoginFailure',
    dimensions: ['Method'],
    unit: 'Count',
    description: 'One per failed login attempt (bad assertion, wrong code, unknown user); Method one of LOGIN_METHODS.',
  },
  activeSessions: {
    name: 'ActiveSessions',
    dimensions: [],
    unit: 'Count',
    description: 'Sessions not yet expired, emitted by the self-check every minute.',
  },
  serverCertificateDaysToExpiry: {
    name: 'ServerCertificateDaysToExpiry',
    dimensions: [],
    unit: 'None',
    description: 'Whole days until the served certificate expires, emitted by the self-check every minute (not emitted when tls.source is "offloaded").',
  },
  selfCheckFailures: {
    name: 'SelfCheckFailures',
    dimensions: ['Check'],
    unit: 'Count',
    description: 'One per failed self-check probe (store round trip, certificate, an upstream); Check names the probe.',
  },
  serverCertificateRenewalFailures: {
    name: 'ServerCertificateRenewalFailures',
    dimensions: [],
    unit: 'Count',
    description: 'One per failed ACME order for the server certificate (tls.source "acme"); the certificate in service stays, and the next attempt backs off.',
  },
  storeErrors: {
    name: 'StoreErrors',
    dimensions: [],
    unit: 'Count',
    description: 'One per store call that failed because the store could not be reached or failed (not conflicts or not-found); new sign-ins fail meanwhile.',
  },
  clientCertificatesExpiring: {
    name: 'ClientCertificatesExpiring',
    dimensions: [],
    unit: 'Count',
    description: 'Active client certificates that expire within clientCertificates.renewBeforeDays, emitted by the node that ran the hourly expiry-warning job.',
  },
} as const satisfies Record<string, KanmonMetricDefinition>;

/** Values of the `StatusClass` dimension of `Requests`. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Values of the `Method` dimension of `LoginSuccess` / `LoginFailure`. */
export const LOGIN_METHODS = ['passkey', 'otp', 'recovery'] as const;
