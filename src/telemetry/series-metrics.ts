/**
 * Prometheus histograms and counters for the hot paths (requests, job attempts, statements),
 * registered in a prom-client Registry.
 *
 * prom-client's Histogram and Counter validate, convert and hash the label object on every observe
 * or inc (their `labels()` children too: a child only binds the label object, and hashes it on each
 * call). Measured with --cpu-prof of `omnivibe serve`, that hashing was the largest single cost of
 * the HTTP metrics (about 1.4 µs a request). Here a caller resolves a label set to its series once
 * and keeps it; an observation is then a binary search over the buckets and three additions, an
 * increment one addition.
 *
 * The registry reads a metric through `get()` (documented: `registry.registerMetric`, and the
 * `getMetricsAsJSON` shape it returns) and, when present, `getForPromString()`. The exposition is
 * the same as prom-client's Histogram and Counter for the same observations, series in the order
 * they were first used (test/telemetry/series-metrics.test.ts compares them byte for byte, so an
 * upgrade of prom-client that changes either fails there).
 */
import type { Metric, Registry } from 'prom-client';

export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;
type Labels = Readonly<Record<string, string | number>>;

/** One sample as the registry formats it (prom-client's `getMetricsAsJSON` shape). */
interface Sample {
  labels: Record<string, string | number>;
  /** Written after `labels`; the registry caches their text per object, so a series keeps one. */
  sharedLabels?: Labels;
  value: number;
  metricName?: string;
}

interface Exposed {
  name: string;
  help: string;
  type: 'histogram' | 'counter';
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
    readonly labels: Labels,
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

/** One label set's count. */
export class CounterSeries {
  value = 0;

  constructor(readonly labels: Labels) {}

  /** Adds `by` (default 1; a count, so finite and not negative). */
  inc(by = 1): void {
    if (!(by >= 0) || by === Infinity) throw new TypeError(`Counter increment is not a count: ${by}`);
    this.value += by;
  }
}

export interface SeriesMetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

/** A metric family whose series are resolved once per label set and kept by the caller. */
abstract class SeriesFamily<L extends string, S extends { readonly labels: Labels }> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum' as const;
  abstract readonly type: Exposed['type'];
  private readonly labelNames: readonly L[];
  protected readonly series = new Map<string, S>();

  constructor(opts: SeriesMetricOptions<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    for (const r of opts.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set (created at its first use). Keep it: this call builds a key. */
  labels(values: LabelValues<L>): S {
    const key = this.labelNames.map((n) => String(values[n])).join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels: Record<string, string | number> = {};
      for (const n of this.labelNames) labels[n] = values[n];
      s = this.create(Object.freeze(labels));
      this.series.set(key, s);
    }
    return s;
  }

  protected abstract create(labels: Labels): S;

  /** The samples of one exposition, each series' labels as `sharedLabels`. */
  protected abstract samples(): Sample[];

  /** Read by the registry's text exposition at each scrape. */
  getForPromString(): Promise<Exposed> {
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.samples(),
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
        ...(metricName === undefined ? {} : { metricName }),
      })),
    };
  }
}

export interface SeriesHistogramOptions<L extends string> extends SeriesMetricOptions<L> {
  buckets: readonly number[];
}

export class SeriesHistogram<L extends string> extends SeriesFamily<L, HistogramSeries> {
  readonly type = 'histogram' as const;
  private readonly bounds: readonly number[];

  constructor(opts: SeriesHistogramOptions<L>) {
    super(opts);
    this.bounds = [...opts.buckets].sort((a, b) => a - b);
  }

  protected create(labels: Labels): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }

  /** As prom-client's Histogram writes them: the `le` label first, cumulative buckets, then sum and count. */
  protected samples(): Sample[] {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        values.push({ labels: { le }, sharedLabels: s.labels, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return values;
  }
}

export class SeriesCounter<L extends string> extends SeriesFamily<L, CounterSeries> {
  readonly type = 'counter' as const;

  protected create(labels: Labels): CounterSeries {
    return new CounterSeries(labels);
  }

  /** One sample per series, as prom-client's Counter writes them. */
  protected samples(): Sample[] {
    return [...this.series.values()].map((s) => ({ labels: {}, sharedLabels: s.labels, value: s.value }));
  }
}
