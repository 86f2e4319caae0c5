import { GEN_PREFIX, NAMESPACE, globToRegExp, seedGeneration } from './cache-key.js';
import type { CacheEntry, CacheStore, ServerStats } from './cache-store.js';

interface Slot {
  entry: CacheEntry;
  expiresAt: number;
}

export interface MemoryStoreOptions {
  /** Entries kept before the least recently used goes (generations are bounded separately, by the same number). */
  maxEntries: number;
  /** Clock, ms (tests). */
  now?: () => number;
}

/**
 * The embedded-mode store: an LRU map with per-entry expiry, holding frozen values
 * (they went through JSON once, so it behaves like Redis). Generations are a second
 * bounded map; an evicted generation re-seeds at random, which only causes misses.
 */
export class MemoryStore implements CacheStore {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Slot>();
  private readonly gens = new Map<string, string>();
  private readonly locks = new Map<string, { token: string; expiresAt: number }>();
  private readonly now: () => number;
  evictions = 0;

  constructor(private readonly opts: MemoryStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async read(key: string, genKeys: readonly string[]) {
    return { entry: this.readSync(key), gens: genKeys.map((k) => this.gens.get(k) ?? null) };
  }

  /** Synchronous read, for CacheService's memory fast path. */
  readSync(key: string): CacheEntry | null {
    const slot = this.entries.get(key);
    if (!slot) return null;
    if (slot.expiresAt <= this.now()) {
      this.entries.delete(key);
      return null;
    }
    // Refresh recency: Map iteration order is insertion order, so the first key is the LRU.
    this.entries.delete(key);
    this.entries.set(key, slot);
    return slot.entry;
  }

  genSync(genKey: string): string | undefined {
    return this.gens.get(genKey);
  }

  async write(key: string, entry: CacheEntry, _json: string, ttlMs: number): Promise<void> {
    this.entries.delete(key);
    this.entries.set(key, { entry, expiresAt: this.now() + ttlMs });
    this.evict(this.entries);
  }

  async ensureGenerations(genKeys: readonly string[]): Promise<string[]> {
    return genKeys.map((k) => {
      let v = this.gens.get(k);
      if (v === undefined) {
        v = seedGeneration();
        this.gens.set(k, v);
        this.evict(this.gens);
      }
      return v;
    });
  }

  async bumpGenerations(genKeys: readonly string[]): Promise<string[]> {
    return this.bumpSync(genKeys);
  }

  /** Synchronous bump, for generations another process bumped (CacheService applies them before a read). */
  bumpSync(genKeys: readonly string[]): string[] {
    return genKeys.map((k) => {
      const cur = this.gens.get(k);
      const v = cur === undefined ? seedGeneration() : String(Number(cur) + 1);
      this.gens.delete(k);
      this.gens.set(k, v);
      this.evict(this.gens);
      return v;
    });
  }

  async delete(keys: readonly string[]): Promise<number> {
    let n = 0;
    for (const k of keys) {
      if (k.startsWith(GEN_PREFIX)) {
        if (this.gens.delete(k)) n++;
      } else if (this.entries.has(k)) {
        const live = this.readSync(k) !== null;
        this.entries.delete(k);
        if (live) n++;
      }
    }
    return n;
  }

  async deleteMatching(glob: string): Promise<number> {
    if (!glob.startsWith(NAMESPACE)) throw new Error('pattern outside the cache namespace');
    const re = globToRegExp(glob);
    const now = this.now();
    let n = 0;
    for (const [k, slot] of this.entries) {
      if (re.test(k)) {
        this.entries.delete(k);
        if (slot.expiresAt > now) n++;
      }
    }
    for (const k of this.gens.keys()) {
      if (re.test(k)) {
        this.gens.delete(k);
        n++;
      }
    }
    return n;
  }

  async countNamespace(): Promise<number> {
    return this.entries.size + this.gens.size;
  }

  async serverStats(): Promise<ServerStats | null> {
    return null;
  }

  async tryLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    const cur = this.locks.get(key);
    if (cur && cur.expiresAt > this.now()) return false;
    this.locks.set(key, { token, expiresAt: this.now() + ttlMs });
    return true;
  }

  async unlock(key: string, token: string): Promise<void> {
    if (this.locks.get(key)?.token === token) this.locks.delete(key);
  }

  async announce(): Promise<void> {}

  async ping(): Promise<void> {}

  /** Drops every entry and generation (generations re-seed at random, so no old entry validates again). */
  clear(): void {
    this.entries.clear();
    this.gens.clear();
  }

  async close(): Promise<void> {
    this.clear();
  }

  private evict(map: Map<string, unknown>): void {
    while (map.size > this.opts.maxEntries) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
      this.evictions++;
    }
  }
}
