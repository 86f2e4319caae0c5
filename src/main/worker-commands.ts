/**
 * `omnivibe worker [flags]` (foreground), `worker start [--detach]`,
 * `worker stop` and `worker status`. The configuration is read when a command
 * runs, never while the commands are registered: `--help` works whatever the
 * environment says.
 */
import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import { detachedStatus, detachPaths, startDetached, stopDetached } from './detached-worker.js';
import { createLogger, createSystem } from './system.js';
import { runWorker } from './worker.js';
import {
  addWorkerFlags,
  intArg,
  resolveWorkerFlags,
  type WorkerFlags,
  workerFlagArgs,
} from './worker-flags.js';

export function registerWorkerCommands(program: Command, loadConfig: () => Config): void {
  const foreground = async (given: Partial<WorkerFlags>) => {
    const cfg = loadConfig();
    const system = await createSystem(cfg, createLogger(cfg));
    try {
      await runWorker(system, system.jobs, resolveWorkerFlags(given, cfg));
    } finally {
      await system.close();
    }
    process.exit(0);
  };
  const worker = addWorkerFlags(
    program
      .command('worker')
      .description('Run a worker in the foreground (SIGTERM: graceful; a second signal: at once)'),
  ).action((given: Partial<WorkerFlags>) => foreground(given));
  worker
    .command('start')
    .description('Start a worker (with --detach: in the background); takes the worker flags above')
    .option('--detach', 'run in the background: pidfile ./run/worker.pid, log ./logs/worker.log')
    .action(async (o: { detach?: boolean }) => {
      // The worker flags belong to `worker`, which parses them wherever they appear (`worker start --concurrency 2`).
      const given = worker.opts<Partial<WorkerFlags>>();
      if (!o.detach) return foreground(given);
      const r = startDetached(workerFlagArgs(resolveWorkerFlags(given, loadConfig())));
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
    .option('--wait <ms>', 'how long to wait (default: WORKER_SHUTDOWN_TIMEOUT_MS + 10 s)', intArg(0))
    .action(async (o: { wait?: number }) => {
      const wait = o.wait ?? loadConfig().jobs.worker.shutdownTimeoutMs + 10_000;
      const before = detachedStatus();
      const r = await stopDetached(wait);
      const msg = {
        'not-running': 'no worker is running',
        stopped: `worker ${before.pid} stopped`,
        timeout: `worker ${before.pid} is still running after ${wait} ms (send SIGTERM again to stop it at once)`,
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
      const cfg = { ...loadConfig(), logLevel: 'warn' as const };
      const system = await createSystem(cfg, createLogger(cfg));
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
