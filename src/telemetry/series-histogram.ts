/**
 * A Prometheus histogram for the request hot path, registered in a prom-client Registry.
 *
 * prom-client's Histogram validates, converts and hashes the label object on every observe (about
 * 1.4 µs per request in `omnivibe serve`, measured with --cpu-prof: the largest single cost of the
 * HTTP metrics). Here a caller resolves a label set to its series once and keeps it; an observation
 * is then a binary search over the buckets and three additions.
 *
 * The registry reads a metric through `get()` (documented: `registry.registerMetric`, and the
 * `getMetricsAsJSON` shape it returns). The exposition is the same as prom-client's Histogram for
 * the same observations (test/telemetry/series-histogram.test.ts compares the two byte for byte, so
 * an upgrade of prom-client that changes either fails there).
 */
import type { Metric, Registry } from 'prom-client';

export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;

/** One sample as the registry formats it (prom-client's `getMetricsAsJSON` shape). */
interface Sample {
  labels: Record<string, string | number>;
  /** Written after `labels`. */
  sharedLabels?: Readonly<Record<string, string | number>>;
  value: number;
  metricName: string;
}

interface Exposed {
  name: string;
  help: string;
  type: 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

/** One label set's counts. */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last entry counts those above every bound (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string | number>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    // The first bound >= value (Prometheus buckets are upper-inclusive).
    const b = this.bounds;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((b[mid] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo] = (this.counts[lo] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

export interface SeriesHistogramOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  buckets: readonly number[];
  registers: Registry[];
}

export class SeriesHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly bounds: readonly number[];
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(opts: SeriesHistogramOptions<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.bounds = [...opts.buckets].sort((a, b) => a - b);
    for (const r of opts.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set (created at its first use). Keep it: this call builds a key. */
  labels(values: LabelValues<L>): HistogramSeries {
    const key = this.labelNames.map((n) => String(values[n])).join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels: Record<string, string | number> = {};
      for (const n of this.labelNames) labels[n] = values[n];
      s = new HistogramSeries(Object.freeze(labels), this.bounds);
      this.series.set(key, s);
    }
    return s;
  }

  /**
   * Read by the registry's text exposition at each scrape, as prom-client's Histogram writes it: the
   * `le` label first, then the series' labels (`sharedLabels`); cumulative buckets, then sum and count.
   */
  getForPromString(): Promise<Exposed> {
    const values: Sample[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        values.push(this.sample({ le }, s, cumulative, '_bucket'));
      });
      values.push(this.sample({ le: '+Inf' }, s, s.count, '_bucket'));
      values.push(this.sample({}, s, s.sum, '_sum'));
      values.push(this.sample({}, s, s.count, '_count'));
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  /** The same figures with each sample's labels in one object (the registry's `getMetricsAsJSON`). */
  async get(): Promise<Exposed> {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ labels, sharedLabels, value, metricName }) => ({
        labels: { ...labels, ...sharedLabels },
        value,
        metricName,
      })),
    };
  }

  private sample(labels: Sample['labels'], s: HistogramSeries, value: number, suffix: string): Sample {
    return { labels, sharedLabels: s.labels, value, metricName: `${this.name}${suffix}` };
  }
}
