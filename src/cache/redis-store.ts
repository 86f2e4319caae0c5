import type { Redis } from 'ioredis';
import { NAMESPACE, seedGeneration } from './cache-key.js';
import type { CacheEntry, CacheStore, ServerStats } from './cache-store.js';

/** Generation keys outlive any entry; an expired generation re-seeds at random, which only causes misses. */
const GEN_TTL_S = 7 * 86_400;
/** SCAN page size and UNLINK batch size for pattern delete and flush. */
const SCAN_COUNT = 1000;

// Seeds arrive in ARGV (1..n), the TTL last: a missing generation takes its seed.
const ENSURE_GENS = `
local ttl = ARGV[#KEYS + 1]
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v then
    v = ARGV[i]
    redis.call('SET', k, v, 'EX', ttl)
  end
  out[i] = v
end
return out`;

// ARGV: seeds (1..n), TTL, bus channel ('' for none), sender id. Publishing here keeps a bump and its
// announcement in one round trip, and in order with any other bump.
const BUMP_GENS = `
local n = #KEYS
local ttl = ARGV[n + 1]
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    out[i] = tostring(redis.call('INCR', k))
    redis.call('EXPIRE', k, ttl)
  else
    redis.call('SET', k, ARGV[i], 'EX', ttl)
    out[i] = ARGV[i]
  end
end
if ARGV[n + 2] ~= '' then
  redis.call('PUBLISH', ARGV[n + 2], cjson.encode({i = ARGV[n + 3], t = 'gen', k = KEYS, v = out}))
end
return out`;

const parseEntry = (raw: string | null) => (raw === null ? null : (JSON.parse(raw) as CacheEntry));

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * The distributed store: JSON entries in Redis with PX expiry. The connection it is given
 * should have no offline queue and a command timeout, so an outage fails fast.
 */
export class RedisStore implements CacheStore {
  readonly kind = 'redis' as const;

  constructor(
    private readonly redis: Redis,
    /** Where generation bumps and deletions are announced to L1s; none when no process runs an L1. */
    private readonly bus?: { channel: string; instanceId: string },
  ) {}

  // Not async, and a plain GET without dependencies: this is the hot path of a Redis hit.
  read(
    key: string,
    genKeys: readonly string[],
  ): Promise<{ entry: CacheEntry | null; gens: (string | null)[] }> {
    if (genKeys.length === 0) {
      return this.redis.get(key).then((raw) => ({ entry: parseEntry(raw), gens: [] }));
    }
    return this.redis.mget(key, ...genKeys).then((values) => ({
      entry: parseEntry(values[0] ?? null),
      gens: values.slice(1),
    }));
  }

  async write(key: string, _entry: CacheEntry, json: string, ttlMs: number): Promise<void> {
    await this.redis.set(key, json, 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async ensureGenerations(genKeys: readonly string[]): Promise<string[]> {
    if (genKeys.length === 0) return [];
    const seeds = genKeys.map(() => seedGeneration());
    return (await this.redis.eval(ENSURE_GENS, genKeys.length, ...genKeys, ...seeds, GEN_TTL_S)) as string[];
  }

  async bumpGenerations(genKeys: readonly string[]): Promise<string[]> {
    if (genKeys.length === 0) return [];
    const seeds = genKeys.map(() => seedGeneration());
    return (await this.redis.eval(
      BUMP_GENS,
      genKeys.length,
      ...genKeys,
      ...seeds,
      GEN_TTL_S,
      this.bus?.channel ?? '',
      this.bus?.instanceId ?? '',
    )) as string[];
  }

  /** Announces deleted keys (or `clear`) to other processes' L1s. */
  async announce(msg: { t: 'del' | 'clear'; k?: string[] }): Promise<void> {
    if (this.bus)
      await this.redis.publish(this.bus.channel, JSON.stringify({ ...msg, i: this.bus.instanceId }));
  }

  async delete(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    return this.redis.unlink(...keys);
  }

  async deleteMatching(glob: string): Promise<number> {
    if (!glob.startsWith(NAMESPACE)) throw new Error('pattern outside the cache namespace');
    let removed = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', glob, 'COUNT', SCAN_COUNT);
      cursor = next;
      // Keys are re-checked by prefix: the namespace is a literal prefix of the glob, this is belt and braces.
      const ours = keys.filter((k) => k.startsWith(NAMESPACE));
      if (ours.length > 0) removed += await this.redis.unlink(...ours);
    } while (cursor !== '0');
    return removed;
  }

  async countNamespace(): Promise<number> {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${NAMESPACE}*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  }

  async serverStats(): Promise<ServerStats> {
    const info = await this.redis.info();
    const num = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    let total = 0;
    for (const m of info.matchAll(/^db\d+:keys=(\d+)/gm)) total += Number(m[1]);
    return {
      keyspace_hits: num('keyspace_hits'),
      keyspace_misses: num('keyspace_misses'),
      total_keys: total,
    };
  }

  async tryLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async unlock(key: string, token: string): Promise<void> {
    await this.redis.eval(UNLOCK, 1, key, token);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
