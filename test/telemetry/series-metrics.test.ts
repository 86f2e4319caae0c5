/**
 * The hot-path histogram and counter expose exactly what prom-client's Histogram and Counter expose
 * for the same observations (the text /metrics serves, and OpenMetrics is written from; the
 * registry's JSON): a prom-client upgrade that changes how a registry reads a metric, or how a
 * histogram or counter is written, fails here.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SeriesCounter, SeriesHistogram } from '../../src/telemetry/series-metrics.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1, 60];
const LABELS = ['method', 'route', 'status_code'] as const;

function pair() {
  const theirs = new Registry();
  const ours = new Registry();
  const reference = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'Duration of "HTTP" requests \\ by route.',
    labelNames: LABELS,
    buckets: BUCKETS,
    registers: [theirs],
  });
  const hot = new SeriesHistogram({
    name: 'http_server_request_duration_seconds',
    help: 'Duration of "HTTP" requests \\ by route.',
    labelNames: LABELS,
    // Unsorted on purpose: prom-client sorts its bounds too.
    buckets: [...BUCKETS].reverse(),
    registers: [ours],
  });
  return { theirs, ours, reference, hot };
}

/** The registry's JSON, but for prom-client's empty exemplar fields (these metrics keep none). */
const json = async (r: Registry) =>
  JSON.parse(
    JSON.stringify(await r.getMetricsAsJSON(), (k, v: unknown) => (k === 'exemplar' ? undefined : v)),
  ) as unknown;

describe('SeriesHistogram', () => {
  it('writes the same exposition as prom-client for the same observations', async () => {
    const { theirs, ours, reference, hot } = pair();
    const series = [
      { method: 'GET', route: '/api/v1/campaigns/:id', status_code: 200 },
      { method: 'POST', route: '/api/v1/tasks', status_code: 201 },
      { method: 'GET', route: 'a "quoted"\\route\nwith newline', status_code: 500 },
    ];
    // Values on the bounds (buckets are upper-inclusive), between them, below the first, above the last, zero.
    const values = [0, 0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.01, 0.5, 1, 59.9, 60, 61, 3600];
    series.forEach((labels, i) => {
      const s = hot.labels(labels);
      for (const v of values.slice(i)) {
        reference.observe(labels, v);
        s.observe(v);
      }
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await json(ours)).toEqual(await json(theirs));
  });

  it('keeps one series per label set and refuses a value that is not a number', () => {
    const { hot } = pair();
    const a = hot.labels({ method: 'GET', route: '/x', status_code: 200 });
    expect(hot.labels({ method: 'GET', route: '/x', status_code: 200 })).toBe(a);
    expect(hot.labels({ method: 'GET', route: '/x', status_code: 404 })).not.toBe(a);
    expect(() => a.observe(Number.NaN)).toThrow(TypeError);
    expect(a.count).toBe(0);
  });
});

describe('SeriesCounter', () => {
  const LABEL_NAMES = ['queue', 'task', 'outcome'] as const;
  const pairOfCounters = () => {
    const theirs = new Registry();
    const ours = new Registry();
    const opts = {
      name: 'omnivibe_jobs_finished_total',
      help: 'Job "attempts" \\ finished.',
      labelNames: LABEL_NAMES,
    };
    return {
      theirs,
      ours,
      reference: new Counter({ ...opts, registers: [theirs] }),
      hot: new SeriesCounter({ ...opts, registers: [ours] }),
    };
  };

  it('writes the same exposition as prom-client for the same increments', async () => {
    const { theirs, ours, reference, hot } = pairOfCounters();
    const incs: [Record<(typeof LABEL_NAMES)[number], string>, number][] = [
      [{ queue: 'default', task: 'diagnostics.noop', outcome: 'completed' }, 1],
      [{ queue: 'high_priority', task: 'a "quoted"\\task\nwith newline', outcome: 'failed' }, 1],
      [{ queue: 'default', task: 'diagnostics.noop', outcome: 'completed' }, 2.5],
      [{ queue: 'default', task: 'diagnostics.noop', outcome: 'retried' }, 0],
      [{ queue: 'default', task: 'diagnostics.noop', outcome: 'completed' }, 1e21],
    ];
    for (const [labels, by] of incs) {
      reference.inc(labels, by);
      hot.labels(labels).inc(by);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await json(ours)).toEqual(await json(theirs));
  });

  it('keeps one series per label set and refuses an increment that is not a count', () => {
    const { hot } = pairOfCounters();
    const a = hot.labels({ queue: 'default', task: 'x', outcome: 'completed' });
    expect(hot.labels({ queue: 'default', task: 'x', outcome: 'completed' })).toBe(a);
    expect(hot.labels({ queue: 'default', task: 'x', outcome: 'failed' })).not.toBe(a);
    expect(() => a.inc(-1)).toThrow(TypeError);
    expect(() => a.inc(Number.NaN)).toThrow(TypeError);
    expect(() => a.inc(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(a.value).toBe(0);
  });
});
