import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CacheConfig } from './cache.config.js';
import { CacheService } from './cache.service.js';
import { BUS_CHANNEL, L1Cache, connectBus } from './l1-cache.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';

/**
 * Builds the CacheService a Config asks for (called by composition roots only): the
 * memory store in embedded mode; Redis on its own connection (no offline queue, a short
 * command timeout) with an L1 kept coherent over pub/sub in distributed mode; or
 * undefined when CACHE_MODE=off.
 */
export function createCacheService(config: CacheConfig, logger: Logger): CacheService | undefined {
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
  };
  if (config.mode === 'memory' || !config.redisUrl) {
    return new CacheService({ ...common, store: new MemoryStore({ maxEntries: config.memoryMaxEntries }) });
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
      logger.warn({ err: err.message }, 'cache Redis connection error; the cache fails open');
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
