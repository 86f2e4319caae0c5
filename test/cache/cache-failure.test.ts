/**
 * Failure handling without a server to restart: the circuit breaker's states, a cache
 * pointed at a port where nothing listens (real connection failures), throttled
 * logging, and the memory store's size bound.
 */
import { freePort } from '../support/services.js';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadCacheConfig } from '../../src/config/cache.js';
import { CircuitBreaker } from '../../src/cache/circuit-breaker.js';
import { createCacheService } from '../../src/cache/create-cache.js';
import type { CacheService } from '../../src/cache/cache.service.js';
import { embeddedEnabled, redisUrl } from '../support/backends.js';
import { makeCache, sleep } from './helpers.js';

describe('circuit breaker', () => {
  it('opens after consecutive failures, lets one probe through after the cooldown, and closes on success', () => {
    let now = 0;
    const b = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 100, now: () => now });
    expect(b.admit()).toBe('call');
    b.failure();
    b.failure();
    b.success(); // not consecutive
    b.failure();
    b.failure();
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
    expect(b.admit()).toBe('refuse');
    now = 100;
    expect(b.admit()).toBe('probe');
    expect(b.admit()).toBe('refuse'); // only one probe
    b.probeResult(false);
    expect(b.state).toBe('open');
    expect(b.admit()).toBe('refuse');
    now = 200;
    expect(b.admit()).toBe('probe');
    b.probeResult(true);
    expect(b.state).toBe('closed');
    expect(b.admit()).toBe('call');
    expect(b.opened).toBe(2);
  });
});

describe.runIf(redisUrl() !== null)('a cache whose Redis is unreachable', () => {
  it('answers from the source, counts errors, opens the circuit and logs at most once per interval', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const port = await freePort(); // nothing listens here
    const cache = createCacheService(
      loadCacheConfig({
        CACHE_MODE: 'redis',
        CACHE_REDIS_URL: `redis://127.0.0.1:${port}`,
        CACHE_BREAKER_FAILURES: '3',
        CACHE_BREAKER_COOLDOWN_MS: '100',
        CACHE_ERROR_LOG_INTERVAL_MS: '60000',
        CACHE_CONNECT_TIMEOUT_MS: '100',
      }),
      logger,
    ) as CacheService;
    try {
      let calls = 0;
      const t0 = performance.now();
      for (let i = 0; i < 200; i++) {
        expect(await cache.getOrSet('down', [i % 5], async () => ++calls)).toBe(calls);
      }
      expect(calls).toBe(200);
      expect(performance.now() - t0).toBeLessThan(2000);
      await cache.invalidate('content:1'); // kept as pending, never thrown
      const s = await cache.stats();
      expect(s.errors).toBeGreaterThanOrEqual(3);
      expect(s.circuit).not.toBe('closed');
      expect(s.circuit_opened).toBeGreaterThanOrEqual(1);
      expect(s.prefixes.down!.bypassed).toBeGreaterThan(100);
      expect(s.pending_invalidations).toBe(1);
      expect(s.keyspace_scope).toBe('process');
      await sleep(150);
      await cache.getOrSet('down', [0], async () => 0); // probes again, fails again
      const cacheLines = lines.filter((l) => l.includes('cache unavailable'));
      expect(cacheLines.length).toBe(1);
      expect(JSON.parse(cacheLines[0]!).errors).toBeGreaterThanOrEqual(1);
    } finally {
      await cache.close();
    }
  });
});

describe.runIf(embeddedEnabled())('memory store bound', () => {
  it('evicts the least recently used entries beyond CACHE_MEMORY_MAX_ENTRIES and stays correct', async () => {
    const cache = makeCache('memory', null, { CACHE_MEMORY_MAX_ENTRIES: '10' });
    try {
      let version = 1;
      for (let i = 0; i < 30; i++)
        await cache.getOrSet('lru', [i], async () => i, { deps: [`content:${i}`] });
      const s = await cache.stats();
      expect(s.total_keys).toBeLessThanOrEqual(10);
      expect(await cache.get('lru', [0], ['content:0'])).toBeUndefined();
      expect(await cache.get('lru', [29], ['content:29'])).toBe(29);
      // Generations are bounded too; an evicted one only causes misses, never a stale hit.
      const read = () => cache.getOrSet('lru_gen', [1], async () => version, { deps: ['content:100'] });
      expect(await read()).toBe(1);
      for (let i = 0; i < 30; i++) await cache.invalidate(`content:${1000 + i}`);
      version = 2;
      await cache.invalidate('content:100');
      expect(await read()).toBe(2);
    } finally {
      await cache.close();
    }
  });
});
