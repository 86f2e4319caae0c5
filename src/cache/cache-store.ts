/**
 * What a cache store keeps under a key: the value, the generations of everything it
 * depends on at the time it was computed, and until when it is fresh (epoch ms; after
 * that it may still be served within a stale-while-revalidate grace, until its TTL).
 */
export interface CacheEntry {
  readonly v: unknown;
  readonly g: readonly string[];
  readonly f: number;
}

/** Redis INFO figures: server-wide, not only our namespace. */
export interface ServerStats {
  keyspace_hits: number;
  keyspace_misses: number;
  total_keys: number;
}

/**
 * A key-value store for CacheService: in-process (memory) or Redis. Keys are full cache
 * keys (`ov:cache:v1:...`); generation keys are full keys under `ov:cache:v1:_gen:`.
 * Methods reject on store failures; CacheService decides to fail open.
 */
export interface CacheStore {
  readonly kind: 'memory' | 'redis';
  /** Reads an entry and the current generation values in one round trip (a missing generation is null). */
  read(
    key: string,
    genKeys: readonly string[],
  ): Promise<{ entry: CacheEntry | null; gens: (string | null)[] }>;
  /** Stores an entry; `json` is its serialisation, `entry` the same data parsed and frozen. */
  write(key: string, entry: CacheEntry, json: string, ttlMs: number): Promise<void>;
  /** Current generation values, seeding missing ones at random. */
  ensureGenerations(genKeys: readonly string[]): Promise<string[]>;
  /** Advances generations (a missing one is seeded at random) and returns the new values. */
  bumpGenerations(genKeys: readonly string[]): Promise<string[]>;
  /** Deletes keys; returns how many existed. */
  delete(keys: readonly string[]): Promise<number>;
  /** Deletes the keys matching a glob that starts with the namespace, in batches; returns how many went. */
  deleteMatching(glob: string): Promise<number>;
  /** Keys in our namespace (entries, generations and locks). */
  countNamespace(): Promise<number>;
  /** Redis INFO figures; null for the memory store. */
  serverStats(): Promise<ServerStats | null>;
  /** Takes a fill lock if free; true when taken. */
  tryLock(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Releases a fill lock if `token` still holds it. */
  unlock(key: string, token: string): Promise<void>;
  /** Tells other processes' L1s that keys went (`del`) or that everything went (`clear`); no-op without a bus. */
  announce(msg: { t: 'del' | 'clear'; k?: string[] }): Promise<void>;
  /** A cheap round trip, used to probe an open circuit. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Freezes a JSON value deeply so no caller can change what the cache hands to others. */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v as Record<string, unknown>)) deepFreeze(child);
  }
  return v;
}
