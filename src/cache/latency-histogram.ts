/**
 * Cache read latencies counted into fixed buckets since the process started: what a Prometheus
 * histogram holds, kept by the cache itself so a read pays a few comparisons rather than a metric
 * library's label lookup (the telemetry layer exports it at scrape time).
 */

/** Upper bounds in seconds: an L1 hit takes about a microsecond, a Redis round trip a few hundred. */
export const CACHE_LATENCY_BUCKETS_S = [
  0.000002, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25,
] as const;

export class LatencyHistogram {
  /** Reads per bucket (not cumulative); the last one is above every bound. */
  readonly counts = new Float64Array(CACHE_LATENCY_BUCKETS_S.length + 1);
  /** Seconds, summed. */
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < CACHE_LATENCY_BUCKETS_S.length && seconds > (CACHE_LATENCY_BUCKETS_S[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += seconds;
    this.count++;
  }
}
