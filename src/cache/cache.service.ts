import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { LOCK_PREFIX, NAMESPACE, assertPrefix, cacheKey, genKey, namespacedPattern } from './cache-key.js';
import type { CacheEntry, CacheStore } from './cache-store.js';
import { deepFreeze } from './cache-store.js';
import { CircuitBreaker, type CircuitState } from './circuit-breaker.js';
import type { L1Cache } from './l1-cache.js';
import { LatencyHistogram } from './latency-histogram.js';
import { LatencySampler } from './latency-sampler.js';
import type { MemoryStore } from './memory-store.js';
import type { GenerationPeers } from './sqlite-generation-log.js';

/** Options of one cached read. */
export interface CacheOptions<T> {
  /** Entry lifetime, s; default the prefix's TTL, else the default TTL. */
  ttlS?: number;
  /**
   * Generation names the value depends on (`campaign:12`, `content:7`, `similar`...):
   * `invalidate(name)` makes every entry that lists it unreachable in O(1).
   */
  deps?: readonly string[];
  /**
   * Opt-in negative caching: empty results (null, undefined, [], `{ items: [] }`, or what
   * `isEmpty` says) are kept for `ttlS` (default CACHE_NEGATIVE_TTL_S). Without it they are not cached.
   */
  negative?: boolean | { ttlS?: number; isEmpty?: (v: T) => boolean };
  /** Opt-in stale-while-revalidate: serve an expired entry for this many seconds more while one refresh runs in the background. */
  staleWhileRevalidateS?: number;
  /**
   * Opt-in cross-process fill lock for expensive functions: one process computes, the
   * others wait up to `waitMs` (default CACHE_LOCK_WAIT_MS) for its result, then compute anyway.
   */
  lock?: boolean | { waitMs?: number; ttlMs?: number };
}

/** Options of a wrapped function: dependencies are computed from its arguments. */
export type WrapOptions<A extends unknown[], T> = Omit<CacheOptions<T>, 'deps' | 'ttlS'> & {
  deps?: (...args: A) => readonly string[];
};

export interface CacheServiceOptions {
  store: CacheStore;
  /** In-process L1 in front of a Redis store, kept coherent by the bus. */
  l1?: L1Cache;
  /**
   * Other processes with memory stores of their own over the same database: this
   * service publishes its generation bumps to them and applies theirs before a memory read.
   */
  peers?: GenerationPeers;
  defaultTtlS: number;
  prefixTtlS?: Readonly<Record<string, number>>;
  negativeTtlS: number;
  lockWaitMs: number;
  breakerFailures: number;
  breakerCooldownMs: number;
  errorLogIntervalMs: number;
  logger: Pick<Logger, 'warn' | 'info'>;
  now?: () => number;
  /** Called when the service is closed (connections the factory opened). */
  onClose?: () => Promise<void>;
  /** Wraps each read-through (tracing: a span with a hit attribute); `read` calls `miss` when the source runs. */
  traceRead?: ReadTracer;
}

/** Runs one read-through of `prefix` (in a span); `read` calls `miss` before it computes from the source. */
export type ReadTracer = <T>(prefix: string, read: (miss: () => void) => Promise<T>) => Promise<T>;

interface PrefixCounters {
  hits: number;
  l1_hits: number;
  misses: number;
  stale_served: number;
  sets: number;
  errors: number;
  bypassed: number;
  coalesced: number;
  latency: LatencySampler;
  /** Every read's latency by tier (l1: the in-process copy; store: memory or Redis). */
  timing: Record<'l1' | 'store', LatencyHistogram>;
}

type Counts = Omit<PrefixCounters, 'latency' | 'timing'>;

/** A prefix's read counters and latencies (see prefixReads). */
export type PrefixReads = Readonly<
  Pick<PrefixCounters, 'hits' | 'l1_hits' | 'misses' | 'stale_served' | 'errors'> & {
    timing: Readonly<Record<'l1' | 'store', LatencyHistogram>>;
  }
>;

const zeroCounts = (): Counts => ({
  hits: 0,
  l1_hits: 0,
  misses: 0,
  stale_served: 0,
  sets: 0,
  errors: 0,
  bypassed: 0,
  coalesced: 0,
});

export interface PrefixStats {
  hits: number;
  l1_hits: number;
  misses: number;
  hit_rate: number | null;
  stale_served: number;
  sets: number;
  errors: number;
  bypassed: number;
  coalesced: number;
  get_p50_us: number | null;
  get_p99_us: number | null;
}

export interface CacheStats {
  backend: 'memory' | 'redis';
  /** What keyspace_* and total_keys describe: the whole Redis server, or this process's memory store. */
  keyspace_scope: 'redis_server' | 'process';
  keyspace_hits: number;
  keyspace_misses: number;
  hit_rate: number | null;
  total_keys: number;
  namespace: string;
  /** Keys under the namespace (entries, generations, locks); null when the store could not be asked. */
  namespace_keys: number | null;
  circuit: CircuitState;
  circuit_opened: number;
  pending_invalidations: number;
  /** Generation bumps this process could not publish to its peers yet (memory stores sharing a database). */
  unpublished_invalidations: number;
  errors: number;
  last_error: string | null;
  totals: PrefixStats;
  prefixes: Record<string, PrefixStats>;
  l1: {
    enabled: boolean;
    connected: boolean;
    entries: number;
    max_entries: number;
    hits: number;
    misses: number;
    evictions: number;
    bus_messages: number;
  };
}

/** What a lookup found; see lookup(). */
type Lookup =
  | { kind: 'hit' | 'stale'; entry: CacheEntry; gens: readonly (string | null)[]; seq: number }
  | { kind: 'miss'; gens: readonly (string | null)[]; seq: number }
  | { kind: 'down' };
const DOWN: Lookup = { kind: 'down' };
const NO_DEPS: readonly string[] = [];

interface Flight {
  promise: Promise<unknown>;
  epoch: number;
}

const ratio = (hits: number, misses: number) =>
  hits + misses === 0 ? null : Math.round((hits / (hits + misses)) * 10_000) / 10_000;

function defaultIsEmpty(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object' && 'items' in v) {
    const items = (v as { items: unknown }).items;
    return Array.isArray(items) && items.length === 0;
  }
  return false;
}

/** Thrown inside the service when the circuit refuses a call; never escapes it. */
class CircuitOpenError extends Error {
  constructor() {
    super('cache circuit is open');
  }
}

/**
 * The cache: JSON values under `ov:cache:v1:<prefix>:<hash of args>` in a memory or Redis
 * store, optionally behind an L1. It fails open: store errors, timeouts and an open
 * circuit make reads go to the source and are counted, never thrown. Errors of the
 * source function itself propagate unchanged.
 */
export class CacheService {
  readonly backend: 'memory' | 'redis';
  private readonly store: CacheStore;
  private readonly memory: MemoryStore | undefined;
  private readonly l1: L1Cache | undefined;
  private readonly breaker: CircuitBreaker;
  private readonly now: () => number;
  private readonly flights = new Map<string, Flight>();
  private readonly refreshing = new Set<string>();
  private readonly counters = new Map<string, PrefixCounters>();
  /** Advances with every invalidation: a read never joins a flight that began before a write finished. */
  private epoch = 0;
  /** Generation bumps that could not reach the store; caching is bypassed until they are replayed. */
  private readonly pending = new Set<string>();
  private readonly peers: GenerationPeers | undefined;
  /** Generation bumps not yet published to the peers; retried before the next read. */
  private readonly unpublished = new Set<string>();
  private probing = false;
  private errorCount = 0;
  private errorsSinceLog = 0;
  private lastErrorLogAt = Number.NEGATIVE_INFINITY;
  private lastError: string | null = null;

  constructor(private readonly opts: CacheServiceOptions) {
    this.store = opts.store;
    this.backend = opts.store.kind;
    this.memory = opts.store.kind === 'memory' ? (opts.store as MemoryStore) : undefined;
    this.l1 = opts.store.kind === 'redis' ? opts.l1 : undefined;
    this.peers = this.memory !== undefined ? opts.peers : undefined;
    this.now = opts.now ?? Date.now;
    this.breaker = new CircuitBreaker({
      failureThreshold: opts.breakerFailures,
      cooldownMs: opts.breakerCooldownMs,
      now: this.now,
    });
  }

  /** The TTL of a prefix, s. */
  ttlOf(prefix: string): number {
    return this.opts.prefixTtlS?.[prefix] ?? this.opts.defaultTtlS;
  }

  /** `ov:cache:v1:<prefix>:<hash>`. */
  key(prefix: string, args: unknown): string {
    assertPrefix(prefix);
    return cacheKey(prefix, args);
  }

  get circuitState(): CircuitState {
    return this.breaker.state;
  }

  /** A cached value, or undefined on a miss (or when the cache is unavailable). */
  get<T>(prefix: string, args: unknown, deps: readonly string[] = []): Promise<T | undefined> {
    let key: string;
    try {
      key = this.key(prefix, args);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const c = this.counter(prefix);
    const genKeys = deps.length === 0 ? NO_DEPS : deps.map(genKey);
    this.followPeers();
    return this.lookup(key, genKeys, c, true).then((r) => (r.kind === 'hit' ? (r.entry.v as T) : undefined));
  }

  /** Stores a value computed now (its dependencies' current generations are read first). */
  async set<T>(prefix: string, args: unknown, value: T, opts: CacheOptions<T> = {}): Promise<void> {
    const key = this.key(prefix, args);
    const c = this.counter(prefix);
    const genKeys = (opts.deps ?? []).map(genKey);
    if (!this.admit()) return;
    try {
      const gens = await this.guard(() => this.store.ensureGenerations(genKeys));
      await this.store_(key, prefix, value, gens, opts, c);
    } catch (err) {
      this.onError(err, c);
    }
  }

  /** Deletes the entry of (prefix, args); true when there was one. */
  async delete(prefix: string, args: unknown): Promise<boolean> {
    return this.deleteKey(this.key(prefix, args));
  }

  /**
   * Deletes one full key inside the namespace; true when it existed. Unlike reads this
   * reports a store failure by throwing, since an operator asked for it.
   */
  async deleteKey(key: string): Promise<boolean> {
    if (!key.startsWith(NAMESPACE)) throw new TypeError('key outside the cache namespace');
    this.epoch++;
    this.l1?.delete([key]);
    const n = await this.store.delete([key]);
    await this.store.announce({ t: 'del', k: [key] });
    return n > 0;
  }

  /**
   * The value of `fn()` through the cache: a hit returns the stored value; concurrent
   * misses of one key in this process share one call (single-flight); a store failure
   * falls back to `fn()`. Values go through JSON and come back deeply frozen.
   */
  getOrSet<T>(prefix: string, args: unknown, fn: () => Promise<T>, opts: CacheOptions<T> = {}): Promise<T> {
    const trace = this.opts.traceRead;
    if (!trace) return this.readThrough(prefix, args, fn, opts);
    return trace(prefix, (miss) =>
      this.readThrough(
        prefix,
        args,
        () => {
          miss();
          return fn();
        },
        opts,
      ),
    );
  }

  private async readThrough<T>(
    prefix: string,
    args: unknown,
    fn: () => Promise<T>,
    opts: CacheOptions<T>,
  ): Promise<T> {
    const c = this.counter(prefix);
    let key: string;
    try {
      key = this.key(prefix, args);
    } catch (err) {
      // Arguments without a stable key (or a bad prefix) are a bug to log, not a failed request.
      this.onError(err, c);
      c.bypassed++;
      return fn();
    }
    const genKeys = (opts.deps ?? []).map(genKey);
    this.followPeers();
    const fast = this.fastRead(key, genKeys, c);
    if (fast !== undefined) return fast.v as T;
    const flight = this.flights.get(key);
    if (flight !== undefined && flight.epoch === this.epoch) {
      c.coalesced++;
      return flight.promise as Promise<T>;
    }
    const promise = this.lookupOrFill(key, prefix, genKeys, fn, opts, c);
    const mine: Flight = { promise, epoch: this.epoch };
    this.flights.set(key, mine);
    const done = () => {
      if (this.flights.get(key) === mine) this.flights.delete(key);
    };
    promise.then(done, done);
    return promise;
  }

  /** `fn` with its results cached under `prefix`, keyed by its arguments. */
  wrap<A extends unknown[], T>(
    prefix: string,
    ttlS: number | undefined,
    fn: (...args: A) => Promise<T>,
    opts: WrapOptions<A, T> = {},
  ): (...args: A) => Promise<T> {
    assertPrefix(prefix);
    const { deps, ...rest } = opts;
    return (...args: A) =>
      this.getOrSet(prefix, args, () => fn(...args), {
        ...rest,
        ...(ttlS !== undefined ? { ttlS } : {}),
        ...(deps ? { deps: deps(...args) } : {}),
      });
  }

  /** Curried `wrap`: `cache.cached('script', 600)(loadScript)`. */
  cached(prefix: string, ttlS?: number) {
    return <A extends unknown[], T>(fn: (...args: A) => Promise<T>, opts: WrapOptions<A, T> = {}) =>
      this.wrap(prefix, ttlS, fn, opts);
  }

  /**
   * Makes every entry depending on these generations unreachable: one O(1) counter bump
   * each, no key scan. Never throws: when the store is unreachable the bump is kept and
   * caching is bypassed in this process until it is replayed.
   */
  async invalidate(...names: string[]): Promise<void> {
    if (names.length === 0) return;
    const genKeys = names.map(genKey);
    this.epoch++;
    this.l1?.forgetGens(genKeys);
    if (this.admit()) {
      try {
        const values = await this.guard(() => this.store.bumpGenerations(genKeys));
        this.l1?.applyBump(genKeys, values);
        this.epoch++;
        if (this.peers) this.publish(genKeys);
        return;
      } catch (err) {
        this.onError(err);
      }
    }
    for (const k of genKeys) this.pending.add(k);
    this.l1?.clear();
    this.epoch++;
  }

  /** Deletes entries matching a glob inside the namespace (`script:*`); returns how many went. Throws TypeError on a bad pattern. */
  async deletePattern(pattern: string): Promise<number> {
    const glob = namespacedPattern(pattern);
    if (glob === null) throw new TypeError('pattern is not acceptable');
    this.epoch++;
    this.l1?.clear();
    const n = await this.store.deleteMatching(glob);
    await this.store.announce({ t: 'clear' });
    return n;
  }

  /** Deletes every entry of a prefix. */
  async deletePrefix(prefix: string): Promise<number> {
    assertPrefix(prefix);
    return this.deletePattern(`${prefix}:*`);
  }

  /** Removes the cache namespace and nothing else (incremental SCAN + UNLINK); returns how many keys went. */
  async flush(): Promise<number> {
    this.epoch++;
    this.l1?.clear();
    const n = await this.store.deleteMatching(`${NAMESPACE}*`);
    await this.store.announce({ t: 'clear' });
    return n;
  }

  /**
   * Each prefix's reads since the process started, and their latencies by tier, as they stand:
   * for metrics at every scrape, without asking the store anything (unlike stats()).
   */
  prefixReads(): ReadonlyMap<string, PrefixReads> {
    return this.counters;
  }

  async stats(): Promise<CacheStats> {
    const prefixes: Record<string, PrefixStats> = {};
    const total = zeroCounts();
    for (const [name, c] of this.counters) {
      prefixes[name] = {
        hits: c.hits,
        l1_hits: c.l1_hits,
        misses: c.misses,
        hit_rate: ratio(c.hits, c.misses),
        stale_served: c.stale_served,
        sets: c.sets,
        errors: c.errors,
        bypassed: c.bypassed,
        coalesced: c.coalesced,
        get_p50_us: round(c.latency.percentile(50)),
        get_p99_us: round(c.latency.percentile(99)),
      };
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += c[k];
    }
    let server: Awaited<ReturnType<CacheStore['serverStats']>> = null;
    let namespaceKeys: number | null = null;
    // admit() also starts the probe of an open circuit whose cooldown is over.
    if (this.admit()) {
      try {
        server = await this.store.serverStats();
        namespaceKeys = await this.store.countNamespace();
      } catch (err) {
        this.onError(err);
      }
    }
    // Memory mode (or Redis unreachable): the same shape from our own counters.
    const keyspace = server ?? {
      keyspace_hits: total.hits,
      keyspace_misses: total.misses,
      total_keys: this.memory?.size ?? 0,
    };
    const keyspaceHits = keyspace.keyspace_hits;
    const keyspaceMisses = keyspace.keyspace_misses;
    return {
      backend: this.backend,
      keyspace_scope: server ? 'redis_server' : 'process',
      keyspace_hits: keyspaceHits,
      keyspace_misses: keyspaceMisses,
      hit_rate: ratio(keyspaceHits, keyspaceMisses),
      total_keys: keyspace.total_keys,
      namespace: NAMESPACE,
      namespace_keys: namespaceKeys,
      circuit: this.breaker.state,
      circuit_opened: this.breaker.opened,
      pending_invalidations: this.pending.size,
      unpublished_invalidations: this.unpublished.size,
      errors: this.errorCount,
      last_error: this.lastError,
      totals: {
        ...total,
        hit_rate: ratio(total.hits, total.misses),
        get_p50_us: null,
        get_p99_us: null,
      },
      prefixes,
      l1: {
        enabled: this.l1 !== undefined,
        connected: this.l1?.connected ?? false,
        entries: this.l1?.size ?? 0,
        max_entries: this.l1?.maxEntries ?? 0,
        hits: this.l1?.hits ?? 0,
        misses: this.l1?.misses ?? 0,
        evictions: this.l1?.evictions ?? 0,
        bus_messages: this.l1?.messages ?? 0,
      },
    };
  }

  async close(): Promise<void> {
    await this.opts.onClose?.();
    this.peers?.close();
    await this.store.close();
  }

  // --- internals ---------------------------------------------------------------------------

  private counter(prefix: string): PrefixCounters {
    let c = this.counters.get(prefix);
    if (c === undefined) {
      c = {
        ...zeroCounts(),
        latency: new LatencySampler(),
        timing: { l1: new LatencyHistogram(), store: new LatencyHistogram() },
      };
      this.counters.set(prefix, c);
    }
    return c;
  }

  /** Records a read that began at `t0` (performance.now()) in the prefix's sampler and histogram. */
  private timed(c: PrefixCounters, tier: 'l1' | 'store', t0: number): void {
    const ms = performance.now() - t0;
    c.latency.add(ms * 1000);
    c.timing[tier].observe(ms / 1000);
  }

  /** Publishes bumps to the peers; what cannot be published now is retried before the next read. */
  private publish(genKeys: readonly string[]): void {
    try {
      (this.peers as GenerationPeers).publish(genKeys);
    } catch (err) {
      for (const k of genKeys) this.unpublished.add(k);
      this.onError(err);
    }
  }

  /**
   * Applies the generation bumps other processes published (memory stores over a shared
   * database), and retries our own unpublished ones. Synchronous and throttled by the log
   * (a clock comparison between checks), so the memory fast path stays in this tick.
   */
  private followPeers(): void {
    const peers = this.peers;
    if (peers === undefined) return;
    if (this.unpublished.size > 0) {
      const keys = [...this.unpublished];
      this.unpublished.clear();
      this.publish(keys);
    }
    let keys: readonly string[] | null;
    try {
      keys = peers.poll();
    } catch (err) {
      // Unread bumps stay in the log: the next check reads them.
      this.onError(err);
      return;
    }
    if (keys === null) {
      (this.memory as MemoryStore).clear();
      this.epoch++;
    } else if (keys.length > 0) {
      (this.memory as MemoryStore).bumpSync(keys);
      this.epoch++;
    }
  }

  /** A fresh entry from the L1 or the memory store without leaving this tick, or undefined. */
  private fastRead(key: string, genKeys: readonly string[], c: PrefixCounters): CacheEntry | undefined {
    if (this.pending.size > 0) return undefined;
    const t0 = performance.now();
    let entry: CacheEntry | undefined | null;
    if (this.l1 !== undefined) {
      if (this.breaker.state !== 'closed') return undefined;
      entry = this.l1.get(key, genKeys);
      if (entry !== undefined && entry.f > this.now()) {
        c.hits++;
        c.l1_hits++;
        this.timed(c, 'l1', t0);
        return entry;
      }
      return undefined;
    }
    if (this.memory !== undefined) {
      entry = this.memory.readSync(key);
      if (entry === null || entry.f <= this.now()) return undefined;
      for (let i = 0; i < genKeys.length; i++) {
        if (this.memory.genSync(genKeys[i] as string) !== entry.g[i]) return undefined;
      }
      c.hits++;
      this.timed(c, 'store', t0);
      return entry;
    }
    return undefined;
  }

  /**
   * Reads through L1 and the store. `hit`: fresh and every generation matches. `stale`:
   * generations match but freshness ran out (servable under stale-while-revalidate).
   * `miss` carries the current generations (null where unseeded). `down`: store unavailable.
   */
  private lookup(
    key: string,
    genKeys: readonly string[],
    c: PrefixCounters,
    countMiss: boolean,
  ): Promise<Lookup> {
    const fast = this.fastRead(key, genKeys, c);
    if (fast !== undefined) {
      return Promise.resolve({ kind: 'hit', entry: fast, gens: fast.g, seq: this.l1?.seq ?? 0 });
    }
    if (!this.admit() || this.pending.size > 0) {
      c.bypassed++;
      return Promise.resolve(DOWN);
    }
    const seq = this.l1?.seq ?? 0;
    const t0 = performance.now();
    // The hot path of a store hit: no async frames, breaker bookkeeping inline rather than through guard().
    return this.store.read(key, genKeys).then(
      (res) => {
        this.breaker.success();
        this.timed(c, 'store', t0);
        return this.judge(key, genKeys, res, c, countMiss, seq);
      },
      (err: unknown) => {
        this.breaker.failure();
        this.onError(err, c);
        return DOWN;
      },
    );
  }

  /** Classifies what the store returned: a hit, a stale entry, or a miss with the current generations. */
  private judge(
    key: string,
    genKeys: readonly string[],
    res: { entry: CacheEntry | null; gens: (string | null)[] },
    c: PrefixCounters,
    countMiss: boolean,
    seq: number,
  ): Lookup {
    this.l1?.putGens(genKeys, res.gens, seq);
    const e = res.entry;
    let valid = e !== null;
    for (let i = 0; valid && i < res.gens.length; i++) {
      const g = res.gens[i];
      valid = g !== null && g === e?.g[i];
    }
    if (valid && e !== null) {
      // A parsed entry is this caller's own; it is frozen only when the L1 will share it.
      const entry = this.l1 ? deepFreeze(e) : e;
      if (entry.f > this.now()) {
        c.hits++;
        this.l1?.put(key, entry, entry.f - this.now(), seq);
        return { kind: 'hit', entry, gens: res.gens, seq };
      }
      return { kind: 'stale', entry, gens: res.gens, seq };
    }
    if (countMiss) c.misses++;
    return { kind: 'miss', gens: res.gens, seq };
  }

  private async lookupOrFill<T>(
    key: string,
    prefix: string,
    genKeys: readonly string[],
    fn: () => Promise<T>,
    opts: CacheOptions<T>,
    c: PrefixCounters,
  ): Promise<T> {
    const r = await this.lookup(key, genKeys, c, true);
    if (r.kind === 'hit') return r.entry.v as T;
    if (r.kind === 'down') return fn();
    if (r.kind === 'stale') {
      if (opts.staleWhileRevalidateS !== undefined && opts.staleWhileRevalidateS > 0) {
        c.stale_served++;
        c.hits++;
        this.refreshInBackground(key, prefix, r.gens as string[], fn, opts, c);
        return r.entry.v as T;
      }
      c.misses++;
    }
    let gens: readonly (string | null)[] = r.gens;
    if (gens.some((g) => g === null)) {
      try {
        gens = await this.guard(() => this.store.ensureGenerations(genKeys));
        this.l1?.putGens(genKeys, gens, r.seq);
      } catch (err) {
        this.onError(err, c);
        return fn();
      }
    }
    if (opts.lock) return this.fillLocked(key, prefix, genKeys, gens as string[], fn, opts, c, r.seq);
    const value = await fn();
    return this.storeQuietly(key, prefix, value, gens as string[], opts, c, r.seq);
  }

  /** Computes under a cross-process lock; others wait for the holder's result up to `waitMs`. */
  private async fillLocked<T>(
    key: string,
    prefix: string,
    genKeys: readonly string[],
    gens: string[],
    fn: () => Promise<T>,
    opts: CacheOptions<T>,
    c: PrefixCounters,
    seq: number,
  ): Promise<T> {
    const lockOpts = typeof opts.lock === 'object' ? opts.lock : {};
    const waitMs = lockOpts.waitMs ?? this.opts.lockWaitMs;
    const lockKey = `${LOCK_PREFIX}${key.slice(NAMESPACE.length)}`;
    const token = randomUUID();
    let held = false;
    try {
      held = await this.guard(() =>
        this.store.tryLock(lockKey, token, lockOpts.ttlMs ?? Math.max(waitMs * 2, 1000)),
      );
    } catch (err) {
      this.onError(err, c);
      return fn();
    }
    if (!held) {
      const deadline = this.now() + waitMs;
      while (this.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        const r = await this.lookup(key, genKeys, c, false);
        if (r.kind === 'hit') return r.entry.v as T;
        if (r.kind === 'down') break;
      }
      return fn();
    }
    try {
      const value = await fn();
      return await this.storeQuietly(key, prefix, value, gens, opts, c, seq);
    } finally {
      await this.guard(() => this.store.unlock(lockKey, token)).catch((err: unknown) => this.onError(err, c));
    }
  }

  private refreshInBackground<T>(
    key: string,
    prefix: string,
    gens: string[],
    fn: () => Promise<T>,
    opts: CacheOptions<T>,
    c: PrefixCounters,
  ): void {
    if (this.refreshing.has(key)) return;
    this.refreshing.add(key);
    const seq = this.l1?.seq ?? 0;
    fn()
      .then((v) => this.storeQuietly(key, prefix, v, gens, opts, c, seq))
      .catch((err: unknown) =>
        this.opts.logger.warn(
          { err, key },
          'background cache refresh failed; the stale entry expires on its own',
        ),
      )
      .finally(() => this.refreshing.delete(key));
  }

  /** Stores a computed value (unless it is empty and negative caching is off) and returns it frozen. */
  private async storeQuietly<T>(
    key: string,
    prefix: string,
    value: T,
    gens: string[],
    opts: CacheOptions<T>,
    c: PrefixCounters,
    seq: number,
  ): Promise<T> {
    const neg = opts.negative;
    let ttlS = opts.ttlS ?? this.ttlOf(prefix);
    const isEmpty = typeof neg === 'object' && neg.isEmpty ? neg.isEmpty : defaultIsEmpty;
    if (isEmpty(value)) {
      if (!neg) return value;
      ttlS = (typeof neg === 'object' ? neg.ttlS : undefined) ?? this.opts.negativeTtlS;
    }
    try {
      return await this.store_(key, prefix, value, gens, opts, c, ttlS, seq);
    } catch (err) {
      this.onError(err, c);
      return value;
    }
  }

  private async store_<T>(
    key: string,
    prefix: string,
    value: T,
    gens: readonly string[],
    opts: CacheOptions<T>,
    c: PrefixCounters,
    ttlS = opts.ttlS ?? this.ttlOf(prefix),
    seq = this.l1?.seq ?? 0,
  ): Promise<T> {
    const ttlMs = ttlS * 1000;
    const graceMs = (opts.staleWhileRevalidateS ?? 0) * 1000;
    const json = JSON.stringify({ v: value, g: gens, f: this.now() + ttlMs } satisfies CacheEntry);
    const entry = deepFreeze(JSON.parse(json) as CacheEntry);
    if (!this.admit()) return entry.v as T;
    await this.guard(() => this.store.write(key, entry, json, ttlMs + graceMs));
    c.sets++;
    this.l1?.put(key, entry, ttlMs, seq);
    return entry.v as T;
  }

  /** Whether the store may be called now; starts the probe when an open circuit's cooldown is over. */
  private admit(): boolean {
    const verdict = this.breaker.admit();
    if (verdict === 'call') {
      if (this.pending.size > 0) void this.probe();
      return true;
    }
    if (verdict === 'probe') void this.probe();
    return false;
  }

  /**
   * Pings the store and replays pending invalidations; closes the circuit only if both
   * succeed. Also runs with the circuit closed when invalidations are pending.
   */
  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await this.store.ping();
      if (this.pending.size > 0) {
        const keys = [...this.pending];
        const values = await this.store.bumpGenerations(keys);
        for (const k of keys) this.pending.delete(k);
        this.l1?.applyBump(keys, values);
      }
      this.epoch++;
      const wasOpen = this.breaker.state !== 'closed';
      this.breaker.probeResult(true);
      if (wasOpen) this.opts.logger.info({}, 'cache store reachable again; circuit closed');
    } catch (err) {
      if (this.breaker.state === 'closed') this.breaker.failure();
      else this.breaker.probeResult(false);
      this.onError(err);
    } finally {
      this.probing = false;
    }
  }

  /** Runs a store call, feeding the circuit breaker. */
  private async guard<R>(op: () => Promise<R>): Promise<R> {
    if (this.breaker.state !== 'closed') throw new CircuitOpenError();
    try {
      const r = await op();
      this.breaker.success();
      return r;
    } catch (err) {
      this.breaker.failure();
      throw err;
    }
  }

  /** Counts an error and logs at most once per interval, with the count since the last line. */
  private onError(err: unknown, c?: PrefixCounters): void {
    this.errorCount++;
    this.errorsSinceLog++;
    if (c) c.errors++;
    this.lastError = err instanceof Error ? err.message : String(err);
    const now = this.now();
    if (now - this.lastErrorLogAt >= this.opts.errorLogIntervalMs) {
      this.opts.logger.warn(
        { err: this.lastError, errors: this.errorsSinceLog, circuit: this.breaker.state },
        'cache unavailable; answering from the source',
      );
      this.lastErrorLogAt = now;
      this.errorsSinceLog = 0;
    }
  }
}

const round = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);
