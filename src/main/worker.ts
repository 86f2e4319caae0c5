/**
 * Composition root of worker processes: `omnivibe worker` (foreground),
 * `omnivibe worker start --detach | stop | status`, and the worker that
 * `omnivibe start` runs beside the API in embedded mode.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import type { Config } from '../config/config.js';
import type { Jobs } from '../jobs/jobs.js';
import { TaskRunRecorder } from '../jobs/task-runs.js';
import { type QueueName, QUEUE_NAMES, isQueueName } from '../jobs/types.js';
import { Worker } from '../jobs/worker/worker.js';
import type { TaskDeps } from '../tasks/deps.js';
import { meteredTaskRuns, workerSlotsSource } from '../telemetry/job-metrics.js';
import { type MetricsServer, startMetricsServer } from '../telemetry/metrics-server.js';
import { createLogger, createSystem, type System } from './system.js';

export interface WorkerProcessOptions {
  queues: QueueName[];
  concurrency: number;
  prefetch: number;
  maxTasksPerChild: number;
  maxMemoryPerChildMb: number;
  shutdownTimeoutMs: number;
}

/** Parses `--queues a,b,c`. */
export function parseQueues(v: string): QueueName[] {
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !isQueueName(n));
  if (bad.length || names.length === 0)
    throw new Error(`--queues expects a comma-separated list of ${QUEUE_NAMES.join(', ')}; got ${v}`);
  return names as QueueName[];
}

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
export function startWorker(system: System, jobs: Jobs, opts: WorkerProcessOptions): Worker {
  const cfg = system.config.jobs;
  const metrics = system.telemetry?.metrics;
  const taskRuns = new TaskRunRecorder(system.database.db, system.logger, system.shortcuts);
  const worker = new Worker({
    queue: jobs.leasing,
    registry: jobs.registry,
    deps: taskDepsFrom(system, jobs),
    logger: system.logger,
    taskRuns: metrics ? meteredTaskRuns(taskRuns, metrics) : taskRuns,
    shortcuts: system.shortcuts,
    queues: opts.queues,
    concurrency: opts.concurrency,
    prefetch: opts.prefetch,
    leaseMs: cfg.leaseMs,
    sandbox: {
      childModule: taskChildModule(),
      maxTasksPerChild: opts.maxTasksPerChild,
      maxMemoryMb: opts.maxMemoryPerChildMb,
    },
    cleanup: { producer: jobs.producer, intervalMs: cfg.cleanupIntervalS * 1000 },
  });
  if (metrics) metrics.addScrapeSource(workerSlotsSource(metrics, worker));
  system.telemetry?.publisher.begin('worker');
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
export async function runWorker(
  system: System,
  jobs: Jobs,
  opts: WorkerProcessOptions,
  metricsPort = system.config.telemetry.workerMetricsPort,
): Promise<void> {
  const metricsServer = await workerMetricsServer(system, metricsPort);
  let signals = 0;
  // The handlers go in before the worker starts: its first claim can lease a job within start(), and a
  // signal that arrived before them would kill the process with the job still active. (They run on a
  // later turn, when `worker` is set.)
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        system.logger.info(
          { signal, timeoutMs: opts.shutdownTimeoutMs },
          'worker: graceful shutdown (send again to stop at once)',
        );
        void worker.stop({ timeoutMs: opts.shutdownTimeoutMs }).then(resolve);
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

// ----------------------------------------------------------------- detached workers

export interface DetachPaths {
  pidFile: string;
  logFile: string;
}

export function detachPaths(cwd = process.cwd()): DetachPaths {
  return { pidFile: path.join(cwd, 'run', 'worker.pid'), logFile: path.join(cwd, 'logs', 'worker.log') };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export function readPid(p: DetachPaths): number | null {
  if (!fs.existsSync(p.pidFile)) return null;
  const pid = Number(fs.readFileSync(p.pidFile, 'utf8').trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** Starts `omnivibe worker <args>` in the background; writes the pidfile; output goes to the log file. */
export function startDetached(
  workerArgs: string[],
  p: DetachPaths = detachPaths(),
): { pid: number; alreadyRunning: boolean } {
  const existing = readPid(p);
  if (existing && alive(existing)) return { pid: existing, alreadyRunning: true };
  fs.mkdirSync(path.dirname(p.pidFile), { recursive: true });
  fs.mkdirSync(path.dirname(p.logFile), { recursive: true });
  const out = fs.openSync(p.logFile, 'a');
  const script = process.argv[1] as string;
  const child = spawn(process.execPath, [...process.execArgv, script, 'worker', ...workerArgs], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  child.unref();
  fs.closeSync(out);
  fs.writeFileSync(p.pidFile, `${child.pid}\n`);
  return { pid: child.pid as number, alreadyRunning: false };
}

/** SIGTERM to the detached worker, then waits up to `waitMs` for it to exit. */
export async function stopDetached(
  waitMs: number,
  p: DetachPaths = detachPaths(),
): Promise<'not-running' | 'stopped' | 'timeout'> {
  const pid = readPid(p);
  if (!pid || !alive(pid)) {
    fs.rmSync(p.pidFile, { force: true });
    return 'not-running';
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) {
      fs.rmSync(p.pidFile, { force: true });
      return 'stopped';
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'timeout';
}

export function detachedStatus(p: DetachPaths = detachPaths()): { pid: number | null; running: boolean } {
  const pid = readPid(p);
  return { pid, running: pid !== null && alive(pid) };
}

// ----------------------------------------------------------------- CLI

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};

/** Worker flags, defaulting to the WORKER_* settings. */
function addWorkerOptions(cmd: Command, cfg: Config): Command {
  const w = cfg.jobs.worker;
  return cmd
    .option(
      '--queues <list>',
      `queues to serve, highest priority first (${QUEUE_NAMES.join(',')})`,
      parseQueues,
      [...QUEUE_NAMES],
    )
    .option(
      '--concurrency <n>',
      'task slots; one is kept for high_priority when there are 2+',
      int(1),
      w.concurrency,
    )
    .option(
      '--prefetch <n>',
      'extra jobs claimed ahead (never past a higher-priority job)',
      int(0),
      w.prefetch,
    )
    .option(
      '--max-tasks-per-child <n>',
      'recycle a sandbox child after this many tasks',
      int(1),
      w.maxTasksPerChild,
    )
    .option(
      '--max-memory-per-child <mb>',
      'recycle a sandbox child past this RSS, MB',
      int(32),
      w.maxMemoryPerChildMb,
    )
    .option(
      '--shutdown-timeout <ms>',
      'on SIGTERM, time for active tasks to finish, ms',
      int(0),
      w.shutdownTimeoutMs,
    )
    .option(
      '--metrics-port <port>',
      'serve /metrics on METRICS_HOST at this port (0: none)',
      int(0),
      cfg.telemetry.workerMetricsPort,
    );
}

interface WorkerFlags {
  queues: QueueName[];
  concurrency: number;
  prefetch: number;
  maxTasksPerChild: number;
  maxMemoryPerChild: number;
  shutdownTimeout: number;
  metricsPort: number;
}

const toOptions = (f: WorkerFlags): WorkerProcessOptions => ({
  queues: f.queues,
  concurrency: f.concurrency,
  prefetch: f.prefetch,
  maxTasksPerChild: f.maxTasksPerChild,
  maxMemoryPerChildMb: f.maxMemoryPerChild,
  shutdownTimeoutMs: f.shutdownTimeout,
});

const toArgs = (f: WorkerFlags): string[] => [
  '--queues',
  f.queues.join(','),
  '--concurrency',
  String(f.concurrency),
  '--prefetch',
  String(f.prefetch),
  '--max-tasks-per-child',
  String(f.maxTasksPerChild),
  '--max-memory-per-child',
  String(f.maxMemoryPerChild),
  '--shutdown-timeout',
  String(f.shutdownTimeout),
  '--metrics-port',
  String(f.metricsPort),
];

/** The worker defaults from config (used by `omnivibe start`). */
export function workerDefaults(cfg: Config): WorkerProcessOptions {
  const w = cfg.jobs.worker;
  return {
    queues: [...QUEUE_NAMES],
    concurrency: w.concurrency,
    prefetch: w.prefetch,
    maxTasksPerChild: w.maxTasksPerChild,
    maxMemoryPerChildMb: w.maxMemoryPerChildMb,
    shutdownTimeoutMs: w.shutdownTimeoutMs,
  };
}

/** `omnivibe worker [flags]`, `worker start --detach`, `worker stop`, `worker status`. */
export function registerWorkerCommands(program: Command, loadCfg: () => Config): void {
  const cfg = loadCfg();
  const foreground = async (f: WorkerFlags) => {
    const system = await createSystem(cfg, createLogger(cfg));
    try {
      await runWorker(system, system.jobs, toOptions(f), f.metricsPort);
    } finally {
      await system.close();
    }
    process.exit(0);
  };
  const worker = addWorkerOptions(
    program
      .command('worker')
      .description('Run a worker in the foreground (SIGTERM: graceful; a second signal: at once)'),
    cfg,
  ).action((f: WorkerFlags) => foreground(f));
  worker
    .command('start')
    .description('Start a worker (with --detach: in the background); takes the worker flags above')
    .option('--detach', 'run in the background: pidfile ./run/worker.pid, log ./logs/worker.log')
    .action(async (o: { detach?: boolean }) => {
      // The worker flags belong to `worker`, which parses them wherever they appear (`worker start --concurrency 2`).
      const f = worker.opts<WorkerFlags>();
      if (!o.detach) return foreground(f);
      const r = startDetached(toArgs(f));
      const p = detachPaths();
      process.stdout.write(
        r.alreadyRunning
          ? `worker already running (pid ${r.pid})\n`
          : `worker started (pid ${r.pid}); pidfile ${p.pidFile}, log ${p.logFile}\n`,
      );
    });
  worker
    .command('stop')
    .description('SIGTERM the detached worker and wait for it to finish its tasks')
    .option('--wait <ms>', 'how long to wait', int(0), cfg.jobs.worker.shutdownTimeoutMs + 10_000)
    .action(async (o: { wait: number }) => {
      const before = detachedStatus();
      const r = await stopDetached(o.wait);
      const msg = {
        'not-running': 'no worker is running',
        stopped: `worker ${before.pid} stopped`,
        timeout: `worker ${before.pid} is still running after ${o.wait} ms (send SIGTERM again to stop it at once)`,
      }[r];
      process.stdout.write(`${msg}\n`);
      if (r === 'timeout') process.exitCode = 1;
    });
  worker
    .command('status')
    .description('The detached worker, and every worker seen by the queue')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const local = detachedStatus();
      const system = await createSystem(
        { ...cfg, logLevel: 'warn' },
        createLogger({ ...cfg, logLevel: 'warn' }),
      );
      try {
        const workers = await system.jobs.admin.listWorkers();
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ detached: local, workers }, null, 2)}\n`);
          return;
        }
        process.stdout.write(
          local.running ? `detached worker: running (pid ${local.pid})\n` : 'detached worker: not running\n',
        );
        const now = Date.now();
        for (const w of workers) {
          process.stdout.write(
            `${w.id}  pid ${w.pid}  queues ${w.queues.join(',')}  active ${w.active}/${w.concurrency}  processed ${w.processed}  failed ${w.failed}  last seen ${Math.round((now - w.lastSeenAt) / 1000)} s ago\n`,
          );
        }
        if (workers.length === 0) process.stdout.write('no worker has published a heartbeat\n');
      } finally {
        await system.close();
      }
    });
}
