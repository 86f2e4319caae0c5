import type { Redis } from 'ioredis';
import { NAMESPACE } from './cache-key.js';
import type { CacheEntry } from './cache-store.js';

/** Pub/sub channel that keeps every process's L1 coherent. */
export const BUS_CHANNEL = `${NAMESPACE}_bus`;

/** What travels on the bus: generation bumps, deleted keys, or "clear everything". */
export interface BusMessage {
  /** Sending instance; an instance ignores its own messages (it applied them already). */
  i: string;
  t: 'gen' | 'del' | 'clear';
  k?: string[];
  v?: string[];
}

export interface L1Options {
  maxEntries: number;
  /** Longest an entry or a generation value is trusted, ms: bounds staleness if a bus message is lost. */
  ttlMs: number;
  now?: () => number;
}

/**
 * A small in-process LRU in front of Redis. An entry is served only while the bus is
 * connected and every generation it depends on is known locally (from Redis within
 * `ttlMs`, or from a bus message) and equal to the one it was computed with.
 */
export class L1Cache {
  private readonly entries = new Map<string, { entry: CacheEntry; expiresAt: number }>();
  private readonly gens = new Map<string, { value: string; expiresAt: number }>();
  private readonly now: () => number;
  /** Advances with every invalidation seen; a read that saw it move does not fill L1. */
  seq = 0;
  /** True while the bus subscription is live; L1 is bypassed otherwise. */
  connected = false;
  hits = 0;
  misses = 0;
  evictions = 0;
  messages = 0;

  constructor(private readonly opts: L1Options) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }
  get maxEntries(): number {
    return this.opts.maxEntries;
  }

  /** A valid entry, or undefined (expired, unknown generation, or a generation that moved). */
  get(key: string, genKeys: readonly string[]): CacheEntry | undefined {
    if (!this.connected) return undefined;
    const slot = this.entries.get(key);
    if (slot === undefined) {
      this.misses++;
      return undefined;
    }
    const now = this.now();
    if (slot.expiresAt <= now) {
      this.entries.delete(key);
      this.misses++;
      return undefined;
    }
    for (let i = 0; i < genKeys.length; i++) {
      const g = this.gens.get(genKeys[i] as string);
      if (g === undefined || g.expiresAt <= now || g.value !== slot.entry.g[i]) {
        this.misses++;
        return undefined;
      }
    }
    this.hits++;
    return slot.entry;
  }

  /** Stores an entry read or computed while `seqAtStart` was current; skipped when an invalidation came since. */
  put(key: string, entry: CacheEntry, ttlMs: number, seqAtStart: number): void {
    if (!this.connected || seqAtStart !== this.seq) return;
    this.entries.delete(key);
    this.entries.set(key, { entry, expiresAt: this.now() + Math.min(ttlMs, this.opts.ttlMs) });
    while (this.entries.size > this.opts.maxEntries) {
      this.entries.delete(this.entries.keys().next().value as string);
      this.evictions++;
    }
  }

  /** Records generation values read from Redis, unless an invalidation came since the read began. */
  putGens(genKeys: readonly string[], values: readonly (string | null)[], seqAtStart: number): void {
    if (seqAtStart !== this.seq) return;
    this.setGens(genKeys, values);
  }

  /** Applies a bump (ours or another process's): new values win at once. */
  applyBump(genKeys: readonly string[], values: readonly (string | null)[]): void {
    this.seq++;
    this.setGens(genKeys, values);
  }

  /** Forgets generations before a bump completes, so nothing depending on them is served meanwhile. */
  forgetGens(genKeys: readonly string[]): void {
    this.seq++;
    for (const k of genKeys) this.gens.delete(k);
  }

  delete(keys: readonly string[]): void {
    this.seq++;
    for (const k of keys) this.entries.delete(k);
  }

  clear(): void {
    this.seq++;
    this.entries.clear();
    this.gens.clear();
  }

  /** Applies a bus message from another instance. */
  apply(msg: BusMessage): void {
    this.messages++;
    if (msg.t === 'gen' && msg.k && msg.v) this.applyBump(msg.k, msg.v);
    else if (msg.t === 'del' && msg.k) this.delete(msg.k);
    else this.clear();
  }

  private setGens(genKeys: readonly string[], values: readonly (string | null)[]): void {
    const expiresAt = this.now() + this.opts.ttlMs;
    for (let i = 0; i < genKeys.length; i++) {
      const k = genKeys[i] as string;
      const v = values[i];
      if (v === null || v === undefined) this.gens.delete(k);
      else {
        this.gens.delete(k);
        this.gens.set(k, { value: v, expiresAt });
      }
    }
    // Generations are bounded like entries; a forgotten one only costs a round trip.
    while (this.gens.size > this.opts.maxEntries * 2)
      this.gens.delete(this.gens.keys().next().value as string);
  }
}

/**
 * Subscribes an L1 to the bus on a dedicated connection. While the subscription is down
 * the L1 is cleared and bypassed; it is cleared again when the subscription comes back,
 * since messages may have been missed meanwhile.
 */
export function connectBus(
  sub: Redis,
  l1: L1Cache,
  instanceId: string,
  onError: (err: Error) => void,
): { close(): Promise<void> } {
  const down = () => {
    if (l1.connected) {
      l1.connected = false;
      l1.clear();
    }
  };
  sub.on('message', (channel: string, raw: string) => {
    if (channel !== BUS_CHANNEL) return;
    let msg: BusMessage;
    try {
      msg = JSON.parse(raw) as BusMessage;
    } catch (err) {
      // An unreadable message could have been an invalidation: drop everything to stay correct.
      onError(err as Error);
      l1.clear();
      return;
    }
    if (msg.i !== instanceId) l1.apply(msg);
  });
  sub.on('ready', () => {
    sub.subscribe(BUS_CHANNEL).then(
      () => {
        l1.clear();
        l1.connected = true;
      },
      (err: Error) => {
        down();
        onError(err);
      },
    );
  });
  sub.on('close', down);
  sub.on('end', down);
  sub.on('error', (err: Error) => {
    down();
    onError(err);
  });
  return {
    async close() {
      down();
      sub.disconnect();
    },
  };
}
