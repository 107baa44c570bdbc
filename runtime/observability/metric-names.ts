/**
 * The metrics Kanmon emits, with the single dimension set each is emitted with. The AWS
 * stack's alarms select on exactly these (lib/metrics.ts holds the same contract; a test
 * compares the two, since runtime/ may not import lib/).
 */
export const METRICS = {
  requests: { name: 'Requests', dimensions: ['Route', 'StatusClass'], unit: 'Count' },
  upstream5xx: { name: 'Upstream5xx', dimensions: ['Route'], unit: 'Count' },
  upstreamErrors: { name: 'UpstreamErrors', dimensions: ['Route'], unit: 'Count' },
  upstreamLatency: { name: 'UpstreamLatency', dimensions: ['Route'], unit: 'Milliseconds' },
  upstreamTimeouts: { name: 'UpstreamTimeouts', dimensions: ['Route'], unit: 'Count' },
  requestBodyTooLarge: { name: 'RequestBodyTooLarge', dimensions: ['Route'], unit: 'Count' },
  loginSuccess: { name: 'LoginSuccess', dimensions: ['Method'], unit: 'Count' },
  loginFailure: { name: 'LoginFailure', dimensions: ['Method'], unit: 'Count' },
  activeSessions: { name: 'ActiveSessions', dimensions: [], unit: 'Count' },
  serverCertificateDaysToExpiry: { name: 'ServerCertificateDaysToExpiry', dimensions: [], unit: 'None' },
  selfCheckFailures: { name: 'SelfCheckFailures', dimensions: ['Check'], unit: 'Count' },
  serverCertificateRenewalFailures: { name: 'ServerCertificateRenewalFailures', dimensions: [], unit: 'Count' },
  storeErrors: { name: 'StoreErrors', dimensions: [], unit: 'Count' },
  clientCertificatesExpiring: { name: 'ClientCertificatesExpiring', dimensions: [], unit: 'Count' },
} as const;

export type MetricKey = keyof typeof METRICS;
export type MetricUnit = (typeof METRICS)[MetricKey]['unit'];
