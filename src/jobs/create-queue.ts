import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { BullmqQueue } from './bullmq/bullmq-queue.js';
import { SqliteQueue } from './sqlite/sqlite-queue.js';
import type { Shortcuts } from './shortcuts.js';
import type { JobQueue } from './types.js';

/** The backend configuration selects: REDIS_URL set → BullMQ on Redis, otherwise the embedded SQLite engine. */
export function createJobQueue(config: Config, logger: Logger, shortcuts: Shortcuts): JobQueue {
  const j = config.jobs;
  if (config.redisUrl) {
    const queue = new BullmqQueue({
      url: config.redisUrl,
      prefix: j.redisPrefix,
      leaseMs: j.leaseMs,
      maxStalls: j.maxStalls,
      keepLast: j.keepLast,
      keepHours: j.keepHours,
      pollMs: j.pollMs,
      logger,
      shortcuts,
    });
    void queue.checkEvictionPolicy();
    return queue;
  }
  return new SqliteQueue({
    file: j.sqliteFile,
    leaseMs: j.leaseMs,
    maxStalls: j.maxStalls,
    pollMs: j.pollMs,
    onError: (err, what) =>
      logger.warn({ err }, `embedded queue: ${what} failed; idle workers fall back to polling`),
  });
}
