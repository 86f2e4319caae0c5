import type { CacheService } from '../cache/cache.service.js';
import type { LiveRecorder } from './live-recorder.js';
import type { CacheResult, CacheTier, Metrics } from './metrics.js';

type Seen = Record<`${CacheTier}:${CacheResult}`, number>;

/**
 * Moves the cache's own per-prefix counters into omnivibe_cache_requests_total (and the live
 * figures) as deltas since the last call: L1 hits are tier `l1`, the rest of the reads `store`.
 * Called at each scrape and before each live publish, so both see every read once. Reads the
 * counters only (prefixReads): nothing is asked of Redis at a scrape.
 */
export function cacheCountersSource(
  metrics: Metrics,
  cache: Pick<CacheService, 'prefixReads'>,
  live?: LiveRecorder,
): () => void {
  const seen = new Map<string, Seen>();
  return () => {
    for (const [prefix, p] of cache.prefixReads()) {
      const now: Seen = {
        'l1:hit': p.l1_hits,
        'store:hit': p.hits - p.l1_hits,
        'store:miss': p.misses,
        'store:stale': p.stale_served,
        'store:error': p.errors,
        'l1:miss': 0,
        'l1:stale': 0,
        'l1:error': 0,
      };
      const before = seen.get(prefix);
      seen.set(prefix, now);
      for (const k of Object.keys(now) as (keyof Seen)[]) {
        const delta = now[k] - (before?.[k] ?? 0);
        if (delta <= 0) continue;
        const [tier, result] = k.split(':') as [CacheTier, CacheResult];
        metrics.cacheRequests.inc({ prefix, tier, result }, delta);
        live?.cache(prefix, result, delta);
      }
    }
  };
}
