/**
 * The Prometheus metrics of one process (see docs/observability.md for each one).
 *
 * Cardinality rule: a label only ever holds a value from a set fixed by the code or the
 * configuration (HTTP method, route template, status code, queue, registered task name, cache
 * prefix, provider, model, operation, preset, dialect, outcome), never an id of a campaign,
 * content, task, key or user, and never a raw URL. Values from outside such a set collapse
 * (`unmatched` route, `other` method, `unknown` task). test/telemetry/cardinality.test.ts holds it.
 *
 * Both formats are served from one registry: /metrics picks by content negotiation and
 * OpenMetrics is written from the Prometheus text (see toOpenMetrics: prom-client renames a
 * counter shared with an OpenMetrics registry for good, so two registries cannot share metrics).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CACHE_LATENCY_BUCKETS_S, type LatencyHistogram } from '../cache/latency-histogram.js';
import type { RenderRun, VendorCall } from '../media/media-observer.js';
import { Exemplars } from './exemplars.js';
import type { HttpSlot as LiveHttpSlot, JobSlot as LiveJobSlot, LiveRecorder } from './live-recorder.js';
import {
  type CounterSeries,
  type HistogramSeries,
  SeriesCounter,
  SeriesHistogram,
} from './series-metrics.js';

/** HTTP and job durations: sub-millisecond cached GETs up to a 60 s upload, seconds. */
export const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** Job waits and runs reach minutes (renders, back-offs), seconds. */
const JOB_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];
/** Database statements, seconds. */
const DB_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
/** Renders: a few seconds to a quarter of an hour, seconds. */
const RENDER_BUCKETS = [0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900];
/** Vendor calls, seconds. */
const SLOW_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/** The route label of a request no route matched. */
export const UNMATCHED_ROUTE = 'unmatched';

export type JobOutcome = 'completed' | 'failed' | 'retried' | 'dead' | 'cancelled';
export type CacheResult = 'hit' | 'miss' | 'stale' | 'error';
export type CacheTier = 'l1' | 'store';
export type DbOperation = 'select' | 'insert' | 'update' | 'delete' | 'other';

/** A source of figures computed when scraped (queue depth, worker slots, cache counters). */
export type ScrapeSource = () => Promise<void> | void;

export interface MetricsOptions {
  /** Node runtime metrics (event-loop lag, heap, GC, handles); default true. */
  runtime?: boolean;
  /** Where the same observations go for the live summary (every process publishes them). */
  live?: LiveRecorder;
  /**
   * The sampled trace id of the active span (tracing on): HTTP and job histograms keep it as their
   * buckets' OpenMetrics exemplars (exemplars.ts).
   */
  traceId?: () => string | undefined;
}

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/**
 * Prometheus text exposition → OpenMetrics 1.0: a counter family is named without its `_total`
 * (its samples keep it, and get it when missing), no blank lines, and `# EOF` at the end.
 */
export function toOpenMetrics(text: string, exemplars?: Exemplars): string {
  const annotate = exemplars && exemplars.size > 0 ? exemplars.annotator() : (l: string) => l;
  const out: string[] = [];
  const counters = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) counter$/.exec(line);
    if (type) counters.add(type[1] as string);
  }
  const family = (name: string) => name.replace(/_total$/, '');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(.*)$/.exec(line);
    if (meta) {
      const name = meta[2] as string;
      out.push(counters.has(name) ? `# ${meta[1]} ${family(name)}${meta[3]}` : line);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(line);
    const name = sample?.[1] as string;
    out.push(counters.has(name) && !name.endsWith('_total') ? `${name}_total${sample?.[2]}` : annotate(line));
  }
  return `${out.join('\n')}\n# EOF\n`;
}

/** Read latencies per cache prefix and tier, as the cache counted them (cache.service.ts `latencies()`). */
export type CacheLatencySource = () => ReadonlyMap<
  string,
  { readonly timing: Readonly<Record<CacheTier, LatencyHistogram>> }
>;

/** What one method, route and status records into, resolved at its first request. */
interface HttpSlot {
  readonly series: HistogramSeries;
  readonly live: LiveHttpSlot | undefined;
}

/** What one queue and task record into; each series made at its first use (prom-client shows no series before). */
interface JobSlot {
  readonly labels: { readonly queue: string; readonly task: string };
  enqueued?: CounterSeries;
  readonly finished: Partial<Record<JobOutcome, CounterSeries>>;
  wait?: HistogramSeries;
  run?: HistogramSeries;
  readonly live: LiveJobSlot | undefined;
}

/** What one dialect and operation record into. */
interface DbSlot {
  readonly duration: HistogramSeries;
  readonly labels: { readonly dialect: string; readonly operation: DbOperation };
}

/** Why a sandbox child left service: its task budget, its memory ceiling, a kill (hard timeout, abort), or it died. */
export type SandboxRecycleReason = 'max_tasks' | 'memory' | 'killed' | 'exited';

export class Metrics {
  readonly registry = new Registry();
  private readonly sources: ScrapeSource[] = [];
  private readonly live: LiveRecorder | undefined;
  private readonly traceId: (() => string | undefined) | undefined;
  private readonly exemplars = new Exemplars();

  readonly httpDuration: SeriesHistogram<'method' | 'route' | 'status_code'>;
  /**
   * By method, route (UNMATCHED_ROUTE when none) and status: Fastify hands the same method and route
   * strings every time, so a lookup hashes no new string and builds no key.
   */
  private readonly httpSlots = new Map<string, Map<string, Map<number, HttpSlot>>>();
  /** Requests being served; read into http_server_active_requests when scraped. */
  private inFlight = 0;
  private readonly httpInFlight: Gauge;
  private readonly jobsEnqueued: SeriesCounter<'queue' | 'task'>;
  private readonly jobsFinished: SeriesCounter<'queue' | 'task' | 'outcome'>;
  private readonly jobWait: SeriesHistogram<'queue' | 'task'>;
  private readonly jobRun: SeriesHistogram<'queue' | 'task'>;
  /** By queue, then task. */
  private readonly jobSlots = new Map<string, Map<string, JobSlot>>();
  readonly queueDepth: Gauge<'queue' | 'state'>;
  readonly queueOldestWaiting: Gauge<'queue'>;
  readonly workerSlots: Gauge<'state'>;
  readonly cacheRequests: Counter<'prefix' | 'tier' | 'result'>;
  /** Filled at each scrape from the counts the cache keeps itself (a read pays no label lookup). */
  private readonly cacheLatency: SeriesHistogram<'prefix' | 'tier'>;
  private readonly dbDuration: SeriesHistogram<'dialect' | 'operation'>;
  private readonly dbSlow: SeriesCounter<'dialect' | 'operation'>;
  private readonly dbErrors: SeriesCounter<'dialect' | 'operation'>;
  /** By dialect, then operation. */
  private readonly dbSlots = new Map<string, Map<DbOperation, DbSlot>>();
  readonly vendorRequests: Counter<'provider' | 'model' | 'operation' | 'outcome'>;
  readonly vendorCost: Counter<'provider' | 'model' | 'operation'>;
  readonly vendorUnits: Counter<'provider' | 'model' | 'operation' | 'unit'>;
  readonly vendorLatency: Histogram<'provider' | 'model' | 'operation'>;
  readonly narrationAttempts: Histogram<'provider' | 'status'>;
  readonly narrationSimilarity: Histogram<'provider' | 'status'>;
  readonly renderDuration: Histogram<'preset' | 'outcome'>;
  readonly sandboxStarted: Counter;
  readonly sandboxRecycled: Counter<'reason'>;

  constructor(opts: MetricsOptions = {}) {
    this.live = opts.live;
    this.traceId = opts.traceId;
    const registers = [this.registry];
    if (opts.runtime ?? true) collectDefaultMetrics({ register: this.registry });
    this.httpDuration = new SeriesHistogram({
      name: 'http_server_request_duration_seconds',
      help: 'Duration of HTTP server requests, by method, route template and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.httpInFlight = new Gauge({
      name: 'http_server_active_requests',
      help: 'HTTP requests being served.',
      registers,
      collect: () => this.httpInFlight.set(this.inFlight),
    });
    this.jobsEnqueued = new SeriesCounter({
      name: 'omnivibe_jobs_enqueued_total',
      help: 'Jobs enqueued by this process, by queue and task.',
      labelNames: ['queue', 'task'],
      registers,
    });
    this.jobsFinished = new SeriesCounter({
      name: 'omnivibe_jobs_finished_total',
      help: 'Job attempts finished by this process, by queue, task and outcome (completed, failed, retried, dead, cancelled).',
      labelNames: ['queue', 'task', 'outcome'],
      registers,
    });
    this.jobWait = new SeriesHistogram({
      name: 'omnivibe_job_wait_seconds',
      help: 'Time from enqueue (or the retry time) to the start of an attempt.',
      labelNames: ['queue', 'task'],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.jobRun = new SeriesHistogram({
      name: 'omnivibe_job_run_seconds',
      help: 'Run time of one job attempt.',
      labelNames: ['queue', 'task'],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'omnivibe_queue_jobs',
      help: 'Jobs in each queue by state, read from the queue when scraped.',
      labelNames: ['queue', 'state'],
      registers,
    });
    this.queueOldestWaiting = new Gauge({
      name: 'omnivibe_queue_oldest_waiting_seconds',
      help: 'Age of the oldest job ready to run in each queue (0 when none), read when scraped.',
      labelNames: ['queue'],
      registers,
    });
    this.workerSlots = new Gauge({
      name: 'omnivibe_worker_slots',
      help: "Task slots of this process's worker, busy or free.",
      labelNames: ['state'],
      registers,
    });
    this.cacheRequests = new Counter({
      name: 'omnivibe_cache_requests_total',
      help: 'Cache reads by prefix, tier (l1, store) and result (hit, miss, stale, error).',
      labelNames: ['prefix', 'tier', 'result'],
      registers,
    });
    this.cacheLatency = new SeriesHistogram({
      name: 'omnivibe_cache_request_duration_seconds',
      help: 'Duration of cache reads, by prefix and tier (l1: the in-process copy; store: memory or Redis).',
      labelNames: ['prefix', 'tier'],
      buckets: CACHE_LATENCY_BUCKETS_S,
      registers,
    });
    this.dbDuration = new SeriesHistogram({
      name: 'omnivibe_db_query_duration_seconds',
      help: 'Duration of database statements, by dialect and operation.',
      labelNames: ['dialect', 'operation'],
      buckets: DB_BUCKETS,
      registers,
    });
    this.dbSlow = new SeriesCounter({
      name: 'omnivibe_db_slow_queries_total',
      help: 'Statements slower than DB_SLOW_QUERY_MS.',
      labelNames: ['dialect', 'operation'],
      registers,
    });
    this.dbErrors = new SeriesCounter({
      name: 'omnivibe_db_query_errors_total',
      help: 'Statements that failed.',
      labelNames: ['dialect', 'operation'],
      registers,
    });
    this.vendorRequests = new Counter({
      name: 'omnivibe_ai_requests_total',
      help: 'Calls to AI vendors (TTS, STT), by provider, model, operation and outcome.',
      labelNames: ['provider', 'model', 'operation', 'outcome'],
      registers,
    });
    this.vendorCost = new Counter({
      name: 'omnivibe_ai_cost_usd_total',
      help: 'Cost of AI vendor calls in USD, as recorded in ai_api_usage.',
      labelNames: ['provider', 'model', 'operation'],
      registers,
    });
    this.vendorUnits = new Counter({
      name: 'omnivibe_ai_billed_units_total',
      help: 'Billed units of AI vendor calls (characters, seconds, tokens).',
      labelNames: ['provider', 'model', 'operation', 'unit'],
      registers,
    });
    this.vendorLatency = new Histogram({
      name: 'omnivibe_ai_request_duration_seconds',
      help: 'Duration of AI vendor calls.',
      labelNames: ['provider', 'model', 'operation'],
      buckets: SLOW_BUCKETS,
      registers,
    });
    this.narrationAttempts = new Histogram({
      name: 'omnivibe_narration_attempts',
      help: 'Attempts one narration took, by TTS provider and final status.',
      labelNames: ['provider', 'status'],
      buckets: [1, 2, 3, 4, 5, 7, 10],
      registers,
    });
    this.narrationSimilarity = new Histogram({
      name: 'omnivibe_narration_similarity',
      help: 'Final similarity of a narration to its script (0..1), by TTS provider and final status.',
      labelNames: ['provider', 'status'],
      buckets: [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 1],
      registers,
    });
    this.renderDuration = new Histogram({
      name: 'omnivibe_render_duration_seconds',
      help: 'Duration of one video render (ffmpeg and its uploads), by preset and outcome (ok, error).',
      labelNames: ['preset', 'outcome'],
      buckets: RENDER_BUCKETS,
      registers,
    });
    this.sandboxStarted = new Counter({
      name: 'omnivibe_sandbox_children_started_total',
      help: "Sandbox child processes this process's worker started.",
      registers,
    });
    this.sandboxRecycled = new Counter({
      name: 'omnivibe_sandbox_children_recycled_total',
      help: 'Sandbox children that left service, by reason: max_tasks, memory (past the ceiling), killed (hard timeout or an abort not obeyed), exited (died by itself).',
      labelNames: ['reason'],
      registers,
    });
  }

  /** Copies the cache's own latency counts (cumulative since start) into the histogram at each scrape. */
  setCacheLatencySource(source: CacheLatencySource): void {
    this.addScrapeSource(() => {
      for (const [prefix, reads] of source())
        for (const tier of ['l1', 'store'] as const) {
          const h = reads.timing[tier];
          if (h.count === 0) continue;
          const series = this.cacheLatency.labels({ prefix, tier });
          series.counts.set(h.counts);
          series.sum = h.sum;
          series.count = h.count;
        }
    });
  }

  /** Adds a figure computed at each scrape (its errors are the scrape's errors). */
  addScrapeSource(source: ScrapeSource): void {
    this.sources.push(source);
  }

  /** The exposition in the format the Accept header asks for (OpenMetrics when named, else Prometheus text). */
  async expose(accept: string | undefined): Promise<{ contentType: string; body: string }> {
    // Sources set gauges of several metrics, so they all run before any metric is read.
    await Promise.all(this.sources.map((s) => s()));
    const text = await this.registry.metrics();
    return accept?.includes('application/openmetrics-text')
      ? { contentType: OPENMETRICS_CONTENT_TYPE, body: toOpenMetrics(text, this.exemplars) }
      : { contentType: this.registry.contentType, body: text };
  }

  /** A request arrived (counted in http_server_active_requests until httpRequestEnded). */
  httpRequestStarted(): void {
    this.inFlight++;
  }

  /** A request was answered or abandoned by its client. */
  httpRequestEnded(): void {
    this.inFlight--;
  }

  /** Times an answered request (`route`: its template; undefined when no route matched). */
  httpRequest(method: string, route: string | undefined, status: number, seconds: number): void {
    const r = route ?? UNMATCHED_ROUTE;
    let byRoute = this.httpSlots.get(method);
    if (!byRoute) this.httpSlots.set(method, (byRoute = new Map()));
    let byStatus = byRoute.get(r);
    if (!byStatus) byRoute.set(r, (byStatus = new Map()));
    let slot = byStatus.get(status);
    if (!slot) {
      const m = (HTTP_METHODS as readonly string[]).includes(method) ? method : 'other';
      slot = {
        series: this.httpDuration.labels({ method: m, route: r, status_code: status }),
        live: this.live?.httpSlot(m, r),
      };
      byStatus.set(status, slot);
    }
    slot.series.observe(seconds);
    if (slot.live) this.live?.httpInto(slot.live, status, seconds);
    const traceId = this.traceId?.();
    if (traceId)
      this.exemplars.record(
        'http_server_request_duration_seconds',
        slot.series.labels,
        DURATION_BUCKETS,
        seconds,
        traceId,
      );
  }

  private jobSlot(queue: string, task: string): JobSlot {
    let byTask = this.jobSlots.get(queue);
    if (!byTask) this.jobSlots.set(queue, (byTask = new Map()));
    let slot = byTask.get(task);
    if (!slot) {
      slot = { labels: Object.freeze({ queue, task }), finished: {}, live: this.live?.jobSlot(queue, task) };
      byTask.set(task, slot);
    }
    return slot;
  }

  jobEnqueued(queue: string, task: string): void {
    const slot = this.jobSlot(queue, task);
    (slot.enqueued ??= this.jobsEnqueued.labels(slot.labels)).inc();
  }

  jobFinished(
    queue: string,
    task: string,
    outcome: JobOutcome,
    waitS: number | null,
    runS: number | null,
  ): void {
    const slot = this.jobSlot(queue, task);
    (slot.finished[outcome] ??= this.jobsFinished.labels({ queue, task, outcome })).inc();
    if (waitS !== null) (slot.wait ??= this.jobWait.labels(slot.labels)).observe(waitS);
    if (runS !== null) (slot.run ??= this.jobRun.labels(slot.labels)).observe(runS);
    if (slot.live) this.live?.jobInto(slot.live, outcome, waitS, runS);
    const traceId = this.traceId?.();
    if (traceId) {
      if (waitS !== null)
        this.exemplars.record('omnivibe_job_wait_seconds', slot.labels, JOB_BUCKETS, waitS, traceId);
      if (runS !== null)
        this.exemplars.record('omnivibe_job_run_seconds', slot.labels, JOB_BUCKETS, runS, traceId);
    }
  }

  dbQuery(dialect: string, operation: DbOperation, seconds: number, slow: boolean, failed: boolean): void {
    let byOperation = this.dbSlots.get(dialect);
    if (!byOperation) this.dbSlots.set(dialect, (byOperation = new Map()));
    let slot = byOperation.get(operation);
    if (!slot) {
      const labels = Object.freeze({ dialect, operation });
      slot = { labels, duration: this.dbDuration.labels(labels) };
      byOperation.set(operation, slot);
    }
    slot.duration.observe(seconds);
    if (slow) this.dbSlow.labels(slot.labels).inc();
    if (failed) this.dbErrors.labels(slot.labels).inc();
    this.live?.db(seconds, slow);
  }

  vendorCall(c: VendorCall): void {
    const labels = { provider: c.provider, model: c.model ?? 'none', operation: c.operation };
    this.vendorRequests.inc({ ...labels, outcome: c.outcome });
    this.vendorLatency.observe(labels, c.latencyS);
    if (c.outcome === 'ok') {
      this.vendorCost.inc(labels, c.costUsd);
      this.vendorUnits.inc({ ...labels, unit: c.unit }, c.units);
    }
  }

  narrationFinished(provider: string, status: string, attempts: number, similarity: number | null): void {
    this.narrationAttempts.observe({ provider, status }, attempts);
    if (similarity !== null) this.narrationSimilarity.observe({ provider, status }, similarity);
  }

  renderFinished(r: RenderRun): void {
    this.renderDuration.observe({ preset: r.preset, outcome: r.outcome }, r.seconds);
  }

  sandboxChildStarted(): void {
    this.sandboxStarted.inc();
  }

  sandboxChildRecycled(reason: SandboxRecycleReason): void {
    this.sandboxRecycled.inc({ reason });
  }
}
