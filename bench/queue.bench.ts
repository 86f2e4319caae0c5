/**
 * bench:queue: the job system on each backend, in one run:
 *   sqlite      the embedded engine (a temporary file), through the worker runtime
 *   bullmq      the BullMQ adapter on Redis (a server started for the run), same runtime
 *   bullmq-raw  a plain BullMQ Worker on the same Redis: the adapter's baseline
 *
 * Metrics (names fixed by the issue):
 *   enqueue_per_s            case single (one await per job) and bulk (batches of 1,000)
 *   noop_jobs_per_s          case inprocess, and sandboxed with children recycled every 100 tasks
 *                            (sandboxed) and every 1,000 (sandboxed_1000); concurrency 4, one queue
 *   sandbox_overhead_ms      what running in a sandbox child adds to a real task: a narration with
 *                            espeak and a low-quality render of a two-block script, each timed
 *                            enqueue to completion in-process and sandboxed (medians of interleaved
 *                            rounds; embedded backend only: the child's cost does not depend on it)
 *   enqueue_to_start_p50_ms / enqueue_to_start_p99_ms at a steady 1,000 jobs/s
 *   priority_start_p99_ms    a high_priority job's start latency behind a 100,000-job low_priority backlog
 *   cpu_us_per_job           with each in-process throughput: this process's CPU time per job (worker runtime and
 *                            client), and on BullMQ the Redis server's (redis_cpu_us_per_job)
 *   rss_growth_pct           process RSS after 200,000 jobs against RSS before them, after a warm-up of
 *                            100,000 jobs; each figure the median of 10 samples taken after a full GC
 *                            (method and why: see rssGrowth)
 * Every attempt writes its task_runs row and its two log lines (the product's logger at info, to /dev/null).
 * Workers run with concurrency 4 and prefetch 16 (the defaults). Throughput is timed from the moment
 * the backlog's queue is resumed (it is enqueued while paused), the same way for bullmq-raw.
 * Sandbox children start from dist/main/task-child.js when it exists (`npm run build` first, as in
 * production), otherwise from the TypeScript source under tsx (seconds per child start).
 *
 * The product as users run it (the built `omnivibe` serve, worker and start processes with their
 * defaults, tasks enqueued over HTTP): see lib/queue-defaults.ts. Their throughput is compared with the
 * in-process figure of the same backend (ratio) and, on BullMQ, with raw BullMQ (note).
 *
 *   npm run build && npm run bench:queue   full run
 *   npm run bench:queue -- --quick         smaller sizes, under a minute
 *   --backend=sqlite|bullmq                one backend only (bullmq includes bullmq-raw)
 *   --case=inprocess,rss                   only these cases: enqueue (single and bulk), inprocess, sandboxed,
 *                                          sandboxed_1000, sandbox_overhead, steady, priority, rss (bullmq-raw runs its
 *                                          enqueue, inprocess and steady cases when they are selected), and
 *                                          the product's: http_enqueue, serve_worker, serve_worker_one_queue,
 *                                          serve_worker_steady, serve_worker_priority, start, start_steady
 *                                          (`defaults` selects all seven)
 *   --cli=<path>                           the product's cases run this build's dist/main/cli.js instead
 *                                          (interleaved A/B runs of two builds)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue, Worker as BullWorker } from 'bullmq';
import { ChangeFeed } from '../src/domain/changes.js';
import { loadConfig } from '../src/config/config.js';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { BullmqQueue } from '../src/jobs/bullmq/bullmq-queue.js';
import { Jobs } from '../src/jobs/jobs.js';
import { TaskRegistry } from '../src/jobs/registry.js';
import { SqliteQueue } from '../src/jobs/sqlite/sqlite-queue.js';
import { Shortcuts } from '../src/jobs/shortcuts.js';
import { TaskRunRecorder } from '../src/jobs/task-runs.js';
import type { ClaimedJob, JobQueue, QueueName } from '../src/jobs/types.js';
import { Worker } from '../src/jobs/worker/worker.js';
import { createLogger } from '../src/main/logger.js';
import { createMediaServices } from '../src/media/media-services.js';
import type { TaskDeps } from '../src/tasks/deps.js';
import { createTaskRegistry, TASKS } from '../src/tasks/index.js';
import { seedContent } from '../test/media/media-fixtures.js';
import { type RunningService, startRedis } from '../test/support/services.js';
import { DEFAULT_CASES, type DefaultSizes, runDefaultCases } from './lib/queue-defaults.js';
import { CLI, cpuSecondsOf } from './lib/omnivibe-process.js';
import { emit, isQuick, loadAverage, percentile, printTable } from './lib/report.js';

const BENCH = 'queue';
const quick = isQuick();
const N = quick
  ? {
      single: 2_000,
      bulk: 20_000,
      noop: 10_000,
      sandboxed: 5_000,
      steady: 1_000,
      backlog: 20_000,
      probes: 30,
      rss: 40_000,
    }
  : {
      single: 5_000,
      bulk: 100_000,
      noop: 50_000,
      sandboxed: 20_000,
      steady: 5_000,
      backlog: 100_000,
      probes: 100,
      rss: 200_000,
    };
/** The product's cases (lib/queue-defaults.ts). */
const DEFAULTS: DefaultSizes = quick
  ? { drain: 3_000, single: 300, concurrent: 600, inFlight: 16, steady: 500, backlog: 10_000, probes: 20 }
  : {
      drain: 20_000,
      single: 2_000,
      concurrent: 4_000,
      inFlight: 16,
      steady: 5_000,
      backlog: 100_000,
      probes: 100,
    };
const CONCURRENCY = 4;
/** The worker default (WORKER_PREFETCH): the seed's prefetch multiplier 4 × concurrency 4. */
const PREFETCH = 16;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-queue-'));
// The product's logger, writing to /dev/null instead of stdout.
const logger = createLogger({ logLevel: 'info' }, '/dev/null');
const registry = createTaskRegistry();
const CHILD = fs.existsSync(path.resolve('dist/main/task-child.js'))
  ? path.resolve('dist/main/task-child.js')
  : path.resolve('src/main/task-child.ts');

const CASES = [
  'enqueue',
  'inprocess',
  'sandboxed',
  'sandboxed_1000',
  'sandbox_overhead',
  'steady',
  'priority',
  'rss',
  ...DEFAULT_CASES,
] as const;
type CaseName = (typeof CASES)[number];
/** Names that select several cases. */
const CASE_GROUPS: Record<string, readonly CaseName[]> = { defaults: DEFAULT_CASES };
const caseArg = process.argv.find((a) => a.startsWith('--case='))?.slice('--case='.length);
const selected = new Set<string>(
  caseArg ? caseArg.split(',').flatMap((c): readonly string[] => CASE_GROUPS[c] ?? [c]) : CASES,
);
for (const c of selected)
  if (!(CASES as readonly string[]).includes(c))
    throw new Error(`unknown --case ${c} (one of ${[...CASES, ...Object.keys(CASE_GROUPS)].join(', ')})`);
const want = (c: CaseName) => selected.has(c);

// Sandbox children and the product's processes run from dist while this bench runs from the sources:
// a stale build would measure other code.
const sourceFiles = (d: string): string[] =>
  fs
    .readdirSync(d, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(d, e.name)) : [path.join(d, e.name)]));
const cliArg = process.argv.find((a) => a.startsWith('--cli='))?.slice('--cli='.length);
const cli = cliArg ? path.resolve(cliArg) : CLI;
if (DEFAULT_CASES.some(want) && !fs.existsSync(cli)) {
  process.stderr.write(`bench:queue: ${cli} is missing: run \`npm run build\` first\n`);
  process.exit(2);
}
if (CHILD.endsWith('.js')) {
  const built = fs.statSync(CHILD).mtimeMs;
  const newer = sourceFiles('src').filter((f) => fs.statSync(f).mtimeMs > built);
  if (newer.length > 0) {
    process.stderr.write(
      `bench:queue: dist/ is older than ${newer.join(', ')}: run \`npm run build\` first\n`,
    );
    process.exit(2);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (v: number) => Math.round(v * 100) / 100;

async function mainDb() {
  const file = path.join(dir, `main-${Math.random().toString(36).slice(2, 8)}.db`);
  const cfg = { dialect: 'sqlite' as const, file, busyTimeoutMs: 10_000 };
  const h = openDatabase(cfg);
  await migrateToLatest(h.db, cfg);
  return h;
}

type Backend = 'sqlite' | 'bullmq';

function makeQueue(backend: Backend, redis: string | undefined): JobQueue {
  if (backend === 'sqlite')
    return new SqliteQueue({
      file: path.join(dir, `jobs-${Math.random().toString(36).slice(2, 8)}.db`),
      leaseMs: 30_000,
      maxStalls: 3,
      pollMs: 50,
    });
  return new BullmqQueue({
    url: redis as string,
    prefix: `ov:q:bench${Math.random().toString(36).slice(2, 8)}`,
    leaseMs: 30_000,
    maxStalls: 3,
    logger,
    shortcuts: Shortcuts.allOn(),
    keepLast: 1000,
    keepHours: 1,
  });
}

/** Resolves when `n` jobs finished (completed, or failed for good: a bench must not hang on a broken child). */
function completions(q: JobQueue, n: number): Promise<void> {
  return new Promise((resolve) => {
    let done = 0;
    const on = () => {
      if (++done >= n) {
        q.off('completed', on);
        q.off('failed', onFailed);
        resolve();
      }
    };
    const onFailed = (_id: string, error: string, final: boolean) => {
      if (!final) return;
      failures++;
      if (failures <= 3) process.stderr.write(`bench: a job failed: ${error}\n`);
      on();
    };
    q.on('completed', on);
    q.on('failed', onFailed);
  });
}

/** Jobs that failed during the run (reported with every throughput figure; should be 0). */
let failures = 0;

/** The Redis server of the BullMQ cases: its CPU time is part of what each job costs. */
let redisPid: number | undefined;

/**
 * Starts measuring CPU time; the function returned gives it per job for `n` jobs, in µs: this process's
 * (the worker runtime and the client, or raw BullMQ's worker) and, on BullMQ, the Redis server's. Load
 * from other processes disturbs CPU time much less than throughput.
 */
function cpuPerJob(): (n: number) => { cpu_us_per_job: number; redis_cpu_us_per_job?: number } {
  const own = process.cpuUsage();
  const pid = redisPid;
  const server = pid === undefined ? 0 : cpuSecondsOf(pid);
  return (n) => {
    const used = process.cpuUsage(own);
    return {
      cpu_us_per_job: Math.round((used.user + used.system) / n),
      ...(pid === undefined
        ? {}
        : { redis_cpu_us_per_job: Math.round(((cpuSecondsOf(pid) - server) * 1e6) / n) }),
    };
  };
}

async function withWorker<T>(
  q: JobQueue,
  opts: { queues: QueueName[]; maxTasksPerChild?: number },
  fn: (w: Worker) => Promise<T>,
): Promise<T> {
  const db = await mainDb();
  const taskRuns = new TaskRunRecorder(db.db, q, logger, Shortcuts.allOn());
  const w = new Worker({
    queue: q,
    registry,
    deps: {},
    logger,
    taskRuns,
    queues: opts.queues,
    concurrency: CONCURRENCY,
    prefetch: PREFETCH,
    sandbox: {
      childModule: CHILD,
      maxTasksPerChild: opts.maxTasksPerChild ?? 100,
      maxMemoryMb: 512,
    },
  }).start();
  try {
    return await fn(w);
  } finally {
    await w.stop({ timeoutMs: 5000 });
    await db.close();
  }
}

async function enqueueRates(backend: Backend, q: JobQueue): Promise<void> {
  const jobs = new Jobs(q, registry);
  let t = performance.now();
  for (let i = 0; i < N.single; i++) await jobs.enqueue('diagnostics.noop', {});
  emit({
    bench: BENCH,
    case: 'single',
    backend,
    metric: 'enqueue_per_s',
    value: N.single / ((performance.now() - t) / 1000),
    unit: 'jobs/s',
    jobs: N.single,
  });
  t = performance.now();
  for (let i = 0; i < N.bulk; i += 1000)
    await jobs.enqueueBulk(Array.from({ length: 1000 }, () => ({ name: 'diagnostics.noop', payload: {} })));
  emit({
    bench: BENCH,
    case: 'bulk',
    backend,
    metric: 'enqueue_per_s',
    value: N.bulk / ((performance.now() - t) / 1000),
    unit: 'jobs/s',
    jobs: N.bulk,
    batch: 1000,
  });
}

async function noopThroughput(
  backend: Backend,
  q: JobQueue,
  mode: 'inprocess' | 'sandboxed' | 'sandboxed_1000',
  baseline?: number,
): Promise<number> {
  const jobs = new Jobs(q, registry);
  const sandboxed = mode !== 'inprocess';
  failures = 0;
  const name = sandboxed ? 'diagnostics.noop_sandboxed' : 'diagnostics.noop';
  const n = mode === 'inprocess' ? N.noop : N.sandboxed;
  const maxTasksPerChild = mode === 'sandboxed_1000' ? 1000 : 100;
  return withWorker(q, { queues: ['default'], maxTasksPerChild }, async () => {
    // Warm up (and, sandboxed, start the children) before timing.
    const warm = completions(q, 200);
    await jobs.enqueueBulk(Array.from({ length: 200 }, () => ({ name, payload: {} })));
    await warm;
    // The backlog is enqueued while the queue is paused; the clock starts at resume.
    await q.pause('default');
    const done = completions(q, n);
    for (let i = 0; i < n; i += 1000)
      await jobs.enqueueBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name, payload: {} })));
    const t = performance.now();
    const cpu = cpuPerJob();
    await q.resume('default');
    await done;
    const rate = n / ((performance.now() - t) / 1000);
    emit({
      ...cpu(n),
      bench: BENCH,
      case: mode,
      backend,
      metric: 'noop_jobs_per_s',
      value: rate,
      unit: 'jobs/s',
      jobs: n,
      concurrency: CONCURRENCY,
      prefetch: PREFETCH,
      failed_jobs: failures,
      ...(sandboxed ? { max_tasks_per_child: maxTasksPerChild } : {}),
      ...(baseline !== undefined ? { baseline, ratio: rate / baseline } : {}),
    });
    return rate;
  });
}

/** Resolves with the time from enqueue to the job's end; rejects if it failed. */
async function timedJob(q: JobQueue, jobs: Jobs, name: string, payload: unknown): Promise<number> {
  const ended = new Map<string, string | null>();
  const onCompleted = (id: string) => void ended.set(id, null);
  const onFailed = (id: string, error: string, final: boolean) => void (final && ended.set(id, error));
  q.on('completed', onCompleted);
  q.on('failed', onFailed);
  try {
    const t = performance.now();
    const { id } = await jobs.enqueue(name, payload);
    while (!ended.has(id)) await sleep(2);
    const error = ended.get(id);
    if (error) throw new Error(`bench: ${name} failed: ${error}`);
    return performance.now() - t;
  } finally {
    q.off('completed', onCompleted);
    q.off('failed', onFailed);
  }
}

/**
 * What a sandbox child adds to a real task: a narration (espeak) and a low-quality render of a
 * two-block script, run alternately in-process and in a child (bench/lib/narration-task-child.ts)
 * by two workers on queues of their own. One untimed round first: the child has started and loaded
 * both handlers and their dependencies, so what remains is what every task pays (the exchange, the
 * child's own database connection and media services). A child's start is paid once every
 * --max-tasks-per-child tasks: the sandboxed no-op cases measure it.
 */
async function sandboxOverhead(): Promise<void> {
  const rounds = quick ? 3 : 7;
  const file = path.join(dir, 'overhead.db');
  const dbConfig = { dialect: 'sqlite' as const, file, busyTimeoutMs: 10_000 };
  const h = openDatabase(dbConfig);
  await migrateToLatest(h.db, dbConfig);
  const env = { DATABASE_URL: `sqlite:${file}`, MEDIA_DIR: path.join(dir, 'media'), LOG_LEVEL: 'silent' };
  const config = loadConfig(env);
  const { contentId } = await seedContent(h.db, ['새 시즌이 시작됩니다.', '지금 확인하세요!']);
  // The in-process side's media pipeline, as a worker's composition root builds it (the child builds its own).
  const changes = new ChangeFeed(logger); // no cache here: nobody listens
  const media = createMediaServices(config.media, h.db, 'sqlite', logger, { changes });
  const repo = media.repo;
  const side = (sandboxed: boolean) => {
    const q = makeQueue('sqlite', undefined);
    const deps: TaskDeps = {
      config,
      logger,
      dialect: 'sqlite',
      db: () => h.db,
      queue: () => q,
      media: () => media,
      changes: () => changes,
    };
    const reg = new TaskRegistry(
      TASKS.map((t) => (t.name === 'audio.generate' || t.name === 'video.render' ? { ...t, sandboxed } : t)),
    );
    const w = new Worker({
      queue: q,
      registry: reg,
      deps,
      logger,
      queues: ['high_priority', 'default'],
      sandbox: {
        childModule: path.resolve('bench/lib/narration-task-child.ts'),
        maxTasksPerChild: 100,
        maxMemoryMb: 1024,
        env,
      },
    }).start();
    return { q, w, jobs: new Jobs(q, reg), ms: { narration: [] as number[], render: [] as number[] } };
  };
  const sides = { inprocess: side(false), sandboxed: side(true) };
  const runRound = async (s: ReturnType<typeof side>, timed: boolean) => {
    const gen = await repo.createAudioGeneration({
      content_id: contentId,
      provider: 'espeak',
      voice: null,
      language: 'ko',
      text_hash: null,
    });
    const n = await timedJob(s.q, s.jobs, 'audio.generate', { generation_id: gen.id, max_attempts: 1 });
    const render = await repo.createRender({
      content_id: contentId,
      preset: 'tiktok',
      width: 1080,
      height: 1920,
      fps: 30,
    });
    const r = await timedJob(s.q, s.jobs, 'video.render', { render_id: render.id, quality: 'low' });
    if (timed) {
      s.ms.narration.push(n);
      s.ms.render.push(r);
    }
  };
  try {
    for (const s of Object.values(sides)) await runRound(s, false);
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 ? [sides.sandboxed, sides.inprocess] : [sides.inprocess, sides.sandboxed];
      for (const s of order) await runRound(s, true);
    }
    for (const task of ['narration', 'render'] as const) {
      const median = (ms: number[]) =>
        percentile(
          [...ms].sort((a, b) => a - b),
          50,
        );
      const inprocess = median(sides.inprocess.ms[task]);
      const sandboxed = median(sides.sandboxed.ms[task]);
      emit({
        bench: BENCH,
        case: `sandbox_overhead_${task}`,
        backend: 'sqlite',
        metric: 'sandbox_overhead_ms',
        value: sandboxed - inprocess,
        unit: 'ms',
        inprocess_ms: round(inprocess),
        sandboxed_ms: round(sandboxed),
        rounds,
      });
    }
  } finally {
    for (const s of Object.values(sides)) {
      await s.w.stop({ timeoutMs: 5000 });
      await s.q.close(5000);
    }
    await media.close();
    await h.close();
  }
}

/**
 * Pairs enqueue times with 'active' events. A job can start before its enqueue
 * call returns (in-process wake-up), so starts seen first wait for their send time.
 */
function startTracker(q: JobQueue, match: (j: ClaimedJob) => boolean, out: number[]) {
  const sentAt = new Map<string, number>();
  const early = new Map<string, number>();
  const onActive = (j: ClaimedJob) => {
    if (!match(j)) return;
    const s = sentAt.get(j.id);
    if (s === undefined) early.set(j.id, performance.now());
    else out.push(performance.now() - s);
  };
  q.on('active', onActive);
  return {
    sent(id: string, t: number) {
      const e = early.get(id);
      if (e !== undefined) out.push(e - t);
      else sentAt.set(id, t);
    },
    stop: () => q.off('active', onActive),
  };
}

/** Enqueues at `perSecond` for `n` jobs and returns enqueue→start latencies (ms). */
async function steadyLatencies(q: JobQueue, name: string, n: number, perSecond: number): Promise<number[]> {
  const jobs = new Jobs(q, registry);
  const lat: number[] = [];
  const tracker = startTracker(q, () => true, lat);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const t = performance.now();
    const { id } = await jobs.enqueue(name, {});
    tracker.sent(id, t);
  }
  const deadline = Date.now() + 30_000;
  while (lat.length < n && Date.now() < deadline) await sleep(20);
  tracker.stop();
  return lat.sort((a, b) => a - b);
}

async function steady(backend: Backend, q: JobQueue): Promise<void> {
  await withWorker(q, { queues: ['high_priority', 'default', 'low_priority'] }, async () => {
    await sleep(300);
    const lat = await steadyLatencies(q, 'diagnostics.noop', N.steady, 1000);
    const extra = { jobs: N.steady, rate_per_s: 1000 };
    emit({
      bench: BENCH,
      case: 'steady_1000_per_s',
      backend,
      metric: 'enqueue_to_start_p50_ms',
      value: percentile(lat, 50),
      unit: 'ms',
      ...extra,
    });
    emit({
      bench: BENCH,
      case: 'steady_1000_per_s',
      backend,
      metric: 'enqueue_to_start_p99_ms',
      value: percentile(lat, 99),
      unit: 'ms',
      ...extra,
    });
  });
}

async function priorityBehindBacklog(backend: Backend, q: JobQueue): Promise<void> {
  const jobs = new Jobs(q, registry);
  for (let i = 0; i < N.backlog; i += 5000)
    await jobs.enqueueBulk(
      Array.from({ length: Math.min(5000, N.backlog - i) }, () => ({
        name: 'diagnostics.noop',
        payload: {},
        opts: { queue: 'low_priority' as const },
      })),
    );
  await withWorker(q, { queues: ['high_priority', 'default', 'low_priority'] }, async () => {
    await sleep(200);
    // A probe counts only if low jobs still started after it: the backlog was really in front of it.
    const probes: Array<{ sent: number; latency?: number }> = [];
    let lastLowStart = 0;
    const byId = new Map<string, { sent: number; latency?: number }>();
    const early = new Map<string, number>();
    const onActive = (j: ClaimedJob) => {
      const now = performance.now();
      if (j.queue === 'low_priority') lastLowStart = now;
      if (j.queue !== 'high_priority') return;
      const p = byId.get(j.id);
      if (p) p.latency = now - p.sent;
      else early.set(j.id, now);
    };
    q.on('active', onActive);
    for (let i = 0; i < N.probes; i++) {
      const t = performance.now();
      const { id } = await jobs.enqueue('diagnostics.sleep_high', { ms: 0 });
      const p: { sent: number; latency?: number } = { sent: t };
      const e = early.get(id);
      if (e !== undefined) p.latency = e - t;
      byId.set(id, p);
      probes.push(p);
      await sleep(10);
    }
    const remaining = (await q.counts()).find((c) => c.queue === 'low_priority')?.counts.waiting ?? 0;
    const deadline = Date.now() + 10_000;
    while (probes.some((p) => p.latency === undefined) && Date.now() < deadline) await sleep(10);
    q.off('active', onActive);
    const out = probes
      .filter((p) => p.latency !== undefined && p.sent < lastLowStart)
      .map((p) => p.latency as number)
      .sort((a, b) => a - b);
    emit({
      bench: BENCH,
      case: 'high_behind_low_backlog',
      backend,
      metric: 'priority_start_p99_ms',
      value: percentile(out, 99),
      unit: 'ms',
      backlog: N.backlog,
      probes_behind_backlog: out.length,
      probes: probes.length,
      low_still_waiting: remaining,
    });
  });
}

/**
 * RSS growth over N.rss jobs, measured as memory the process keeps rather than where V8 and the allocator
 * happen to stand at one instant (one sample before and one after, 20,000 jobs into the run, swung
 * between -8 % and +22 % from run to run with the JS heap flat):
 * - a warm-up first, N.rss / 2 jobs and at least 60,000: RSS climbs for the first 50,000-60,000 jobs
 *   (JIT code, V8's heap spaces and the allocator's arenas settling), then stays in a band;
 * - RSS is sampled after every batch of N.rss / 40 jobs, each time after a full GC (bench:queue runs
 *   with --expose-gc);
 * - before = median of the samples over the warm-up's last quarter of N.rss jobs, after = median of the
 *   samples over the measured run's last quarter. The two windows' centres are exactly N.rss jobs
 *   apart, so memory kept per job (a leak) shows in full: L bytes a job grow RSS by N.rss × L.
 * The JS heap in use after GC is reported the same way: a leak of JS objects shows there too.
 */
async function rssGrowth(backend: Backend, q: JobQueue): Promise<void> {
  const jobs = new Jobs(q, registry);
  const gc = (globalThis as { gc?: () => void }).gc;
  const batch = N.rss / 40;
  const windowBatches = 10;
  const mb = (b: number) => round(b / 1048576);
  /** Median and range of a window's samples, MB. */
  const summary = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return {
      median: percentile(sorted, 50),
      range: [mb(sorted[0] ?? 0), mb(sorted[sorted.length - 1] ?? 0)],
    };
  };
  await withWorker(q, { queues: ['default'] }, async () => {
    let ran = 0;
    /** Runs `n` jobs in batches; returns RSS and JS heap in use after each of the last `windowBatches`. */
    const run = async (n: number) => {
      const rss: number[] = [];
      const heap: number[] = [];
      for (let i = 0; i < n; i += batch) {
        const done = completions(q, batch);
        await jobs.enqueueBulk(
          Array.from({ length: batch }, () => ({ name: 'diagnostics.noop', payload: {} })),
        );
        await done;
        ran += batch;
        // The embedded queue keeps finished jobs until pruned (the worker's cleanup task does it in production).
        if (backend === 'sqlite' && ran % 50_000 === 0) await q.prune({ keepLast: 1000, maxAgeMs: 0 });
        gc?.();
        const m = process.memoryUsage();
        rss.push(m.rss);
        heap.push(m.heapUsed);
      }
      return { rss: summary(rss.slice(-windowBatches)), heap: summary(heap.slice(-windowBatches)) };
    };
    const warmup = Math.max(N.rss / 2, 60_000);
    const before = await run(warmup);
    const after = await run(N.rss);
    emit({
      bench: BENCH,
      case: `${N.rss}_jobs`,
      backend,
      metric: 'rss_growth_pct',
      value: ((after.rss.median - before.rss.median) / before.rss.median) * 100,
      unit: '%',
      rss_before_mb: mb(before.rss.median),
      rss_after_mb: mb(after.rss.median),
      rss_before_range_mb: before.rss.range,
      rss_after_range_mb: after.rss.range,
      heap_used_before_mb: mb(before.heap.median),
      heap_used_after_mb: mb(after.heap.median),
      warmup_jobs: warmup,
      samples_per_window: windowBatches,
      gc: gc !== undefined,
    });
  });
}

async function rawEnqueueRates(
  q: Queue,
  opts: { removeOnComplete: number; removeOnFail: number },
): Promise<void> {
  let t = performance.now();
  for (let i = 0; i < N.single; i++) await q.add('noop', {}, opts);
  emit({
    bench: BENCH,
    case: 'single',
    backend: 'bullmq-raw',
    metric: 'enqueue_per_s',
    value: N.single / ((performance.now() - t) / 1000),
    unit: 'jobs/s',
    jobs: N.single,
  });
  t = performance.now();
  for (let i = 0; i < N.bulk; i += 1000)
    await q.addBulk(Array.from({ length: 1000 }, () => ({ name: 'noop', data: {}, opts })));
  emit({
    bench: BENCH,
    case: 'bulk',
    backend: 'bullmq-raw',
    metric: 'enqueue_per_s',
    value: N.bulk / ((performance.now() - t) / 1000),
    unit: 'jobs/s',
    jobs: N.bulk,
  });
  await q.obliterate({ force: true });
}

async function rawBullmq(redis: string): Promise<{ noop: number | undefined }> {
  const connection = { url: redis, maxRetriesPerRequest: null };
  const name = `raw${Math.random().toString(36).slice(2, 8)}`;
  const q = new Queue(name, { connection, prefix: 'ov:q:raw' });
  const opts = { removeOnComplete: 1000, removeOnFail: 1000 };
  if (want('enqueue')) await rawEnqueueRates(q, opts);

  let done = 0;
  let target = 0;
  let resolveDone: () => void = () => undefined;
  const started = new Map<string, number>();
  const w = new BullWorker(
    name,
    async (job) => {
      started.set(String(job.id), performance.now());
      return null;
    },
    { connection, prefix: 'ov:q:raw', concurrency: CONCURRENCY, removeOnComplete: { count: 1000 } },
  );
  w.on('completed', () => {
    if (++done === target) resolveDone();
  });
  await w.waitUntilReady();
  let cpu: ReturnType<ReturnType<typeof cpuPerJob>> | undefined;
  const runBatch = async (n: number) => {
    done = 0;
    target = n;
    const finished = new Promise<void>((r) => (resolveDone = r));
    // Same protocol as the adapter: enqueue while paused, time from resume.
    await q.pause();
    for (let i = 0; i < n; i += 1000)
      await q.addBulk(
        Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'noop', data: {}, opts })),
      );
    const t0 = performance.now();
    const meter = cpuPerJob();
    await q.resume();
    await finished;
    const rate = n / ((performance.now() - t0) / 1000);
    cpu = meter(n);
    return rate;
  };
  await runBatch(200);
  const noop = want('inprocess') ? await runBatch(N.noop) : undefined;
  if (noop !== undefined)
    emit({
      bench: BENCH,
      case: 'inprocess',
      backend: 'bullmq-raw',
      metric: 'noop_jobs_per_s',
      value: noop,
      ...cpu,
      unit: 'jobs/s',
      jobs: N.noop,
      concurrency: CONCURRENCY,
    });

  if (want('steady')) await rawSteady(q, opts, started);
  await w.close();
  await q.obliterate({ force: true });
  await q.close();
  return { noop };
}

/** Steady 1,000 jobs/s on the raw worker: enqueue → processor start. */
async function rawSteady(
  q: Queue,
  opts: { removeOnComplete: number; removeOnFail: number },
  started: Map<string, number>,
): Promise<void> {
  const lat: number[] = [];
  const sent = new Map<string, number>();
  started.clear();
  const s0 = performance.now();
  for (let i = 0; i < N.steady; i++) {
    const wait = s0 + i - performance.now();
    if (wait > 1) await sleep(wait);
    const t1 = performance.now();
    const job = await q.add('noop', {}, opts);
    sent.set(String(job.id), t1);
  }
  const deadline = Date.now() + 30_000;
  while (started.size < N.steady && Date.now() < deadline) await sleep(20);
  for (const [id, s] of sent) {
    const st = started.get(id);
    if (st !== undefined) lat.push(st - s);
  }
  lat.sort((a, b) => a - b);
  emit({
    bench: BENCH,
    case: 'steady_1000_per_s',
    backend: 'bullmq-raw',
    metric: 'enqueue_to_start_p50_ms',
    value: percentile(lat, 50),
    unit: 'ms',
    jobs: N.steady,
  });
  emit({
    bench: BENCH,
    case: 'steady_1000_per_s',
    backend: 'bullmq-raw',
    metric: 'enqueue_to_start_p99_ms',
    value: percentile(lat, 99),
    unit: 'ms',
    jobs: N.steady,
  });
}

async function runBackend(backend: Backend, redis: string | undefined, rawNoop?: number): Promise<void> {
  const fresh = async <T>(fn: (q: JobQueue) => Promise<T>) => {
    const q = makeQueue(backend, redis);
    try {
      return await fn(q);
    } finally {
      await q.close(5000);
    }
  };
  if (want('enqueue')) await fresh((q) => enqueueRates(backend, q));
  const inprocess = want('inprocess')
    ? await fresh((q) => noopThroughput(backend, q, 'inprocess', rawNoop))
    : undefined;
  if (want('sandboxed')) await fresh((q) => noopThroughput(backend, q, 'sandboxed'));
  if (want('sandboxed_1000')) await fresh((q) => noopThroughput(backend, q, 'sandboxed_1000'));
  if (want('sandbox_overhead') && backend === 'sqlite') await sandboxOverhead();
  if (want('steady')) await fresh((q) => steady(backend, q));
  if (want('priority')) await fresh((q) => priorityBehindBacklog(backend, q));
  if (want('rss')) await fresh((q) => rssGrowth(backend, q));
  if (DEFAULT_CASES.some(want))
    await runDefaultCases({
      bench: BENCH,
      backend,
      ...(redis ? { redisUrl: redis } : {}),
      dir,
      cli,
      sizes: DEFAULTS,
      want,
      ...(inprocess !== undefined ? { inprocess } : {}),
      ...(rawNoop !== undefined ? { raw: rawNoop } : {}),
    });
}

async function main(): Promise<void> {
  const only = process.argv.find((a) => a.startsWith('--backend='))?.slice('--backend='.length);
  let redis: RunningService | undefined;
  process.stderr.write(`bench:queue: load average at the start: ${loadAverage().join(' ')}\n`);
  try {
    if (!only || only === 'sqlite') await runBackend('sqlite', undefined);
    if (!only || only.startsWith('bullmq')) {
      redis = await startRedis();
      redisPid = redis.pid;
      const raw =
        want('enqueue') || want('inprocess') || want('steady') ? await rawBullmq(redis.url) : undefined;
      await runBackend('bullmq', redis.url, raw?.noop);
    }
  } finally {
    await redis?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    printTable();
  }
}

await main();
process.exit(0);
