/**
 * Composition root of a sandbox child process (forked by the worker's sandbox
 * pool): loads the task catalogue and builds task dependencies lazily, so a child
 * that runs only CPU work never opens a database or a Redis connection.
 */
import type { CacheService } from '../cache/cache.service.js';
import { createCacheService } from '../cache/create-cache.js';
import pino from 'pino';
import { loadConfig } from '../config/config.js';
import { type DatabaseHandle, openDatabase } from '../db/database.js';
import { createJobQueue } from '../jobs/create-queue.js';
import { runTaskChild } from '../jobs/sandbox/child.js';
import type { JobQueue } from '../jobs/types.js';
import type { TaskDeps } from '../tasks/deps.js';
import { createTaskRegistry } from '../tasks/index.js';

const config = loadConfig();
// Not system.ts's createLogger: importing system.ts would load every capability into each child.
const logger = pino({ level: config.logLevel, base: { pid: process.pid, sandbox: true } });
let database: DatabaseHandle | undefined;
let queue: JobQueue | undefined;
let cache: CacheService | undefined;
const deps: TaskDeps = {
  config,
  logger,
  dialect: config.database.dialect,
  db: () => (database ??= openDatabase(config.database)).db,
  queue: () => (queue ??= createJobQueue(config, logger)),
  // Only a shared (Redis) cache is worth opening here: a memory cache in a child would be its own.
  cache: () =>
    config.cache.mode === 'redis' ? (cache ??= createCacheService(config.cache, logger)) : undefined,
};
process.once('disconnect', () => {
  void queue?.close(1000);
  void cache?.close();
  void database?.close();
});
runTaskChild({ registry: createTaskRegistry(), deps, logger });
