import path from 'node:path';
import { z } from 'zod';
import { intVar, parseEnv } from './env.js';

/** The job system's fast paths through a dependency's internals (src/jobs/shortcuts.ts). */
export const SHORTCUT_NAMES = [
  /** BullMQ completions from a template of its moveToFinished arguments (bullmq-internals.ts). */
  'bullmq_complete',
  /** Redriving a dead BullMQ job in place by clearing its internal hash fields (bullmq-internals.ts). */
  'bullmq_redrive',
  /** Waking on BullMQ's marker keys with a blocking pop instead of polling (bullmq-internals.ts). */
  'bullmq_markers',
  /** Stalled BullMQ jobs moved by BullMQ's script in one MULTI with their lost attempts' rows (bullmq-internals.ts). */
  'bullmq_stalled',
  /** The worker's two log lines of an attempt written in pino's format to its stream (pino-internals.ts). */
  'log_lines',
  /** task_runs full batches inserted with SQL compiled once (kysely-internals.ts). */
  'task_runs_sql',
] as const;
export type ShortcutName = (typeof SHORTCUT_NAMES)[number];

/** Job system settings (env variables in `.env.example`, section `# --- jobs ---`). */
export interface JobsConfig {
  /** Embedded engine's own SQLite file (JOBS_DB_FILE, default DATA_DIR/jobs.db; ':memory:' with an in-memory main database). */
  readonly sqliteFile: string;
  /** BullMQ key prefix (JOBS_REDIS_PREFIX, default `ov:q`). */
  readonly redisPrefix: string;
  /** A leased job whose worker stops renewing it returns to the queue after this, ms (JOBS_LEASE_MS). */
  readonly leaseMs: number;
  /** A job that stalls more often than this becomes dead (JOBS_MAX_STALLS). */
  readonly maxStalls: number;
  /** How often idle workers look for work enqueued by other processes, ms (JOBS_POLL_MS). */
  readonly pollMs: number;
  /** Finished jobs kept per queue (JOBS_KEEP_LAST). */
  readonly keepLast: number;
  /** Finished jobs older than this are pruned, hours (JOBS_KEEP_HOURS). */
  readonly keepHours: number;
  /** task_runs rows older than this are pruned, days (JOBS_TASK_RUNS_KEEP_DAYS). */
  readonly taskRunsKeepDays: number;
  /** How often workers schedule maintenance.cleanup, seconds (JOBS_CLEANUP_INTERVAL_S; 0 = never). */
  readonly cleanupIntervalS: number;
  /** Fast paths through dependencies' internals, each on unless its JOBS_SHORTCUT_<NAME>=off (see shortcuts.ts). */
  readonly shortcuts: Readonly<Record<ShortcutName, boolean>>;
  /** Worker defaults, overridden by `omnivibe worker` flags. */
  readonly worker: {
    readonly concurrency: number;
    readonly prefetch: number;
    readonly maxTasksPerChild: number;
    readonly maxMemoryPerChildMb: number;
    readonly shutdownTimeoutMs: number;
  };
}

/** The env variable that turns a shortcut off: JOBS_SHORTCUT_BULLMQ_COMPLETE, JOBS_SHORTCUT_LOG_LINES... */
export const shortcutVar = (name: ShortcutName) => `JOBS_SHORTCUT_${name.toUpperCase()}`;

const onOff = z.enum(['on', 'off'], 'on or off').optional().default('on');

const schema = z.object({
  ...Object.fromEntries(SHORTCUT_NAMES.map((n) => [shortcutVar(n), onOff])),
  JOBS_DB_FILE: z.string().trim().min(1, 'a file path').optional(),
  JOBS_REDIS_PREFIX: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'letters, digits, _ : . - (at most 64)')
    .optional()
    .default('ov:q'),
  JOBS_LEASE_MS: intVar(500, 3_600_000, 30_000),
  JOBS_MAX_STALLS: intVar(0, 100, 3),
  JOBS_POLL_MS: intVar(5, 60_000, 50),
  JOBS_KEEP_LAST: intVar(0, 10_000_000, 1000),
  JOBS_KEEP_HOURS: intVar(0, 24 * 365, 24),
  JOBS_TASK_RUNS_KEEP_DAYS: intVar(0, 3650, 30),
  JOBS_CLEANUP_INTERVAL_S: intVar(0, 86_400, 300),
  WORKER_CONCURRENCY: intVar(1, 256, 4),
  WORKER_PREFETCH: intVar(0, 1024, 16),
  WORKER_MAX_TASKS_PER_CHILD: intVar(1, 1_000_000, 100),
  WORKER_MAX_MEMORY_PER_CHILD_MB: intVar(32, 65_536, 512),
  WORKER_SHUTDOWN_TIMEOUT_MS: intVar(0, 3_600_000, 30_000),
});

export function loadJobsConfig(env: NodeJS.ProcessEnv, dataDir: string): JobsConfig {
  const e = parseEnv(schema, env);
  return Object.freeze({
    // An in-memory main database (tests, demos) gets an in-memory queue too, unless JOBS_DB_FILE says otherwise.
    sqliteFile: e.JOBS_DB_FILE
      ? e.JOBS_DB_FILE === ':memory:'
        ? ':memory:'
        : path.resolve(e.JOBS_DB_FILE)
      : env.DATABASE_URL?.trim() === 'sqlite::memory:'
        ? ':memory:'
        : path.join(dataDir, 'jobs.db'),
    redisPrefix: e.JOBS_REDIS_PREFIX,
    leaseMs: e.JOBS_LEASE_MS,
    maxStalls: e.JOBS_MAX_STALLS,
    pollMs: e.JOBS_POLL_MS,
    keepLast: e.JOBS_KEEP_LAST,
    keepHours: e.JOBS_KEEP_HOURS,
    taskRunsKeepDays: e.JOBS_TASK_RUNS_KEEP_DAYS,
    cleanupIntervalS: e.JOBS_CLEANUP_INTERVAL_S,
    shortcuts: Object.freeze(
      Object.fromEntries(
        SHORTCUT_NAMES.map((n) => [n, (e as Record<string, unknown>)[shortcutVar(n)] !== 'off']),
      ) as Record<ShortcutName, boolean>,
    ),
    worker: Object.freeze({
      concurrency: e.WORKER_CONCURRENCY,
      prefetch: e.WORKER_PREFETCH,
      maxTasksPerChild: e.WORKER_MAX_TASKS_PER_CHILD,
      maxMemoryPerChildMb: e.WORKER_MAX_MEMORY_PER_CHILD_MB,
      shutdownTimeoutMs: e.WORKER_SHUTDOWN_TIMEOUT_MS,
    }),
  });
}
