/**
 * The live figures as time series: the `telemetry_samples` rows of a window put into buckets of
 * `step` (a row belongs to the bucket its interval ended in), each bucket's figures merged over
 * every process the way the summary merges the whole window. The /admin overview page draws them.
 */
import type { DDSketch } from '@datadog/sketches-js';
import { QUEUE_NAMES } from '../jobs/types.js';
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

export interface SeriesRow {
  endMs: number;
  figures: LiveInterval;
}

export interface CostRow {
  provider: string;
  atMs: number;
  usd: number;
}

interface Bucket {
  requests: number;
  errors: number;
  latency: DDSketch;
  finished: Map<string, number>;
  failed: Map<string, number>;
  waiting: Map<string, number>;
  oldest: Map<string, number>;
  hits: number;
  reads: number;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const ms = (seconds: number | null) => (seconds === null ? null : round(seconds * 1000, 3));
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
const max = (m: Map<string, number>, k: string, v: number) => m.set(k, Math.max(m.get(k) ?? 0, v));

/**
 * Buckets `rows` and `costs` over [end - windowMs, end), end being `nowMs` rounded up to the step.
 * Rates are per second of the bucket's time that has passed (the newest bucket is still filling).
 */
export function buildSeries(
  rows: readonly SeriesRow[],
  costs: readonly CostRow[],
  nowMs: number,
  windowMs: number,
  stepMs: number,
): Series {
  const n = Math.ceil(windowMs / stepMs);
  const end = Math.ceil(nowMs / stepMs) * stepMs;
  const start = end - n * stepMs;
  const buckets: Bucket[] = Array.from({ length: n }, () => ({
    requests: 0,
    errors: 0,
    latency: newSketch(),
    finished: new Map(),
    failed: new Map(),
    waiting: new Map(),
    oldest: new Map(),
    hits: 0,
    reads: 0,
  }));
  const at = (atMs: number) => {
    const i = Math.floor((atMs - start) / stepMs);
    return i >= 0 && i < n ? buckets[i] : undefined;
  };
  const queues = new Set<string>(QUEUE_NAMES);
  for (const { endMs, figures } of rows) {
    // A row ending exactly at `end` (now, on a step boundary) belongs to the newest bucket.
    const b = at(Math.min(endMs, end - 1));
    if (!b) continue;
    for (const h of Object.values(figures.http)) {
      b.requests += h.n;
      b.errors += h.e;
      mergeEncoded(h.s, b.latency);
    }
    for (const [key, j] of Object.entries(figures.jobs)) {
      const queue = key.slice(0, key.indexOf(KEY_SEP));
      queues.add(queue);
      add(b.finished, queue, j.completed + j.failed + j.dead + j.cancelled);
      add(b.failed, queue, j.failed + j.dead);
    }
    for (const c of Object.values(figures.cache)) {
      b.hits += c.hit;
      b.reads += c.hit + c.miss + c.stale;
    }
    for (const [queue, q] of Object.entries(figures.queues ?? {})) {
      queues.add(queue);
      max(b.waiting, queue, q.waiting);
      max(b.oldest, queue, q.oldest_s);
    }
  }
  const providers = new Map<string, number[]>();
  for (const c of costs) {
    const i = Math.floor((c.atMs - start) / stepMs);
    if (i < 0 || i >= n) continue;
    let usd = providers.get(c.provider);
    if (!usd) providers.set(c.provider, (usd = new Array<number>(n).fill(0)));
    usd[i] = (usd[i] as number) + c.usd;
  }

  // Seconds of each bucket that have passed: the newest one is partial.
  const seconds = buckets.map((_, i) => Math.max(1, Math.min(stepMs, nowMs - (start + i * stepMs))) / 1000);
  const perS = (v: number, i: number) => round(v / (seconds[i] as number), 3);
  const ratio = (part: number, whole: number) => (whole === 0 ? null : round(part / whole, 4));
  return {
    window_s: windowMs / 1000,
    step_s: stepMs / 1000,
    generated_at: new Date(nowMs).toISOString(),
    t: buckets.map((_, i) => (start + i * stepMs) / 1000),
    http: {
      rps: buckets.map((b, i) => perS(b.requests, i)),
      error_rate: buckets.map((b) => ratio(b.errors, b.requests)),
      p50_ms: buckets.map((b) => ms(quantile(b.latency, 0.5))),
      p90_ms: buckets.map((b) => ms(quantile(b.latency, 0.9))),
      p99_ms: buckets.map((b) => ms(quantile(b.latency, 0.99))),
    },
    queues: [...queues].map((queue) => ({
      queue,
      throughput_per_s: buckets.map((b, i) => perS(b.finished.get(queue) ?? 0, i)),
      failures_per_s: buckets.map((b, i) => perS(b.failed.get(queue) ?? 0, i)),
      waiting: buckets.map((b) => b.waiting.get(queue) ?? null),
      oldest_waiting_s: buckets.map((b) => {
        const v = b.oldest.get(queue);
        return v === undefined ? null : round(v, 1);
      }),
    })),
    cache: { hit_rate: buckets.map((b) => ratio(b.hits, b.reads)) },
    ai_cost: [...providers]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([provider, usd]) => ({ provider, usd: usd.map((v) => round(v, 6)) })),
  };
}
