import { METRICS, type MetricKey } from './metric-names.js';

type Dims<K extends MetricKey> = { readonly [D in (typeof METRICS)[K]['dimensions'][number]]: string };

interface Series {
  readonly key: MetricKey;
  readonly dims: Readonly<Record<string, string>>;
  /** Counts: the running sum. Gauges: the last value. */
  value: number;
  /** Timings: a bounded sample of the values since the last flush. */
  samples: number[];
  seen: number;
}

/** EMF allows up to 100 values per metric per record. */
const MAX_SAMPLES = 100;

/**
 * In-process metrics, flushed as CloudWatch Embedded Metric Format lines on stdout once a
 * minute: counting costs a map update on the request path and never an SDK call. With
 * `emit: false` (local runs) nothing is printed but the numbers stay readable.
 */
export class Metrics {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: {
      readonly namespace: string;
      readonly emit: boolean;
      readonly write?: (line: string) => void;
      readonly now?: () => number;
    },
  ) {}

  count<K extends MetricKey>(key: K, dims: Dims<K>, n = 1): void {
    this.entry(key, dims).value += n;
  }

  gauge<K extends MetricKey>(key: K, dims: Dims<K>, value: number): void {
    const s = this.entry(key, dims);
    s.value = value;
    s.seen = 1;
  }

  timing<K extends MetricKey>(key: K, dims: Dims<K>, ms: number): void {
    sample(this.entry(key, dims), ms);
  }

  /**
   * A counter bound to one series, for the request path: the series key is built once here,
   * not per request. Flushing resets the series but keeps it, so a handle stays valid.
   */
  counter<K extends MetricKey>(key: K, dims: Dims<K>): (n?: number) => void {
    const s = this.entry(key, dims);
    return (n = 1) => {
      s.value += n;
    };
  }

  /** A timing series bound once, for the request path (see counter). */
  sampler<K extends MetricKey>(key: K, dims: Dims<K>): (ms: number) => void {
    const s = this.entry(key, dims);
    return (ms) => sample(s, ms);
  }

  /** The current value of a counter or gauge (tests and the admin dashboard). */
  read<K extends MetricKey>(key: K, dims: Dims<K>): number {
    return this.series.get(seriesId(key, dims))?.value ?? 0;
  }

  /** The timing samples gathered since the last flush (tests and the admin dashboard). */
  samples<K extends MetricKey>(key: K, dims: Dims<K>): readonly number[] {
    return this.series.get(seriesId(key, dims))?.samples ?? [];
  }

  private entry(key: MetricKey, dims: Readonly<Record<string, string>>): Series {
    const id = seriesId(key, dims);
    let s = this.series.get(id);
    if (!s) {
      s = { key, dims: { ...dims }, value: 0, samples: [], seen: 0 };
      this.series.set(id, s);
    }
    return s;
  }

  /** Writes one EMF record per series with data since the last flush, then resets counters. */
  flush(): void {
    const timestamp = (this.opts.now ?? Date.now)();
    const write = this.opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
    for (const s of this.series.values()) {
      const def = METRICS[s.key];
      let value: number | number[] | undefined;
      if (def.unit === 'Milliseconds') {
        if (s.samples.length > 0) value = s.samples.map((v) => Math.round(v * 100) / 100);
        s.samples = [];
        s.seen = 0;
      } else if (s.key === 'activeSessions' || s.key === 'serverCertificateDaysToExpiry' || s.key === 'clientCertificatesExpiring') {
        if (s.seen > 0) value = s.value;
      } else {
        if (s.value !== 0) value = s.value;
        s.value = 0;
      }
      if (value === undefined || !this.opts.emit) continue;
      write(
        JSON.stringify({
          _aws: {
            Timestamp: timestamp,
            CloudWatchMetrics: [{ Namespace: this.opts.namespace, Dimensions: [[...def.dimensions]], Metrics: [{ Name: def.name, Unit: def.unit }] }],
          },
          ...s.dims,
          [def.name]: value,
        }),
      );
    }
  }

  start(intervalMs = 60_000): () => void {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
    return () => {
      if (this.timer) clearInterval(this.timer);
      this.flush();
    };
  }
}

/** Reservoir sampling keeps the sample representative without growing past EMF's limit. */
function sample(s: Series, ms: number): void {
  s.seen++;
  if (s.samples.length < MAX_SAMPLES) s.samples.push(ms);
  else {
    const j = Math.floor(Math.random() * s.seen);
    if (j < MAX_SAMPLES) s.samples[j] = ms;
  }
}

function seriesId(key: string, dims: Readonly<Record<string, string>>): string {
  let id = key;
  for (const k in dims) id += `|${dims[k]}`;
  return id;
}

export function statusClass(status: number): '1xx' | '2xx' | '3xx' | '4xx' | '5xx' {
  if (status < 200) return '1xx';
  if (status < 300) return '2xx';
  if (status < 400) return '3xx';
  if (status < 500) return '4xx';
  return '5xx';
}

/**
 * The gateway's per-response count of Requests by route and status class, with one bound
 * counter per route and class made on first use, so a response costs an array index, not a key.
 */
export function requestCounter(metrics: Metrics): (routeId: string, status: number) => void {
  const byRoute = new Map<string, ((n?: number) => void)[]>();
  return (routeId, status) => {
    let counters = byRoute.get(routeId);
    if (!counters) {
      counters = [];
      byRoute.set(routeId, counters);
    }
    const index = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1;
    (counters[index] ??= metrics.counter('requests', { Route: routeId, StatusClass: statusClass(status) }))();
  };
}
