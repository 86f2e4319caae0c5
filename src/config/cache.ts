import { z } from 'zod';
import { ConfigError, intVar, parseEnv } from './env.js';

/**
 * Cache settings. The store is chosen by CACHE_MODE: `auto` (default) uses Redis when
 * CACHE_REDIS_URL (default REDIS_URL) is set and the in-process LRU otherwise; `off` disables caching.
 */
export interface CacheConfig {
  readonly mode: 'memory' | 'redis' | 'off';
  /** Redis for the cache (CACHE_REDIS_URL, default REDIS_URL); set when mode is `redis`. */
  readonly redisUrl: string | undefined;
  /** TTL of entries whose prefix has no TTL of its own, seconds (CACHE_DEFAULT_TTL_S, 300). */
  readonly defaultTtlS: number;
  /** Per-prefix TTLs, seconds (CACHE_PREFIX_TTLS, `script=600,similar_scripts=600,...`). */
  readonly prefixTtlS: Readonly<Record<string, number>>;
  /** TTL of cached empty results where a caller opts into negative caching, seconds (CACHE_NEGATIVE_TTL_S, 30). */
  readonly negativeTtlS: number;
  /** Longest a Redis command may take before the cache gives up and answers from the source, ms (CACHE_COMMAND_TIMEOUT_MS, 100). */
  readonly commandTimeoutMs: number;
  /** Redis connect timeout, ms (CACHE_CONNECT_TIMEOUT_MS, 1000). */
  readonly connectTimeoutMs: number;
  /** Consecutive Redis failures that open the circuit (CACHE_BREAKER_FAILURES, 5). */
  readonly breakerFailures: number;
  /** How long the circuit stays open before one probe, ms (CACHE_BREAKER_COOLDOWN_MS, 2000). */
  readonly breakerCooldownMs: number;
  /** Entries in the in-process L1 in front of Redis; 0 disables it (CACHE_L1_MAX_ENTRIES, 10000). */
  readonly l1MaxEntries: number;
  /** Longest an L1 entry (and a generation it was checked against) is trusted without Redis, ms (CACHE_L1_TTL_MS, 5000). */
  readonly l1TtlMs: number;
  /** Entries the memory store keeps before evicting the least recently used (CACHE_MEMORY_MAX_ENTRIES, 200000). */
  readonly memoryMaxEntries: number;
  /** Longest wait for another process holding a fill lock, ms (CACHE_LOCK_WAIT_MS, 2000). */
  readonly lockWaitMs: number;
  /** At most one cache error log line per this interval, ms (CACHE_ERROR_LOG_INTERVAL_MS, 10000). */
  readonly errorLogIntervalMs: number;
  /**
   * Memory stores over a shared SQLite file: longest a read goes without checking the
   * generation log for other processes' writes, ms (CACHE_PEER_CHECK_MS, 2; 0 = every read).
   */
  readonly peerCheckMs: number;
}

/** Prefix TTLs used unless CACHE_PREFIX_TTLS names them. */
export const DEFAULT_PREFIX_TTLS_S: Readonly<Record<string, number>> = {
  script: 600,
  similar_scripts: 600,
  campaign: 300,
  content: 300,
  campaign_list: 120,
  content_list: 120,
  campaign_stats: 300,
  cost_summary: 300,
};

/** Cache prefixes: a lowercase letter, then lowercase letters, digits and underscores. */
export const PREFIX_RE = /^[a-z][a-z0-9_]{0,63}$/;

const prefixTtls = z
  .string()
  .trim()
  .regex(
    /^[a-z][a-z0-9_]{0,63}=\d{1,7}(,[a-z][a-z0-9_]{0,63}=\d{1,7})*$/,
    'a list like script=600,similar_scripts=600 (prefix=seconds, comma-separated)',
  )
  .optional();

// Built on first use: config.ts imports this module, so nothing from it may run at import time.
const cacheEnvSchema = () =>
  z.object({
    CACHE_MODE: z.enum(['auto', 'memory', 'redis', 'off']).optional().default('auto'),
    CACHE_REDIS_URL: z
      .string()
      .trim()
      .regex(/^rediss?:\/\//, 'redis://host:port[/db] or rediss://...')
      .optional(),
    REDIS_URL: z.string().trim().optional(),
    CACHE_DEFAULT_TTL_S: intVar(1, 30 * 86_400, 300),
    CACHE_PREFIX_TTLS: prefixTtls,
    CACHE_NEGATIVE_TTL_S: intVar(1, 86_400, 30),
    CACHE_COMMAND_TIMEOUT_MS: intVar(5, 60_000, 100),
    CACHE_CONNECT_TIMEOUT_MS: intVar(50, 60_000, 1000),
    CACHE_BREAKER_FAILURES: intVar(1, 1000, 5),
    CACHE_BREAKER_COOLDOWN_MS: intVar(10, 600_000, 2000),
    CACHE_L1_MAX_ENTRIES: intVar(0, 10_000_000, 10_000),
    CACHE_L1_TTL_MS: intVar(1, 3_600_000, 5000),
    CACHE_MEMORY_MAX_ENTRIES: intVar(1, 100_000_000, 200_000),
    CACHE_LOCK_WAIT_MS: intVar(0, 600_000, 2000),
    CACHE_ERROR_LOG_INTERVAL_MS: intVar(0, 3_600_000, 10_000),
    CACHE_PEER_CHECK_MS: intVar(0, 60_000, 2),
  });

export function loadCacheConfig(env: NodeJS.ProcessEnv): CacheConfig {
  const e = parseEnv(cacheEnvSchema(), env);
  const redisUrl =
    e.CACHE_REDIS_URL ?? (e.REDIS_URL && /^rediss?:\/\//.test(e.REDIS_URL) ? e.REDIS_URL : undefined);
  let mode: CacheConfig['mode'];
  if (e.CACHE_MODE === 'auto') mode = redisUrl ? 'redis' : 'memory';
  else mode = e.CACHE_MODE;
  if (mode === 'redis' && !redisUrl) {
    throw new ConfigError(['CACHE_MODE="redis" is invalid: expected CACHE_REDIS_URL or REDIS_URL to be set']);
  }
  const prefixTtlS: Record<string, number> = { ...DEFAULT_PREFIX_TTLS_S };
  for (const pair of e.CACHE_PREFIX_TTLS?.split(',') ?? []) {
    const [name, seconds] = pair.split('=') as [string, string];
    const s = Number(seconds);
    if (s < 1) throw new ConfigError([`CACHE_PREFIX_TTLS is invalid: expected ${name}=<seconds >= 1>`]);
    prefixTtlS[name] = s;
  }
  return Object.freeze({
    mode,
    redisUrl: mode === 'redis' ? redisUrl : undefined,
    defaultTtlS: e.CACHE_DEFAULT_TTL_S,
    prefixTtlS: Object.freeze(prefixTtlS),
    negativeTtlS: e.CACHE_NEGATIVE_TTL_S,
    commandTimeoutMs: e.CACHE_COMMAND_TIMEOUT_MS,
    connectTimeoutMs: e.CACHE_CONNECT_TIMEOUT_MS,
    breakerFailures: e.CACHE_BREAKER_FAILURES,
    breakerCooldownMs: e.CACHE_BREAKER_COOLDOWN_MS,
    l1MaxEntries: e.CACHE_L1_MAX_ENTRIES,
    l1TtlMs: e.CACHE_L1_TTL_MS,
    memoryMaxEntries: e.CACHE_MEMORY_MAX_ENTRIES,
    lockWaitMs: e.CACHE_LOCK_WAIT_MS,
    errorLogIntervalMs: e.CACHE_ERROR_LOG_INTERVAL_MS,
    peerCheckMs: e.CACHE_PEER_CHECK_MS,
  });
}
