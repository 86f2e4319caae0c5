/**
 * What one process measured during the current interval, for the live summary: HTTP requests
 * (count, 5xx and a latency sketch per route), job attempts (outcomes, wait and run sketches per
 * queue and task), cache reads per prefix, database statements, and the queues' depth as sampled
 * at the interval's end. `take()` hands the interval over (the publisher writes it to the
 * database) and starts the next one.
 */
import type { DDSketch } from '@datadog/sketches-js';
import { type EncodedSketch, encodeSketch, newSketch } from './sketch.js';

export interface HttpFigures {
  n: number;
  /** 5xx answers. */
  e: number;
  s: EncodedSketch;
}

export interface JobFigures {
  completed: number;
  failed: number;
  retried: number;
  dead: number;
  cancelled: number;
  wait: EncodedSketch;
  run: EncodedSketch;
}

export interface CacheFigures {
  hit: number;
  miss: number;
  stale: number;
  error: number;
}

/** A queue as one process saw it when its interval ended (every process reads the same queue). */
export interface QueueSample {
  /** Jobs ready to run. */
  waiting: number;
  /** Age of the oldest of them, seconds (0 when none). */
  oldest_s: number;
}

/** One process's interval, as published (JSON). Keys: `METHOD route`, `queue task`, prefix, queue. */
export interface LiveInterval {
  v: 1;
  http: Record<string, HttpFigures>;
  jobs: Record<string, JobFigures>;
  cache: Record<string, CacheFigures>;
  db: { n: number; slow: number; s: EncodedSketch };
  /** Absent in rows written before queue samples existed. */
  queues?: Record<string, QueueSample>;
}

export type JobOutcomeName = 'completed' | 'failed' | 'retried' | 'dead' | 'cancelled';

/** The figures of one method and route in the current interval (kept across intervals: see LiveRecorder). */
export interface HttpSlot {
  n: number;
  e: number;
  s: DDSketch;
}
/** The figures of one queue and task in the current interval. */
export interface JobSlot {
  counts: Record<JobOutcomeName, number>;
  wait: DDSketch;
  run: DDSketch;
}

/** The separator of composite keys (never in a route, queue or task name). */
export const KEY_SEP = ' ';

/**
 * Accumulators are made once per method and route, and per queue and task (bounded like the
 * metrics' series), and reset in place when an interval is taken: a caller on a hot path resolves
 * its slot once (`httpSlot`, `jobSlot`) and records into it with no lookup. An interval lists only
 * the slots it recorded into.
 */
export class LiveRecorder {
  private readonly httpAcc = new Map<string, HttpSlot>();
  private readonly jobAcc = new Map<string, JobSlot>();
  private cacheAcc = new Map<string, CacheFigures>();
  private dbAcc = { n: 0, slow: 0, s: newSketch() };
  private queueAcc = new Map<string, QueueSample>();
  private empty = true;

  /** The accumulator of one method and route (the same object for the recorder's life). */
  httpSlot(method: string, route: string): HttpSlot {
    const key = `${method}${KEY_SEP}${route}`;
    let a = this.httpAcc.get(key);
    if (!a) this.httpAcc.set(key, (a = { n: 0, e: 0, s: newSketch() }));
    return a;
  }

  /** Records one request into its slot. */
  httpInto(slot: HttpSlot, status: number, seconds: number): void {
    slot.n++;
    if (status >= 500) slot.e++;
    slot.s.accept(seconds);
    this.empty = false;
  }

  http(method: string, route: string, status: number, seconds: number): void {
    this.httpInto(this.httpSlot(method, route), status, seconds);
  }

  /** The accumulator of one queue and task (the same object for the recorder's life). */
  jobSlot(queue: string, task: string): JobSlot {
    const key = `${queue}${KEY_SEP}${task}`;
    let a = this.jobAcc.get(key);
    if (!a)
      this.jobAcc.set(
        key,
        (a = {
          counts: { completed: 0, failed: 0, retried: 0, dead: 0, cancelled: 0 },
          wait: newSketch(),
          run: newSketch(),
        }),
      );
    return a;
  }

  /** Records one attempt into its slot. */
  jobInto(slot: JobSlot, outcome: JobOutcomeName, waitS: number | null, runS: number | null): void {
    slot.counts[outcome]++;
    if (waitS !== null) slot.wait.accept(waitS);
    if (runS !== null) slot.run.accept(runS);
    this.empty = false;
  }

  job(queue: string, task: string, outcome: JobOutcomeName, waitS: number | null, runS: number | null): void {
    this.jobInto(this.jobSlot(queue, task), outcome, waitS, runS);
  }

  cache(prefix: string, result: keyof CacheFigures, n = 1): void {
    if (n <= 0) return;
    let a = this.cacheAcc.get(prefix);
    if (!a) this.cacheAcc.set(prefix, (a = { hit: 0, miss: 0, stale: 0, error: 0 }));
    a[result] += n;
    this.empty = false;
  }

  db(seconds: number, slow: boolean): void {
    this.dbAcc.n++;
    if (slow) this.dbAcc.slow++;
    this.dbAcc.s.accept(seconds);
    this.empty = false;
  }

  /** The queue's depth and oldest wait now (the latest sample of an interval is the one published). */
  queue(queue: string, sample: QueueSample): void {
    this.queueAcc.set(queue, sample);
    this.empty = false;
  }

  /** The interval so far (undefined when nothing happened), and a fresh one started. */
  take(): LiveInterval | undefined {
    if (this.empty) return undefined;
    const out: LiveInterval = {
      v: 1,
      http: {},
      jobs: {},
      cache: {},
      db: { n: 0, slow: 0, s: encodeSketch(newSketch()) },
    };
    for (const [k, a] of this.httpAcc) {
      if (a.n === 0) continue;
      out.http[k] = { n: a.n, e: a.e, s: encodeSketch(a.s) };
      a.n = 0;
      a.e = 0;
      a.s = newSketch();
    }
    for (const [k, a] of this.jobAcc) {
      const c = a.counts;
      if (c.completed + c.failed + c.retried + c.dead + c.cancelled === 0) continue;
      out.jobs[k] = { ...c, wait: encodeSketch(a.wait), run: encodeSketch(a.run) };
      a.counts = { completed: 0, failed: 0, retried: 0, dead: 0, cancelled: 0 };
      a.wait = newSketch();
      a.run = newSketch();
    }
    for (const [k, a] of this.cacheAcc) out.cache[k] = { ...a };
    out.db = { n: this.dbAcc.n, slow: this.dbAcc.slow, s: encodeSketch(this.dbAcc.s) };
    if (this.queueAcc.size > 0) out.queues = Object.fromEntries(this.queueAcc);
    this.cacheAcc = new Map();
    this.dbAcc = { n: 0, slow: 0, s: newSketch() };
    this.queueAcc = new Map();
    this.empty = true;
    return out;
  }
}
