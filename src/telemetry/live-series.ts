/**
 * The live figures as time series: the `telemetry_samples` rows of a window put into buckets of
 * `step` (a row belongs to the bucket its interval ended in), each bucket's figures merged over
 * every process the way the summary merges the whole window. A bucket of whole minutes is made of
 * the minute aggregates the summary keeps (live-summary.ts); a finer one of its rows. The /admin
 * overview page draws them.
 */
import { QUEUE_NAMES } from '../jobs/types.js';
import type { LiveAggregate } from './live-aggregate.js';
import { KEY_SEP, type LiveInterval } from './live-recorder.js';
import { mergeEncoded, newSketch, quantile } from './sketch.js';

/** At most this many buckets per series (a 1 h window in 5 s steps). */
export const MAX_SERIES_POINTS = 720;

export interface QueueSeries {
  queue: string;
  /** Attempts finished (completed, failed, dead, cancelled) per second. */
  throughput_per_s: number[];
  /** Attempts that failed for good (failed, dead) per second. */
  failures_per_s: number[];
  /** Jobs ready to run at the bucket's last sample (the largest any process saw); null: no sample. */
  waiting: (number | null)[];
  oldest_waiting_s: (number | null)[];
}

export interface Series {
  window_s: number;
  step_s: number;
  generated_at: string;
  /** Bucket starts, Unix seconds, oldest first; every array below is aligned with it. */
  t: number[];
  http: {
    rps: number[];
    /** 5xx share; null where no request was served. */
    error_rate: (number | null)[];
    p50_ms: (number | null)[];
    p90_ms: (number | null)[];
    p99_ms: (number | null)[];
  };
  queues: QueueSeries[];
  cache: { hit_rate: (number | null)[] };
  /** Spend per bucket in USD, per provider (from ai_api_usage). */
  ai_cost: { provider: string; usd: number[] }[];
}

export interface CostRow {
  provider: string;
  atMs: number;
  usd: number;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const ms = (seconds: number | null) => (seconds === null ? null : round(seconds * 1000, 3));
/** The buckets of a series: `n` of one step each, from `start` to `end`. */
export interface SeriesBuckets {
  n: number;
  start: number;
  end: number;
}

/** The buckets of a series over `windowMs` up to `nowMs` rounded up to the step. */
export function seriesBuckets(nowMs: number, windowMs: number, stepMs: number): SeriesBuckets {
  const n = Math.ceil(windowMs / stepMs);
  const end = Math.ceil(nowMs / stepMs) * stepMs;
  return { n, start: end - n * stepMs, end };
}

/**
 * The bucket a row that ended at `endMs` belongs to (the one its interval ended in); a row ending at
 * or after `end` (now, on a step boundary, or a process whose clock runs ahead) belongs to the newest.
 */
export function bucketOf(endMs: number, b: SeriesBuckets, stepMs: number): number {
  return Math.floor((Math.min(endMs, b.end - 1) - b.start) / stepMs);
}

const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
const max = (m: Map<string, number>, k: string, v: number) => m.set(k, Math.max(m.get(k) ?? 0, v));

/** One bucket's figures over every process: only what the series show (no sketch per route or task). */
export class SeriesBucket {
  requests = 0;
  errors = 0;
  readonly latency = newSketch();
  /** Per queue: attempts finished, and those that failed for good. */
  readonly finished = new Map<string, number>();
  readonly failed = new Map<string, number>();
  /** Per queue: the largest waiting count and oldest wait sampled. */
  readonly waiting = new Map<string, number>();
  readonly oldest = new Map<string, number>();
  hits = 0;
  reads = 0;

  /** Adds one process's published interval. */
  addInterval(figures: LiveInterval): void {
    for (const h of Object.values(figures.http)) {
      this.requests += h.n;
      this.errors += h.e;
      mergeEncoded(h.s, this.latency);
    }
    for (const [key, j] of Object.entries(figures.jobs)) this.addJobs(key, j);
    for (const c of Object.values(figures.cache)) this.addCache(c);
    for (const [queue, q] of Object.entries(figures.queues ?? {})) this.addQueue(queue, q);
  }

  /** Adds a minute's aggregate (which is left as it was). */
  addAggregate(agg: LiveAggregate): void {
    for (const r of agg.routes.values()) {
      this.requests += r.n;
      this.errors += r.e;
    }
    this.latency.merge(agg.httpLatency());
    for (const [key, t] of agg.tasks) this.addJobs(key, t.counts);
    for (const c of agg.cache.values()) this.addCache(c);
    for (const [queue, q] of agg.queues) this.addQueue(queue, q);
  }

  private addJobs(key: string, c: Record<'completed' | 'failed' | 'dead' | 'cancelled', number>): void {
    const queue = key.slice(0, key.indexOf(KEY_SEP));
    add(this.finished, queue, c.completed + c.failed + c.dead + c.cancelled);
    add(this.failed, queue, c.failed + c.dead);
  }

  private addCache(c: { hit: number; miss: number; stale: number }): void {
    this.hits += c.hit;
    this.reads += c.hit + c.miss + c.stale;
  }

  private addQueue(queue: string, q: { waiting: number; oldest_s: number }): void {
    max(this.waiting, queue, q.waiting);
    max(this.oldest, queue, q.oldest_s);
  }
}

/**
 * The series of `buckets` (undefined: no row in it) and `costs` over [end - windowMs, end), end
 * being `nowMs` rounded up to the step. Rates are per second of the bucket's time that has passed
 * (the newest bucket is still filling).
 */
export function buildSeries(
  buckets: readonly (SeriesBucket | undefined)[],
  costs: readonly CostRow[],
  nowMs: number,
  windowMs: number,
  stepMs: number,
): Series {
  const { n, start } = seriesBuckets(nowMs, windowMs, stepMs);
  const queues = new Set<string>(QUEUE_NAMES);
  const figures = Array.from({ length: n }, (_, i) => buckets[i] ?? new SeriesBucket());
  for (const b of figures) for (const queue of [...b.finished.keys(), ...b.waiting.keys()]) queues.add(queue);
  const providers = new Map<string, number[]>();
  for (const c of costs) {
    const i = Math.floor((c.atMs - start) / stepMs);
    if (i < 0 || i >= n) continue;
    let usd = providers.get(c.provider);
    if (!usd) providers.set(c.provider, (usd = new Array<number>(n).fill(0)));
    usd[i] = (usd[i] as number) + c.usd;
  }

  // Seconds of each bucket that have passed: the newest one is partial.
  const seconds = figures.map((_, i) => Math.max(1, Math.min(stepMs, nowMs - (start + i * stepMs))) / 1000);
  const perS = (v: number, i: number) => round(v / (seconds[i] as number), 3);
  const ratio = (part: number, whole: number) => (whole === 0 ? null : round(part / whole, 4));
  return {
    window_s: windowMs / 1000,
    step_s: stepMs / 1000,
    generated_at: new Date(nowMs).toISOString(),
    t: figures.map((_, i) => (start + i * stepMs) / 1000),
    http: {
      rps: figures.map((b, i) => perS(b.requests, i)),
      error_rate: figures.map((b) => ratio(b.errors, b.requests)),
      p50_ms: figures.map((b) => ms(quantile(b.latency, 0.5))),
      p90_ms: figures.map((b) => ms(quantile(b.latency, 0.9))),
      p99_ms: figures.map((b) => ms(quantile(b.latency, 0.99))),
    },
    queues: [...queues].map((queue) => ({
      queue,
      throughput_per_s: figures.map((b, i) => perS(b.finished.get(queue) ?? 0, i)),
      failures_per_s: figures.map((b, i) => perS(b.failed.get(queue) ?? 0, i)),
      waiting: figures.map((b) => b.waiting.get(queue) ?? null),
      oldest_waiting_s: figures.map((b) => {
        const v = b.oldest.get(queue);
        return v === undefined ? null : round(v, 1);
      }),
    })),
    cache: { hit_rate: figures.map((b) => ratio(b.hits, b.reads)) },
    ai_cost: [...providers]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([provider, usd]) => ({ provider, usd: usd.map((v) => round(v, 6)) })),
  };
}
