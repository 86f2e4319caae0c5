/**
 * What a sandbox child builds for its handlers: its logger and the task
 * dependencies, each made on first use. It imports nothing heavy up front: the
 * configuration, database, queue and cache only for a handler that uses them,
 * and each of those only when first called. A child that runs only CPU work
 * never opens a database or a Redis connection. Its connections end with the
 * process: the child exits when the worker closes its socket.
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { DatabaseHandle } from '../db/database.js';
import type { ChangeFeed } from '../domain/changes.js';
import type { JobAdmin } from '../jobs/types.js';
import type { MediaServices } from '../media/media-services.js';
import type { TaskDeps } from '../tasks/deps.js';
import { reportingObserver } from '../telemetry/media-reports.js';
import type { Tracing } from '../telemetry/tracing.js';
import type { TracingRuntime } from './tracing.js';

let rootLogger: Logger | undefined;
/** With tracing on: the active span's ids on each log line (set by childTracing before any line). */
let traceFields: (() => object) | undefined;

/** The child's logger, made on first use (the parent validated LOG_LEVEL; children inherit its environment). */
export function childLogger(): Logger {
  if (!rootLogger) {
    // pino is CommonJS: required synchronously, so ctx.logger can stay a plain getter.
    const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
    rootLogger = pino({
      level: process.env.LOG_LEVEL ?? 'info',
      base: { pid: process.pid, sandbox: true },
      ...(traceFields ? { mixin: traceFields } : {}),
    });
  }
  return rootLogger;
}

/** Starts the child's tracing from the environment it inherited (the worker traces, so it is configured). */
export async function childTracing(): Promise<TracingRuntime | undefined> {
  const [{ loadTracingConfig }, { startTracing }, { traceLogFields }] = await Promise.all([
    import('../config/tracing.js'),
    import('./tracing.js'),
    import('../telemetry/tracing.js'),
  ]);
  traceFields = traceLogFields;
  return startTracing(loadTracingConfig(process.env), childLogger());
}

/**
 * Builds the task dependencies from the environment the child inherited. What the media pipeline
 * measures (vendor calls, narrations, renders) goes to the worker through `report`; with `tracing`,
 * their spans go to the collector too.
 */
export async function childTaskDeps(report: (report: unknown) => void, tracing?: Tracing): Promise<TaskDeps> {
  const [
    { loadConfig },
    { openDatabase },
    { createJobQueue },
    { Shortcuts },
    { createCacheService, sharedSqliteOf },
    { changeFeedFor },
    { createMediaServices },
  ] = await Promise.all([
    import('../config/config.js'),
    import('../db/database.js'),
    import('../jobs/create-queue.js'),
    import('../jobs/shortcuts.js'),
    import('../cache/create-cache.js'),
    import('../domain-cache/generations.js'),
    import('../media/media-services.js'),
  ]);
  const config = loadConfig();
  let database: DatabaseHandle | undefined;
  let queue: JobAdmin | undefined;
  let changes: ChangeFeed | undefined;
  let media: MediaServices | undefined;
  const db = () =>
    (database ??= openDatabase(config.database, { onQuery: tracing?.dbQueries(config.database.dialect) })).db;
  // The child's cache is there for its writes to reach the others' (Redis generations, or the
  // SQLite generation log that the memory caches over this file follow); it serves no reads.
  const announce = () =>
    (changes ??= changeFeedFor(
      childLogger(),
      createCacheService(config.cache, childLogger(), {
        sharedSqlite: sharedSqliteOf(config.database),
        traceRead: tracing?.cacheReads(),
      }),
    ));
  return {
    config,
    logger: childLogger(),
    dialect: config.database.dialect,
    db,
    queue: () => (queue ??= createJobQueue(config, childLogger(), new Shortcuts(config.jobs.shortcuts))),
    // Built once per child, so the eSpeak worker thread stays warm between tasks.
    media: () =>
      (media ??= createMediaServices(config.media, db(), config.database.dialect, childLogger(), {
        changes: announce(),
        observer: reportingObserver(report),
        spans: tracing?.media(),
      })),
    changes: announce,
  };
}
