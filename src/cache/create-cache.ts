import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { DatabaseConfig } from '../config/config.js';
import { openSqliteFile } from '../db/database.js';
import type { CacheConfig } from '../config/cache.js';
import { CacheService, type ReadTracer } from './cache.service.js';
import { BUS_CHANNEL, L1Cache, connectBus } from './l1-cache.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import { SqliteGenerationLog } from './sqlite-generation-log.js';

/** Rows of the shared generation log older than this are pruned (a reader idle longer drops its cache once). */
const LOG_RETAIN_MS = 10 * 60_000;

export interface CreateCacheOptions {
  /**
   * The SQLite file every process of this deployment opens: a memory cache then shares
   * its generation bumps with the other processes' through it (cache_generation_log).
   * Absent for PostgreSQL and for an in-memory database (one process).
   */
  sharedSqlite?: { file: string; busyTimeoutMs: number };
  /** A span per read-through (tracing on). */
  traceRead?: ReadTracer;
}

/** The SQLite file of a database configuration, which every process of an embedded deployment opens. */
export function sharedSqliteOf(db: DatabaseConfig): CreateCacheOptions['sharedSqlite'] {
  return db.dialect === 'sqlite' ? { file: db.file, busyTimeoutMs: db.busyTimeoutMs } : undefined;
}

/**
 * Builds the CacheService a Config asks for (called by composition roots only): the
 * memory store in embedded mode (following the other processes' writes through the
 * shared SQLite file's generation log); Redis on its own connection (no offline queue, a short
 * command timeout) with an L1 kept coherent over pub/sub in distributed mode; or
 * undefined when CACHE_MODE=off.
 */
export function createCacheService(
  config: CacheConfig,
  logger: Logger,
  opts: CreateCacheOptions = {},
): CacheService | undefined {
  if (config.mode === 'off') return undefined;
  const common = {
    defaultTtlS: config.defaultTtlS,
    prefixTtlS: config.prefixTtlS,
    negativeTtlS: config.negativeTtlS,
    lockWaitMs: config.lockWaitMs,
    breakerFailures: config.breakerFailures,
    breakerCooldownMs: config.breakerCooldownMs,
    errorLogIntervalMs: config.errorLogIntervalMs,
    logger,
    ...(opts.traceRead ? { traceRead: opts.traceRead } : {}),
  };
  if (config.mode === 'memory' || !config.redisUrl) {
    const shared = opts.sharedSqlite;
    return new CacheService({
      ...common,
      store: new MemoryStore({ maxEntries: config.memoryMaxEntries }),
      peers:
        shared && shared.file !== ':memory:'
          ? new SqliteGenerationLog(openSqliteFile(shared.file, shared.busyTimeoutMs), {
              checkIntervalMs: config.peerCheckMs,
              retainMs: LOG_RETAIN_MS,
            })
          : undefined,
    });
  }
  const options = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    // Reconnect quickly, at most every second: the circuit breaker decides when the cache is used again.
    retryStrategy: (times: number) => Math.min(times * 50, 1000),
    connectionName: 'ov-cache',
  };
  const redis = new Redis(config.redisUrl, options);
  let lastConnLog = 0;
  const connError = (err: Error) => {
    const now = Date.now();
    if (now - lastConnLog >= config.errorLogIntervalMs) {
      lastConnLog = now;
      logger.warn({ err }, 'cache Redis connection error; the cache fails open');
    }
  };
  redis.on('error', connError);
  const instanceId = randomUUID();
  let l1: L1Cache | undefined;
  let bus: { close(): Promise<void> } | undefined;
  if (config.l1MaxEntries > 0) {
    l1 = new L1Cache({ maxEntries: config.l1MaxEntries, ttlMs: config.l1TtlMs });
    // Subscribe mode needs its own connection; it has no command timeout (it waits for messages).
    const sub = new Redis(config.redisUrl, {
      ...options,
      commandTimeout: undefined,
      autoResubscribe: false,
      connectionName: 'ov-cache-bus',
    });
    bus = connectBus(sub, l1, instanceId, connError);
  }
  const store = new RedisStore(redis, l1 ? { channel: BUS_CHANNEL, instanceId } : undefined);
  return new CacheService({
    ...common,
    store,
    l1,
    onClose: async () => {
      await bus?.close();
    },
  });
}
