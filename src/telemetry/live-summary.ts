/**
 * The live summary over every process: merges the `telemetry_samples` rows of a window (each
 * process's intervals, with mergeable latency sketches), reads queue depth from the queue and AI
 * spend from `ai_api_usage`. Percentiles are within 1 % of the exact value over the same
 * observations (DDSketch's guarantee; see sketch.ts).
 */
import type { DDSketch } from '@datadog/sketches-js';
import { sql } from 'kysely';
import type { Db } from '../db/types.js';
import type { QueueCounts } from '../jobs/types.js';
import { type CacheFigures, KEY_SEP, type LiveInterval } from './live-recorder.js';
import { LiveAggregate } from './live-aggregate.js';
import {
  bucketOf,
  buildSeries,
  type CostRow,
  type Series,
  SeriesBucket,
  seriesBuckets,
} from './live-series.js';
import { quantile } from './sketch.js';

export const SUMMARY_WINDOWS = { '1m': 60_000, '5m': 300_000, '15m': 900_000, '1h': 3_600_000 } as const;
export type SummaryWindow = keyof typeof SUMMARY_WINDOWS;
export const isSummaryWindow = (v: string): v is SummaryWindow => Object.hasOwn(SUMMARY_WINDOWS, v);

export interface LatencyFigures {
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
}

export interface RouteSummary extends LatencyFigures {
  method: string;
  route: string;
  requests: number;
  rps: number;
  error_rate: number | null;
}

export interface TaskSummary {
  queue: string;
  task: string;
  completed: number;
  failed: number;
  retried: number;
  dead: number;
  cancelled: number;
  throughput_per_s: number;
  failure_rate: number | null;
  wait_p50_ms: number | null;
  wait_p99_ms: number | null;
  run_p50_ms: number | null;
  run_p99_ms: number | null;
}

export interface QueueSummary {
  queue: string;
  paused: boolean;
  depth: QueueCounts['counts'];
  oldest_waiting_s: number;
  /** Attempts finished in the window across its tasks, per second, and the final failures' share. */
  throughput_per_s: number;
  failure_rate: number | null;
}

export interface CostGroupSummary {
  key: string;
  window_usd: number;
  today_usd: number;
  month_usd: number;
}

export interface Summary {
  window: SummaryWindow;
  window_s: number;
  generated_at: string;
  /** Processes that published figures in the window. */
  processes: number;
  http: LatencyFigures & { requests: number; rps: number; error_rate: number | null; routes: RouteSummary[] };
  jobs: {
    finished: number;
    throughput_per_s: number;
    failure_rate: number | null;
    queues: QueueSummary[];
    tasks: TaskSummary[];
  };
  cache: {
    hit_rate: number | null;
    prefixes: (CacheFigures & { prefix: string; hit_rate: number | null })[];
  };
  db: { queries: number; p99_ms: number | null; slow_queries: number };
  ai_cost: {
    window_usd: number;
    today_usd: number;
    month_usd: number;
    by_provider: CostGroupSummary[];
    /** The campaigns that cost most this month. */
    top_campaigns: CostGroupSummary[];
  };
}

export interface LiveSummaryOptions {
  db: Db;
  /** Queue depth and oldest wait, read at each call. */
  counts: () => Promise<QueueCounts[]>;
  /** Routes shown, busiest first (default 10). */
  topRoutes?: number;
  topCampaigns?: number;
  now?: () => number;
}

interface Row {
  id: number;
  process: string;
  endMs: number;
  figures: LiveInterval;
}

const MINUTE_MS = 60_000;
const ms = (seconds: number | null) => (seconds === null ? null : Math.round(seconds * 1e6) / 1e3);
const share = (part: number, whole: number) => (whole === 0 ? null : Math.round((part / whole) * 1e4) / 1e4);
const perS = (n: number, windowS: number) => Math.round((n / windowS) * 1000) / 1000;
const usd = (v: number | string | null) => Math.round(Number(v ?? 0) * 1e6) / 1e6;
const latency = (sk: DDSketch): LatencyFigures => ({
  p50_ms: ms(quantile(sk, 0.5)),
  p90_ms: ms(quantile(sk, 0.9)),
  p99_ms: ms(quantile(sk, 0.99)),
});

export class LiveSummary {
  /** Parsed rows by id: a row never changes once written, and the 1 h window re-reads hundreds. */
  private readonly parsed = new Map<number, { endMs: number; row: Row }>();
  /**
   * Rows merged per minute of their end time (minute index: end_ms / 60 000), with the ids merged:
   * used while a minute's rows are still exactly those ids, rebuilt when one arrives late.
   */
  private readonly minutes = new Map<number, { ids: Set<number>; agg: LiveAggregate }>();
  private readonly now: () => number;

  constructor(private readonly opts: LiveSummaryOptions) {
    this.now = opts.now ?? Date.now;
  }

  async summary(window: SummaryWindow): Promise<Summary> {
    const now = this.now();
    const windowMs = SUMMARY_WINDOWS[window];
    const windowS = windowMs / 1000;
    const [rows, counts, cost] = await Promise.all([
      this.rows(now - windowMs),
      this.opts.counts(),
      this.costs(now, windowMs),
    ]);

    const agg = new LiveAggregate();
    for (const [, minute] of this.minuteAggregates(rows, now - windowMs)) agg.addAggregate(minute);
    const { routes, tasks, cache, processes } = agg;
    let requests = 0;
    let errors = 0;
    const routeList: RouteSummary[] = [];
    for (const [key, r] of routes) {
      const [method, route] = splitKey(key);
      requests += r.n;
      errors += r.e;
      routeList.push({
        method,
        route,
        requests: r.n,
        rps: perS(r.n, windowS),
        error_rate: share(r.e, r.n),
        ...latency(r.s),
      });
    }
    routeList.sort((a, b) => b.requests - a.requests || a.route.localeCompare(b.route));

    const taskList: TaskSummary[] = [];
    const byQueue = new Map<string, { finished: number; failed: number }>();
    for (const [key, t] of tasks) {
      const [queue, task] = splitKey(key);
      const c = t.counts;
      const finished = c.completed + c.failed + c.dead + c.cancelled;
      const q = byQueue.get(queue) ?? { finished: 0, failed: 0 };
      q.finished += finished;
      q.failed += c.failed + c.dead;
      byQueue.set(queue, q);
      taskList.push({
        queue,
        task,
        ...c,
        throughput_per_s: perS(finished, windowS),
        failure_rate: share(c.failed + c.dead, finished),
        wait_p50_ms: ms(quantile(t.wait, 0.5)),
        wait_p99_ms: ms(quantile(t.wait, 0.99)),
        run_p50_ms: ms(quantile(t.run, 0.5)),
        run_p99_ms: ms(quantile(t.run, 0.99)),
      });
    }
    taskList.sort((a, b) => a.queue.localeCompare(b.queue) || a.task.localeCompare(b.task));
    let finished = 0;
    let failedJobs = 0;
    for (const q of byQueue.values()) {
      finished += q.finished;
      failedJobs += q.failed;
    }

    let hits = 0;
    let misses = 0;
    const prefixes = [...cache]
      .map(([prefix, c]) => {
        hits += c.hit;
        misses += c.miss + c.stale;
        return { prefix, ...c, hit_rate: share(c.hit, c.hit + c.miss + c.stale) };
      })
      .sort((a, b) => a.prefix.localeCompare(b.prefix));

    return {
      window,
      window_s: windowS,
      generated_at: new Date(now).toISOString(),
      processes: processes.size,
      http: {
        requests,
        rps: perS(requests, windowS),
        error_rate: share(errors, requests),
        ...latency(agg.httpLatency()),
        routes: routeList.slice(0, this.opts.topRoutes ?? 10),
      },
      jobs: {
        finished,
        throughput_per_s: perS(finished, windowS),
        failure_rate: share(failedJobs, finished),
        queues: counts.map((c) => ({
          queue: c.queue,
          paused: c.paused,
          depth: c.counts,
          oldest_waiting_s: Math.round(c.oldestWaitingMs / 100) / 10,
          throughput_per_s: perS(byQueue.get(c.queue)?.finished ?? 0, windowS),
          failure_rate: share(byQueue.get(c.queue)?.failed ?? 0, byQueue.get(c.queue)?.finished ?? 0),
        })),
        tasks: taskList,
      },
      cache: { hit_rate: share(hits, hits + misses), prefixes },
      db: { queries: agg.db.count, p99_ms: ms(quantile(agg.db, 0.99)), slow_queries: agg.dbSlow },
      ai_cost: cost,
    };
  }

  /**
   * The figures of the last `windowMs` in buckets of `stepMs` (live-series.ts), over every
   * process; AI spend per provider from ai_api_usage. At most one hour back (rows older than that
   * are not kept parsed, and are pruned after two). A step of whole minutes is made of the minute
   * aggregates the summary keeps; a finer one (windows of a quarter hour or less by default) merges
   * its rows.
   */
  async series(windowMs: number, stepMs: number): Promise<Series> {
    const now = this.now();
    const b = seriesBuckets(now, windowMs, stepMs);
    const [rows, costs] = await Promise.all([this.rows(b.start), this.costRows(b.start)]);
    const buckets = new Array<SeriesBucket | undefined>(b.n);
    if (stepMs % MINUTE_MS === 0)
      // `start` is on a minute: a minute's rows all fall in one bucket, that of the minute's start.
      for (const [minute, agg] of this.minuteAggregates(rows, b.start))
        (buckets[bucketOf(minute * MINUTE_MS, b, stepMs)] ??= new SeriesBucket()).addAggregate(agg);
    else
      for (const row of rows)
        (buckets[bucketOf(row.endMs, b, stepMs)] ??= new SeriesBucket()).addInterval(row.figures);
    return buildSeries(buckets, costs, now, windowMs, stepMs);
  }

  /** Each AI vendor call since `since` (ms): its provider, time and cost. */
  private async costRows(since: number): Promise<CostRow[]> {
    const rows = await this.opts.db
      .selectFrom('ai_api_usage')
      .select(['provider', 'created_at', 'cost_usd'])
      .where('created_at', '>=', new Date(since).toISOString())
      .execute();
    // PostgreSQL returns a Date, SQLite the ISO text it stores: `new Date` reads either.
    return rows.map((r) => ({
      provider: r.provider,
      atMs: new Date(r.created_at).getTime(),
      usd: Number(r.cost_usd),
    }));
  }

  /**
   * The figures of `rows` (every row that ended after `since`, parsed) per minute of their end time:
   * the minute `since` falls in from its rows one by one (a window starts within it), every later
   * minute the aggregate kept for it, which the caller must not add to.
   */
  private minuteAggregates(rows: readonly Row[], since: number): Map<number, LiveAggregate> {
    const first = Math.floor(since / MINUTE_MS);
    const byMinute = new Map<number, Row[]>();
    for (const row of rows) {
      const minute = Math.floor(row.endMs / MINUTE_MS);
      const list = byMinute.get(minute);
      if (list) list.push(row);
      else byMinute.set(minute, [row]);
    }
    const out = new Map<number, LiveAggregate>();
    for (const [minute, list] of byMinute) {
      if (minute === first) {
        const agg = new LiveAggregate();
        for (const r of list) agg.addInterval(r.process, r.figures);
        out.set(minute, agg);
        continue;
      }
      let m = this.minutes.get(minute);
      if (!m || m.ids.size !== list.length || !list.every((r) => m?.ids.has(r.id))) {
        m = { ids: new Set(list.map((r) => r.id)), agg: new LiveAggregate() };
        for (const r of list) m.agg.addInterval(r.process, r.figures);
        this.minutes.set(minute, m);
      }
      out.set(minute, m.agg);
    }
    return out;
  }

  /** The rows that ended within the window, parsed once each (and added to their minute's aggregate). */
  private async rows(since: number): Promise<Row[]> {
    const found = await this.opts.db
      .selectFrom('telemetry_samples')
      .select(['id', 'end_ms'])
      .where('end_ms', '>', since)
      .execute();
    const missing = found.filter((r) => !this.parsed.has(r.id)).map((r) => r.id);
    for (let i = 0; i < missing.length; i += 500) {
      const batch = await this.opts.db
        .selectFrom('telemetry_samples')
        .select(['id', 'process', 'end_ms', 'figures'])
        .where('id', 'in', missing.slice(i, i + 500))
        .execute();
      for (const r of batch) {
        const endMs = Number(r.end_ms);
        const figures = JSON.parse(r.figures) as LiveInterval;
        this.parsed.set(r.id, { endMs, row: { id: r.id, process: r.process, endMs, figures } });
      }
    }
    // Forget rows older than the longest window, and minutes that hold only such rows.
    const oldest = this.now() - SUMMARY_WINDOWS['1h'];
    for (const [id, p] of this.parsed) if (p.endMs <= oldest) this.parsed.delete(id);
    for (const minute of this.minutes.keys())
      if ((minute + 1) * MINUTE_MS <= oldest) this.minutes.delete(minute);
    return found.flatMap((r) => {
      const p = this.parsed.get(r.id);
      return p ? [p.row] : [];
    });
  }

  /** AI spend in the window, today and this month (UTC), per provider, and the top campaigns this month. */
  private async costs(now: number, windowMs: number): Promise<Summary['ai_cost']> {
    const d = new Date(now);
    const today = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())).toISOString();
    const month = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)).toISOString();
    const windowStart = new Date(now - windowMs).toISOString();
    const since = windowStart < month ? windowStart : month;
    const sums = [
      sql<number>`coalesce(sum(case when created_at >= ${windowStart} then cost_usd else 0 end), 0)`.as(
        'window_usd',
      ),
      sql<number>`coalesce(sum(case when created_at >= ${today} then cost_usd else 0 end), 0)`.as(
        'today_usd',
      ),
      sql<number>`coalesce(sum(case when created_at >= ${month} then cost_usd else 0 end), 0)`.as(
        'month_usd',
      ),
    ] as const;
    const base = () => this.opts.db.selectFrom('ai_api_usage').where('created_at', '>=', since);
    const [providers, campaigns] = await Promise.all([
      base()
        .select(['provider as key', ...sums])
        .groupBy('provider')
        .execute(),
      base()
        .where('campaign_id', 'is not', null)
        .where('created_at', '>=', month)
        .select(['campaign_id as key', ...sums])
        .groupBy('campaign_id')
        .orderBy('month_usd', 'desc')
        .limit(this.opts.topCampaigns ?? 5)
        .execute(),
    ]);
    const group = (r: {
      key: string | number | null;
      window_usd: number;
      today_usd: number;
      month_usd: number;
    }) => ({
      key: String(r.key),
      window_usd: usd(r.window_usd),
      today_usd: usd(r.today_usd),
      month_usd: usd(r.month_usd),
    });
    const byProvider = providers
      .map(group)
      .sort((a, b) => b.month_usd - a.month_usd || a.key.localeCompare(b.key));
    const total = (k: 'window_usd' | 'today_usd' | 'month_usd') =>
      usd(byProvider.reduce((n, p) => n + p[k], 0));
    return {
      window_usd: total('window_usd'),
      today_usd: total('today_usd'),
      month_usd: total('month_usd'),
      by_provider: byProvider,
      top_campaigns: campaigns.map(group),
    };
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf(KEY_SEP);
  return [key.slice(0, i), key.slice(i + 1)];
}
