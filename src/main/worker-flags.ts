/**
 * The worker's flags, each declared once: its commander option, its default
 * (a setting of the configuration, read when the command runs), and its
 * argument again for a detached start. `omnivibe worker`, `worker start` and
 * `omnivibe start` all take their values from here.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Config } from '../config/config.js';
import { isQueueName, type QueueName, QUEUE_NAMES } from '../jobs/types.js';

/** The values of the worker flags (each key is its flag's camel-cased name). */
export interface WorkerFlags {
  queues: QueueName[];
  concurrency: number;
  prefetch: number;
  /** Tasks a sandbox child runs before it is replaced. */
  maxTasksPerChild: number;
  /** RSS past which a sandbox child is replaced, MB. */
  maxMemoryPerChild: number;
  /** On SIGTERM, time for active tasks to finish, ms. */
  shutdownTimeout: number;
  /** The worker's own /metrics listener on METRICS_HOST (0: none). */
  metricsPort: number;
}

interface FlagSpec<V> {
  /** The flag and its argument, as commander takes them. */
  flag: string;
  description: string;
  parse(v: string): V;
  /** Its default: a configuration setting (named in the description). */
  fromConfig(cfg: Config): V;
  /** Back to the argument (default String). */
  format?(v: V): string;
}

/** Parses `--queues a,b,c`. */
export function parseQueues(v: string): QueueName[] {
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !isQueueName(n));
  if (bad.length || names.length === 0)
    throw new InvalidArgumentError(
      `--queues expects a comma-separated list of ${QUEUE_NAMES.join(', ')}; got ${v}`,
    );
  return names as QueueName[];
}

export const intArg = (min: number) => (v: string) => {
  if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};

export const WORKER_FLAGS: { readonly [K in keyof WorkerFlags]: FlagSpec<WorkerFlags[K]> } = {
  queues: {
    flag: '--queues <list>',
    description: `queues to serve, highest priority first (default: ${QUEUE_NAMES.join(',')})`,
    parse: parseQueues,
    fromConfig: () => [...QUEUE_NAMES],
    format: (v) => v.join(','),
  },
  concurrency: {
    flag: '--concurrency <n>',
    description: 'task slots; one is kept for high_priority when there are 2+ (default: WORKER_CONCURRENCY)',
    parse: intArg(1),
    fromConfig: (c) => c.jobs.worker.concurrency,
  },
  prefetch: {
    flag: '--prefetch <n>',
    description: 'extra jobs claimed ahead, never past a higher-priority job (default: WORKER_PREFETCH)',
    parse: intArg(0),
    fromConfig: (c) => c.jobs.worker.prefetch,
  },
  maxTasksPerChild: {
    flag: '--max-tasks-per-child <n>',
    description: 'recycle a sandbox child after this many tasks (default: WORKER_MAX_TASKS_PER_CHILD)',
    parse: intArg(1),
    fromConfig: (c) => c.jobs.worker.maxTasksPerChild,
  },
  maxMemoryPerChild: {
    flag: '--max-memory-per-child <mb>',
    description: 'recycle a sandbox child past this RSS, MB (default: WORKER_MAX_MEMORY_PER_CHILD_MB)',
    parse: intArg(32),
    fromConfig: (c) => c.jobs.worker.maxMemoryPerChildMb,
  },
  shutdownTimeout: {
    flag: '--shutdown-timeout <ms>',
    description: 'on SIGTERM, time for active tasks to finish, ms (default: WORKER_SHUTDOWN_TIMEOUT_MS)',
    parse: intArg(0),
    fromConfig: (c) => c.jobs.worker.shutdownTimeoutMs,
  },
  metricsPort: {
    flag: '--metrics-port <port>',
    description: 'serve /metrics on METRICS_HOST at this port, 0: none (default: WORKER_METRICS_PORT)',
    parse: intArg(0),
    fromConfig: (c) => c.telemetry.workerMetricsPort,
  },
};

type AnySpec = FlagSpec<WorkerFlags[keyof WorkerFlags]>;
const specs = () => Object.entries(WORKER_FLAGS) as [keyof WorkerFlags, AnySpec][];

/** Adds the worker flags to a command, without defaults: the configuration is read when it runs. */
export function addWorkerFlags(cmd: Command): Command {
  for (const [, spec] of specs())
    cmd.addOption(new Option(spec.flag, spec.description).argParser(spec.parse));
  return cmd;
}

/** The flags given, the rest from the configuration. */
export function resolveWorkerFlags(given: Partial<WorkerFlags>, cfg: Config): WorkerFlags {
  return Object.fromEntries(
    specs().map(([key, spec]) => [key, given[key] ?? spec.fromConfig(cfg)]),
  ) as unknown as WorkerFlags;
}

/** The worker defaults from the configuration (`omnivibe start`). */
export const workerDefaults = (cfg: Config): WorkerFlags => resolveWorkerFlags({}, cfg);

/** The flags as arguments of `omnivibe worker` (a detached start passes them on). */
export function workerFlagArgs(flags: WorkerFlags): string[] {
  return specs().flatMap(([key, spec]) => [
    spec.flag.split(' ')[0] as string,
    spec.format ? spec.format(flags[key]) : String(flags[key]),
  ]);
}
