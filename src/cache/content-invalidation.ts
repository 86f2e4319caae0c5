import type { CacheService } from './cache.service.js';
import { gens } from './cached-services.js';

/**
 * Narration records vendor calls in ai_api_usage (also when it fails): cached cost
 * summaries must not outlive that. Called by the narration tasks; never throws. (A
 * content's status change is invalidated where it is written, in MediaRepo.)
 */
export async function invalidateCosts(
  cache: CacheService | undefined,
  onError: (err: unknown) => void,
): Promise<void> {
  if (!cache) return;
  try {
    await cache.invalidate(gens.costs);
  } catch (err) {
    onError(err);
  }
}
