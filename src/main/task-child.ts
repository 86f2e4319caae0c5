/**
 * Composition root of a sandbox child process (started for the worker's sandbox
 * pool). It imports nothing heavy up front: the task's handler module is loaded
 * when the task first runs (src/tasks/sandbox-catalogue.ts), the configuration,
 * database, queue and cache only for a handler that uses them, and each of those
 * only when first called. A child that runs only CPU work never opens a database
 * or a Redis connection. Its connections end with the process: the child exits
 * when the worker closes its socket.
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { CacheService } from '../cache/cache.service.js';
import type { DatabaseHandle } from '../db/database.js';
import { runTaskChild } from '../jobs/sandbox/child.js';
import type { JobQueue } from '../jobs/types.js';
import type { MediaServices } from '../media/media-services.js';
import type { TaskDeps } from '../tasks/deps.js';
import { SANDBOX_CATALOGUE } from '../tasks/sandbox-catalogue.js';

let rootLogger: Logger | undefined;
// pino is CommonJS: required synchronously, so ctx.logger can stay a plain getter.
const requirePino = () => createRequire(import.meta.url)('pino') as typeof import('pino');

/** The child's logger, made on first use (the parent validated LOG_LEVEL; children inherit its environment). */
function logger(): Logger {
  if (!rootLogger) {
    const { pino } = requirePino();
    rootLogger = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid, sandbox: true } });
  }
  return rootLogger;
}

const loadDepModules = () =>
  Promise.all([
    import('../config/config.js'),
    import('../db/database.js'),
    import('../jobs/create-queue.js'),
    import('../cache/create-cache.js'),
    import('../media/media-services.js'),
  ]);
let depModules: ReturnType<typeof loadDepModules> | undefined;

async function makeDeps(): Promise<TaskDeps> {
  const [
    { loadConfig },
    { openDatabase },
    { createJobQueue },
    { createCacheService },
    { createMediaServices },
  ] = await (depModules ??= loadDepModules());
  const config = loadConfig();
  let database: DatabaseHandle | undefined;
  let queue: JobQueue | undefined;
  let cache: CacheService | undefined;
  let media: MediaServices | undefined;
  const db = () => (database ??= openDatabase(config.database)).db;
  // Only a shared (Redis) cache is worth opening here: a memory cache in a child would be its own.
  const sharedCache = () =>
    config.cache.mode === 'redis' ? (cache ??= createCacheService(config.cache, logger())) : undefined;
  return {
    config,
    logger: logger(),
    dialect: config.database.dialect,
    db,
    queue: () => (queue ??= createJobQueue(config, logger())),
    // Built once per child, so the eSpeak worker thread stays warm between tasks.
    media: () =>
      (media ??= createMediaServices(config.media, db(), config.database.dialect, logger(), {
        cache: sharedCache(),
      })),
    cache: sharedCache,
  };
}

runTaskChild({
  catalogue: SANDBOX_CATALOGUE,
  deps: makeDeps,
  preloadDeps: async () => {
    await (depModules ??= loadDepModules());
    requirePino();
  },
  logger,
});
