/**
 * bench:queue's cases of the job system as users run it (issue 11): the built `omnivibe` command,
 * default settings, tasks enqueued over HTTP, timings read from `task_runs`.
 *
 *   http_enqueue            `omnivibe serve`: POST /tasks one request at a time, the same with
 *                           several requests in flight, and POST /tasks/bulk (1,000 a request)
 *   serve_worker            `omnivibe serve` + a separate `omnivibe worker` with the default flags (all
 *                           three queues, concurrency 4, prefetch 16): drain of a paused backlog of no-ops
 *   serve_worker_one_queue  the same with `omnivibe worker --queues default` (the single-queue figure)
 *   serve_worker_steady     enqueue-to-start P50/P99 at a steady 1,000 tasks/s of single POST /tasks
 *   serve_worker_priority   start P99 of high-priority tasks enqueued over HTTP behind a low-priority backlog
 *   start                   `omnivibe start` (API and worker in one process): the same drain
 *   start_steady            `omnivibe start`: the steady-rate latencies
 *
 * Drain protocol (as the in-process cases): warm up with 200 tasks, pause `default` over the API,
 * enqueue the backlog over HTTP, resume over the API and time from the resume request to the last
 * task's `finished_at`. Latencies are `task_runs.wait_ms` (enqueued in the API process to started in
 * the worker); `*_from_request` extras add the HTTP request (sent by the bench to started).
 * The worker's CPU time during the drain comes from /proc.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MAX_BULK_TASKS } from '../../src/api/routes/tasks.routes.js';
import { CLI, type OmnivibeProcess, ProductStack } from './omnivibe-process.js';
import { type BenchResult, emit, percentile } from './report.js';

export const DEFAULT_CASES = [
  'http_enqueue',
  'serve_worker',
  'serve_worker_one_queue',
  'serve_worker_steady',
  'serve_worker_priority',
  'start',
  'start_steady',
] as const;
export type DefaultCase = (typeof DEFAULT_CASES)[number];

export interface DefaultSizes {
  /** Backlog of each drain (20,000 in the runs). */
  drain: number;
  /** Of the serve_worker backlog: tasks enqueued one request each, then with `inFlight` requests at once. */
  single: number;
  concurrent: number;
  inFlight: number;
  steady: number;
  backlog: number;
  probes: number;
}

export interface DefaultCasesContext {
  bench: string;
  backend: 'sqlite' | 'bullmq';
  /** BullMQ's Redis (backend bullmq). */
  redisUrl?: string;
  /** A directory for the data directories of the stacks. */
  dir: string;
  /** The `omnivibe` entry point (default: this tree's dist/main/cli.js). */
  cli?: string;
  sizes: DefaultSizes;
  want(c: DefaultCase): boolean;
  /** This run's figures to compare with: the in-process single-queue rate of this backend, raw BullMQ's. */
  inprocess?: number;
  raw?: number;
}

const NOOP = 'diagnostics.noop';
const PROBE = 'diagnostics.sleep_high';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r2 = (v: number) => Math.round(v * 100) / 100;
const noops = (n: number, extra: Record<string, unknown> = {}) =>
  Array.from({ length: n }, () => ({ name: NOOP, ...extra }));

/** Runs the selected cases on one backend: a `serve` stack, then a `start` stack. */
export async function runDefaultCases(ctx: DefaultCasesContext): Promise<void> {
  const { want } = ctx;
  let oneQueue: number | undefined;
  const serveCases: DefaultCase[] = [
    'http_enqueue',
    'serve_worker',
    'serve_worker_steady',
    'serve_worker_priority',
  ];
  if (want('serve_worker_one_queue') || serveCases.some(want)) {
    await withStack(ctx, 'serve', async (s) => {
      if (want('serve_worker_one_queue')) {
        const w = await s.startWorker(['--queues', 'default']);
        oneQueue = await drain(ctx, s, w, 'serve_worker_one_queue', { overHttp: false, report: true });
        await w.stop();
      }
      if (!serveCases.some(want)) return;
      const w = await s.startWorker();
      if (want('http_enqueue') || want('serve_worker'))
        await drain(ctx, s, w, 'serve_worker', {
          overHttp: want('http_enqueue'),
          report: want('serve_worker'),
          oneQueue,
        });
      if (want('serve_worker_steady')) await steady(ctx, s, 'serve_worker_steady');
      if (want('serve_worker_priority')) await priority(ctx, s, 'serve_worker_priority');
    });
  }
  if (want('start') || want('start_steady')) {
    await withStack(ctx, 'start', async (s) => {
      if (want('start')) await drain(ctx, s, s.server, 'start', { overHttp: false, report: true, oneQueue });
      if (want('start_steady')) await steady(ctx, s, 'start_steady');
    });
  }
}

async function withStack(
  ctx: DefaultCasesContext,
  command: 'serve' | 'start',
  fn: (s: ProductStack) => Promise<void>,
): Promise<void> {
  const dir = fs.mkdtempSync(path.join(ctx.dir, `${ctx.backend}-${command}-`));
  const s = new ProductStack({
    dir,
    ...(ctx.cli ? { cli: ctx.cli } : {}),
    ...(ctx.backend === 'bullmq' ? { redisUrl: ctx.redisUrl } : {}),
  });
  try {
    await s.startServer(command);
    await fn(s);
  } finally {
    await s.stop();
  }
}

function result(
  ctx: DefaultCasesContext,
  r: Pick<BenchResult, 'case' | 'metric' | 'value' | 'unit'> & Partial<BenchResult>,
): void {
  emit({
    bench: ctx.bench,
    backend: ctx.backend,
    ...r,
    ...(ctx.cli && ctx.cli !== CLI ? { cli: ctx.cli } : {}),
  });
}

/** Sends `n` single enqueues with at most `inFlight` requests at once. */
async function enqueueConcurrently(s: ProductStack, n: number, inFlight: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      await s.api.enqueue(NOOP);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, n) }, lane));
}

/**
 * Drains a paused backlog of no-ops with the worker `proc` (a `worker`, or `start` itself) and returns
 * the rate (reported when `report`). With `overHttp`, the backlog is enqueued one request per task, then
 * several in flight, then in bulk, and each enqueue rate is reported (case http_enqueue); otherwise in
 * bulk only.
 */
async function drain(
  ctx: DefaultCasesContext,
  s: ProductStack,
  proc: OmnivibeProcess,
  name: DefaultCase,
  o: { overHttp: boolean; report: boolean; oneQueue?: number },
): Promise<number> {
  const { sizes } = ctx;
  let mark = s.runs.mark();
  await s.api.enqueueBulk(noops(200));
  await s.runs.waitFinished(mark, NOOP, 200, 30_000, `${name} warm-up`);

  await s.api.setPaused('default', true);
  mark = s.runs.mark();
  const n = sizes.drain;
  let inBulk = n;
  const http = { rate_limit_writes_per_min: ProductStack.RATE_LIMIT_WRITES_PER_MIN };
  if (o.overHttp) {
    let t = performance.now();
    for (let i = 0; i < sizes.single; i++) await s.api.enqueue(NOOP);
    result(ctx, {
      case: 'http_single',
      metric: 'enqueue_per_s',
      value: sizes.single / ((performance.now() - t) / 1000),
      unit: 'tasks/s',
      tasks: sizes.single,
      ...http,
    });
    t = performance.now();
    await enqueueConcurrently(s, sizes.concurrent, sizes.inFlight);
    result(ctx, {
      case: 'http_concurrent',
      metric: 'enqueue_per_s',
      value: sizes.concurrent / ((performance.now() - t) / 1000),
      unit: 'tasks/s',
      tasks: sizes.concurrent,
      in_flight: sizes.inFlight,
      ...http,
    });
    inBulk = n - sizes.single - sizes.concurrent;
  }
  const t = performance.now();
  for (let i = 0; i < inBulk; i += MAX_BULK_TASKS)
    await s.api.enqueueBulk(noops(Math.min(MAX_BULK_TASKS, inBulk - i)));
  if (o.overHttp)
    result(ctx, {
      case: 'http_bulk',
      metric: 'enqueue_per_s',
      value: inBulk / ((performance.now() - t) / 1000),
      unit: 'tasks/s',
      tasks: inBulk,
      per_request: MAX_BULK_TASKS,
      ...http,
    });

  const cpu0 = proc.cpuSeconds();
  const t0 = Date.now();
  await s.api.setPaused('default', false);
  await s.runs.waitFinished(mark, NOOP, n, 30_000, name).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.command} log:\n${proc.tail()}`);
  });
  const cpu = proc.cpuSeconds() - cpu0;
  const rows = s.runs.rows(mark, NOOP);
  const end = rows.reduce((m, r) => Math.max(m, r.finished ?? 0), 0);
  const rate = n / ((end - t0) / 1000);
  if (!o.report) return rate;
  const notes: string[] = [];
  const vs = (label: string, key: string, base: number | undefined) => {
    if (base === undefined) return {};
    notes.push(`${r2(rate / base)} of ${label}`);
    return { [`${key}_per_s`]: Math.round(base), [`ratio_to_${key}`]: r2(rate / base) };
  };
  result(ctx, {
    case: name,
    metric: 'noop_jobs_per_s',
    value: rate,
    unit: 'tasks/s',
    tasks: n,
    process:
      name === 'start'
        ? 'omnivibe start'
        : `omnivibe worker${name.endsWith('one_queue') ? ' --queues default' : ''}`,
    failed_tasks: rows.filter((r) => r.status !== 'succeeded').length,
    worker_cpu_s: r2(cpu),
    worker_cpu_per_s: r2(cpu / ((end - t0) / 1000)),
    worker_cpu_us_per_task: Math.round((cpu / n) * 1e6),
    ...(ctx.inprocess !== undefined ? { baseline: ctx.inprocess, ratio: rate / ctx.inprocess } : {}),
    ...(name === 'serve_worker_one_queue' ? {} : vs('one queue', 'one_queue', o.oneQueue)),
    ...vs('raw BullMQ', 'raw_bullmq', ctx.raw),
    ...(notes.length ? { note: notes.join(', ') } : {}),
  });
  return rate;
}

/** Enqueue-to-start at a steady 1,000 single POST /tasks a second. */
async function steady(ctx: DefaultCasesContext, s: ProductStack, name: DefaultCase): Promise<void> {
  const n = ctx.sizes.steady;
  const perSecond = 1000;
  const mark = s.runs.mark();
  const sent = new Map<string, number>();
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / perSecond - performance.now();
    if (wait > 1) await sleep(wait);
    const at = Date.now();
    sent.set((await s.api.enqueue(NOOP)).task_id, at);
  }
  const achieved = n / ((performance.now() - start) / 1000);
  await s.runs.waitFinished(mark, NOOP, n, 30_000, name);
  const rows = s.runs.rows(mark, NOOP).filter((r) => sent.has(r.task_id) && r.started !== null);
  const wait = rows.map((r) => r.wait_ms ?? Number.NaN).sort((a, b) => a - b);
  const fromRequest = rows
    .map((r) => (r.started as number) - (sent.get(r.task_id) as number))
    .sort((a, b) => a - b);
  const extra = { tasks: n, rate_per_s: perSecond, achieved_rate_per_s: Math.round(achieved) };
  result(ctx, {
    case: name,
    metric: 'enqueue_to_start_p50_ms',
    value: percentile(wait, 50),
    unit: 'ms',
    from_request_p50_ms: percentile(fromRequest, 50),
    ...extra,
  });
  result(ctx, {
    case: name,
    metric: 'enqueue_to_start_p99_ms',
    value: percentile(wait, 99),
    unit: 'ms',
    from_request_p99_ms: percentile(fromRequest, 99),
    ...extra,
  });
}

/**
 * High-priority probes enqueued over HTTP, one every 10 ms, while the worker drains a low-priority
 * backlog; a probe counts if a low-priority task still started after it was sent (the backlog was
 * really in front of it). The backlog is enqueued in bulk while low_priority is paused.
 */
async function priority(ctx: DefaultCasesContext, s: ProductStack, name: DefaultCase): Promise<void> {
  const { backlog, probes } = ctx.sizes;
  await s.api.setPaused('low_priority', true);
  for (let i = 0; i < backlog; i += MAX_BULK_TASKS)
    await s.api.enqueueBulk(noops(Math.min(MAX_BULK_TASKS, backlog - i), { queue: 'low_priority' }));
  const mark = s.runs.mark();
  await s.api.setPaused('low_priority', false);
  await sleep(200);
  const sent = new Map<string, number>();
  for (let i = 0; i < probes; i++) {
    const at = Date.now();
    sent.set((await s.api.enqueue(PROBE, { ms: 0 })).task_id, at);
    await sleep(10);
  }
  await s.runs.waitFinished(mark, PROBE, probes, 30_000, name);
  const lastLowStart = s.runs.lastStart(mark, 'low_priority');
  const behind = s.runs
    .rows(mark, PROBE)
    .filter((r) => r.started !== null && (sent.get(r.task_id) ?? Infinity) < lastLowStart);
  const wait = behind.map((r) => r.wait_ms ?? Number.NaN).sort((a, b) => a - b);
  const fromRequest = behind
    .map((r) => (r.started as number) - (sent.get(r.task_id) as number))
    .sort((a, b) => a - b);
  result(ctx, {
    case: name,
    metric: 'priority_start_p99_ms',
    value: percentile(wait, 99),
    unit: 'ms',
    p50_ms: percentile(wait, 50),
    from_request_p99_ms: percentile(fromRequest, 99),
    backlog,
    probes,
    probes_behind_backlog: behind.length,
    low_finished_meanwhile: s.runs.finished(mark, NOOP),
  });
}
