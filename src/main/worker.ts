/**
 * Composition of a worker process: the worker that `omnivibe worker` runs in
 * the foreground and `omnivibe start` runs beside the API (the commands are in
 * worker-commands.ts, their flags in worker-flags.ts).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Jobs } from '../jobs/jobs.js';
import { SANDBOX_TRACING_ENV } from '../jobs/sandbox/protocol.js';
import { TaskRunRecorder } from '../jobs/task-runs.js';
import { Worker } from '../jobs/worker/worker.js';
import type { TaskDeps } from '../tasks/deps.js';
import { attemptMetrics, sandboxMetrics, workerSlotsSource } from '../telemetry/job-metrics.js';
import { traceLogFields } from '../telemetry/tracing.js';
import { type MetricsServer, startMetricsServer } from '../telemetry/metrics-server.js';
import type { System } from './system.js';
import type { WorkerFlags } from './worker-flags.js';

/** The sandbox child's entry: the compiled .js next to this file, or the .ts source under tsx. */
export function taskChildModule(): string {
  const js = fileURLToPath(new URL('./task-child.js', import.meta.url));
  return fs.existsSync(js) ? js : fileURLToPath(new URL('./task-child.ts', import.meta.url));
}

export function taskDepsFrom(system: System, jobs: Jobs): TaskDeps {
  return {
    config: system.config,
    logger: system.logger,
    dialect: system.database.dialect,
    db: () => system.database.db,
    queue: () => jobs.admin,
    media: () => system.media,
    changes: () => system.changes,
  };
}

/** Builds and starts a worker on the System's queue. */
export function startWorker(system: System, jobs: Jobs, opts: WorkerFlags): Worker {
  const cfg = system.config.jobs;
  const metrics = system.telemetry?.metrics;
  const taskRuns = new TaskRunRecorder(system.database.db, jobs.leasing, system.logger, system.shortcuts);
  const worker = new Worker({
    queue: jobs.leasing,
    registry: jobs.registry,
    deps: taskDepsFrom(system, jobs),
    logger: system.logger,
    taskRuns,
    ...(metrics ? { onAttempt: attemptMetrics(metrics) } : {}),
    shortcuts: system.shortcuts,
    spans: system.tracing?.jobs(),
    ...(system.tracing ? { logMixin: traceLogFields } : {}),
    queues: opts.queues,
    concurrency: opts.concurrency,
    prefetch: opts.prefetch,
    leaseMs: cfg.leaseMs,
    sandbox: {
      childModule: taskChildModule(),
      maxTasksPerChild: opts.maxTasksPerChild,
      maxMemoryMb: opts.maxMemoryPerChild,
      observer: metrics ? sandboxMetrics(metrics, system.logger) : undefined,
      ...(system.tracing ? { env: { [SANDBOX_TRACING_ENV]: '1' } } : {}),
    },
    cleanup: { producer: jobs.producer, intervalMs: cfg.cleanupIntervalS * 1000 },
  });
  if (metrics) metrics.addScrapeSource(workerSlotsSource(metrics, worker));
  system.telemetry?.publisher.begin('worker');
  system.telemetry?.alerts.evaluator?.start();
  return worker.start();
}

/**
 * The worker's own /metrics listener on METRICS_HOST:`port` (0: none). A port already taken is
 * logged as an error and the worker runs on without it: metrics must not stop the work.
 */
async function workerMetricsServer(system: System, port: number): Promise<MetricsServer | undefined> {
  const metrics = system.telemetry?.metrics;
  if (!metrics || port === 0) return undefined;
  const host = system.config.telemetry.metricsHost;
  try {
    const server = await startMetricsServer(metrics, host, port, system.logger);
    system.logger.info({ url: `http://${host}:${server.port}/metrics` }, 'worker metrics listener');
    return server;
  } catch (err) {
    system.logger.error(
      { err, host, port },
      'worker metrics listener could not start (choose another --metrics-port or WORKER_METRICS_PORT); running without it',
    );
    return undefined;
  }
}

/**
 * Runs a worker until SIGTERM/SIGINT: the first signal stops claiming and lets
 * active tasks finish within the shutdown timeout (the rest go back to the
 * queue); a second signal stops at once.
 */
export async function runWorker(system: System, jobs: Jobs, opts: WorkerFlags): Promise<void> {
  const metricsServer = await workerMetricsServer(system, opts.metricsPort);
  let signals = 0;
  // The handlers go in before the worker starts: its first claim can lease a job within start(), and a
  // signal that arrived before them would kill the process with the job still active. (They run on a
  // later turn, when `worker` is set.)
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        system.logger.info(
          { signal, timeoutMs: opts.shutdownTimeout },
          'worker: graceful shutdown (send again to stop at once)',
        );
        void worker.stop({ timeoutMs: opts.shutdownTimeout }).then(resolve);
      } else {
        system.logger.warn({ signal }, 'worker: second signal, stopping now');
        void worker.stop({ now: true }).then(resolve);
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  const worker = startWorker(system, jobs, opts);
  await stopped;
  await metricsServer?.close();
}
