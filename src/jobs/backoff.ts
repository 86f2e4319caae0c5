import type { BackoffOptions } from './types.js';

/** The seed's Celery settings: retry_backoff (1 s base), retry_backoff_max=600 s, retry_jitter. */
export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ baseMs: 1000, capMs: 600_000, jitter: true });

/** The hard ceiling of any retry delay, ms. */
export const MAX_BACKOFF_MS = 600_000;

/**
 * Delay before attempt `attemptsMade + 1`, ms: min(cap, base · 2^(attemptsMade-1)),
 * then with jitter a uniform value in [delay/2, delay] (never above the cap, never 0).
 * `random` is injectable so tests can pin the jitter.
 */
export function backoffDelayMs(
  attemptsMade: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const cap = Math.min(opts.capMs, MAX_BACKOFF_MS);
  const exp = Math.min(Math.max(attemptsMade - 1, 0), 40);
  const raw = Math.min(cap, opts.baseMs * 2 ** exp);
  if (!opts.jitter) return Math.round(raw);
  return Math.round(raw / 2 + random() * (raw / 2));
}

export function resolveBackoff(
  partial: Partial<BackoffOptions> | undefined,
  fallback: BackoffOptions,
): BackoffOptions {
  return {
    baseMs: partial?.baseMs ?? fallback.baseMs,
    capMs: Math.min(partial?.capMs ?? fallback.capMs, MAX_BACKOFF_MS),
    jitter: partial?.jitter ?? fallback.jitter,
  };
}
