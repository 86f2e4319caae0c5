/**
 * Published intervals merged: counts added, latency sketches merged (DDSketch merges exactly, so
 * an aggregate of aggregates is the aggregate of all their rows). The live summary keeps one per
 * minute of rows and merges those, so an hour's summary merges 60 aggregates rather than every
 * process's 360 rows.
 */
import type { DDSketch } from '@datadog/sketches-js';
import type { CacheFigures, JobOutcomeName, LiveInterval, QueueSample } from './live-recorder.js';
import { mergeEncoded, newSketch } from './sketch.js';

export interface RouteAggregate {
  n: number;
  e: number;
  s: DDSketch;
}

export interface TaskAggregate {
  counts: Record<JobOutcomeName, number>;
  wait: DDSketch;
  run: DDSketch;
}

const newTask = (): TaskAggregate => ({
  counts: { completed: 0, failed: 0, retried: 0, dead: 0, cancelled: 0 },
  wait: newSketch(),
  run: newSketch(),
});

export class LiveAggregate {
  /** By `METHOD route`. */
  readonly routes = new Map<string, RouteAggregate>();
  /** By `queue task`. */
  readonly tasks = new Map<string, TaskAggregate>();
  readonly cache = new Map<string, CacheFigures>();
  readonly db = newSketch();
  dbSlow = 0;
  /** Per queue, the largest waiting count and oldest wait any process sampled (every process reads the same queue). */
  readonly queues = new Map<string, QueueSample>();
  readonly processes = new Set<string>();
  /** Every route's latencies in one sketch, made when first asked for (forgotten when figures are added). */
  private allRoutes: DDSketch | undefined;

  /** The latency sketch of every request over every route. */
  httpLatency(): DDSketch {
    if (!this.allRoutes) {
      const all = newSketch();
      for (const r of this.routes.values()) all.merge(r.s);
      this.allRoutes = all;
    }
    return this.allRoutes;
  }

  /** Adds one process's published interval. */
  addInterval(process: string, figures: LiveInterval): void {
    this.allRoutes = undefined;
    this.processes.add(process);
    for (const [key, h] of Object.entries(figures.http)) {
      const r = this.route(key);
      r.n += h.n;
      r.e += h.e;
      mergeEncoded(h.s, r.s);
    }
    for (const [key, j] of Object.entries(figures.jobs)) {
      const t = this.task(key);
      for (const o of Object.keys(t.counts) as JobOutcomeName[]) t.counts[o] += j[o];
      mergeEncoded(j.wait, t.wait);
      mergeEncoded(j.run, t.run);
    }
    for (const [prefix, c] of Object.entries(figures.cache)) this.addCache(prefix, c);
    mergeEncoded(figures.db.s, this.db);
    this.dbSlow += figures.db.slow;
    for (const [queue, q] of Object.entries(figures.queues ?? {})) this.addQueue(queue, q);
  }

  /** Adds another aggregate (which is left as it was). */
  addAggregate(other: LiveAggregate): void {
    this.allRoutes = undefined;
    for (const p of other.processes) this.processes.add(p);
    for (const [key, o] of other.routes) {
      const r = this.route(key);
      r.n += o.n;
      r.e += o.e;
      r.s.merge(o.s);
    }
    for (const [key, o] of other.tasks) {
      const t = this.task(key);
      for (const k of Object.keys(t.counts) as JobOutcomeName[]) t.counts[k] += o.counts[k];
      t.wait.merge(o.wait);
      t.run.merge(o.run);
    }
    for (const [prefix, c] of other.cache) this.addCache(prefix, c);
    this.db.merge(other.db);
    this.dbSlow += other.dbSlow;
    for (const [queue, q] of other.queues) this.addQueue(queue, q);
  }

  private route(key: string): RouteAggregate {
    let r = this.routes.get(key);
    if (!r) this.routes.set(key, (r = { n: 0, e: 0, s: newSketch() }));
    return r;
  }

  private task(key: string): TaskAggregate {
    let t = this.tasks.get(key);
    if (!t) this.tasks.set(key, (t = newTask()));
    return t;
  }

  private addQueue(queue: string, q: QueueSample): void {
    const a = this.queues.get(queue);
    if (!a) this.queues.set(queue, { ...q });
    else {
      a.waiting = Math.max(a.waiting, q.waiting);
      a.oldest_s = Math.max(a.oldest_s, q.oldest_s);
    }
  }

  private addCache(prefix: string, c: CacheFigures): void {
    const a = this.cache.get(prefix) ?? { hit: 0, miss: 0, stale: 0, error: 0 };
    a.hit += c.hit;
    a.miss += c.miss;
    a.stale += c.stale;
    a.error += c.error;
    this.cache.set(prefix, a);
  }
}
