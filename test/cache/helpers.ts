import pino from 'pino';
import { loadCacheConfig } from '../../src/cache/cache.config.js';
import type { CacheService } from '../../src/cache/cache.service.js';
import { createCacheService } from '../../src/cache/create-cache.js';
import { embeddedEnabled, redisUrl } from '../support/backends.js';

export type CacheKind = 'memory' | 'redis' | 'redis+l1';

/** The cache kinds this run tests: memory in embedded runs, Redis and Redis with L1 in distributed runs. */
export function cacheKinds(): CacheKind[] {
  const out: CacheKind[] = [];
  if (embeddedEnabled()) out.push('memory');
  if (redisUrl() !== null) out.push('redis', 'redis+l1');
  return out;
}

/** Cache environment variables for a kind (Redis at `url`). */
export function cacheEnv(kind: CacheKind, url: string | null, extra: Record<string, string> = {}) {
  if (kind === 'memory') return { CACHE_MODE: 'memory', ...extra };
  if (!url) throw new Error('Redis is not available in this run');
  return {
    CACHE_MODE: 'redis',
    CACHE_REDIS_URL: url,
    CACHE_L1_MAX_ENTRIES: kind === 'redis+l1' ? '1000' : '0',
    ...extra,
  };
}

export const silentLogger = () => pino({ level: 'silent' });

export function makeCache(kind: CacheKind, url: string | null, extra: Record<string, string> = {}): CacheService {
  const cache = createCacheService(loadCacheConfig(cacheEnv(kind, url, extra)), silentLogger());
  if (!cache) throw new Error('cache is off');
  return cache;
}

/** Resolves when the cache's store answers (and, with an L1, the bus is subscribed). Bounded. */
export async function cacheReady(cache: CacheService, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await cache.stats();
    if (s.circuit === 'closed' && s.namespace_keys !== null && (!s.l1.enabled || s.l1.connected)) return;
    if (Date.now() > deadline) throw new Error(`cache not ready in ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns the time it took, ms. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not true within ${timeoutMs} ms`);
    await sleep(10);
  }
}
