/**
 * One contract suite over every store: memory, Redis, and Redis with an L1.
 * Redis runs on a server of this file's own, so flushes here never touch other files' keys.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NAMESPACE } from '../../src/cache/cache-key.js';
import type { CacheService } from '../../src/cache/cache.service.js';
import { redisUrl } from '../support/backends.js';
import { type RunningService, startRedis } from '../support/services.js';
import { type CacheKind, cacheKinds, cacheReady, makeCache, sleep } from './helpers.js';

let server: RunningService | undefined;
beforeAll(async () => {
  if (redisUrl() !== null) server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});

describe.each(cacheKinds())('cache contract: %s', (kind: CacheKind) => {
  let cache: CacheService;
  let raw: Redis | undefined;

  beforeEach(async () => {
    cache = makeCache(kind, server?.url ?? null);
    await cacheReady(cache);
    await cache.flush();
    if (kind !== 'memory') raw = new Redis(server!.url);
  });
  afterEach(async () => {
    await cache.close();
    raw?.disconnect();
  });

  it('stores JSON values under ov:cache:v1:<prefix>:<hash>; shared copies are frozen', async () => {
    const value = { title: '봄 캠페인 🌸', n: 3, tags: ['a', 'b'], nested: { ok: true } };
    await cache.set('script', [1], value);
    const got = await cache.get<typeof value>('script', [1]);
    expect(got).toEqual(value);
    if (kind === 'redis') {
      // Each Redis read parses its own copy: changing it affects nobody else.
      (got as { n: number }).n = 99;
      expect((await cache.get<typeof value>('script', [1]))!.n).toBe(3);
    } else {
      // Memory and L1 share one copy between callers, so it is frozen.
      expect(Object.isFrozen(got)).toBe(true);
      expect(Object.isFrozen(got!.nested)).toBe(true);
    }
    expect(cache.key('script', [1])).toMatch(/^ov:cache:v1:script:[0-9a-f]{32}$/);
    if (raw) expect(await raw.exists(cache.key('script', [1]))).toBe(1);
    expect(await cache.get('script', [2])).toBeUndefined();
  });

  it('expires entries after their TTL', async () => {
    await cache.set('ttl_test', ['k'], 'v', { ttlS: 0.3 });
    expect(await cache.get('ttl_test', ['k'])).toBe('v');
    await sleep(450);
    expect(await cache.get('ttl_test', ['k'])).toBeUndefined();
    if (raw) expect(await raw.exists(cache.key('ttl_test', ['k']))).toBe(0);
  });

  it('hashes arguments stably: key order is irrelevant, values are typed', async () => {
    await cache.set('hash_test', [{ a: 1, b: { x: '한글', y: [1, 2] } }], 'same');
    expect(await cache.get('hash_test', [{ b: { y: [1, 2], x: '한글' }, a: 1 }])).toBe('same');
    expect(await cache.get('hash_test', [{ a: '1', b: { x: '한글', y: [1, 2] } }])).toBeUndefined();
  });

  it('runs 100 concurrent misses of one key once (single-flight)', async () => {
    let calls = 0;
    const fn = async () => {
      calls++;
      await sleep(30);
      return { computed: true };
    };
    const results = await Promise.all(
      Array.from({ length: 100 }, () => cache.getOrSet('flight', [42], fn, { ttlS: 60 })),
    );
    expect(calls).toBe(1);
    expect(results.every((r) => r.computed)).toBe(true);
    // Now cached: no further calls.
    await cache.getOrSet('flight', [42], fn, { ttlS: 60 });
    expect(calls).toBe(1);
  });

  it('propagates errors of the source function and caches nothing for them', async () => {
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error('source failed');
    };
    await expect(cache.getOrSet('errs', [1], failing)).rejects.toThrow('source failed');
    await expect(cache.getOrSet('errs', [1], failing)).rejects.toThrow('source failed');
    expect(calls).toBe(2);
  });

  it('answers from the source when arguments have no stable key, and counts it', async () => {
    expect(await cache.getOrSet('unkeyable', [new Map([[1, 2]])], async () => 'from source')).toBe(
      'from source',
    );
    expect(await cache.getOrSet('Bad Prefix', [1], async () => 'still')).toBe('still');
    const s = await cache.stats();
    expect(s.prefixes.unkeyable!.errors).toBe(1);
    expect(s.prefixes.unkeyable!.bypassed).toBe(1);
  });

  it('invalidates by generation in O(1): dependents miss, others still hit', async () => {
    let version = 1;
    const read = (id: number) =>
      cache.getOrSet('gen_test', [id], async () => ({ id, version }), { deps: [`content:${id}`] });
    expect(await read(1)).toEqual({ id: 1, version: 1 });
    expect(await read(2)).toEqual({ id: 2, version: 1 });
    version = 2;
    expect((await read(1)).version).toBe(1); // cached
    await cache.invalidate('content:1');
    expect((await read(1)).version).toBe(2);
    expect((await read(2)).version).toBe(1); // untouched
    const s = await cache.stats();
    expect(s.prefixes.gen_test!.hits).toBeGreaterThanOrEqual(2);
  });

  it('never lets a read that starts after an invalidation join a flight that began before it', async () => {
    let version = 1;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = async () => {
      const v = version;
      await gate;
      return v;
    };
    const opts = { deps: ['content:9'] };
    const before = cache.getOrSet('race', [9], slow, opts);
    await sleep(5);
    version = 2;
    await cache.invalidate('content:9');
    const after = cache.getOrSet('race', [9], async () => version, opts);
    release();
    expect(await before).toBe(1);
    expect(await after).toBe(2);
    expect(await cache.getOrSet('race', [9], async () => -1, opts)).toBe(2);
  });

  it('wrap and cached key by arguments and compute dependencies from them', async () => {
    let calls = 0;
    const load = cache.wrap(
      'wrapped',
      60,
      async (id: number, opts: { full: boolean }) => {
        calls++;
        return { id, full: opts.full };
      },
      { deps: (id) => [`content:${id}`] },
    );
    expect(await load(5, { full: true })).toEqual({ id: 5, full: true });
    expect(await load(5, { full: true })).toEqual({ id: 5, full: true });
    expect(calls).toBe(1);
    await load(5, { full: false });
    expect(calls).toBe(2);
    await cache.invalidate('content:5');
    await load(5, { full: true });
    expect(calls).toBe(3);
    const loadCurried = cache.cached('curried', 60)(async (x: string) => `${x}!`);
    expect(await loadCurried('a')).toBe('a!');
  });

  it('caches empty results only with negative caching, and then for the short TTL', async () => {
    let calls = 0;
    const empty = async () => {
      calls++;
      return [] as string[];
    };
    await cache.getOrSet('neg', ['off'], empty);
    await cache.getOrSet('neg', ['off'], empty);
    expect(calls).toBe(2);
    await cache.getOrSet('neg', ['on'], empty, { negative: { ttlS: 0.3 } });
    await cache.getOrSet('neg', ['on'], empty, { negative: { ttlS: 0.3 } });
    expect(calls).toBe(3);
    await sleep(450);
    await cache.getOrSet('neg', ['on'], empty, { negative: { ttlS: 0.3 } });
    expect(calls).toBe(4);
  });

  it('serves a stale entry within the grace period and refreshes it in the background', async () => {
    let version = 1;
    const fn = async () => {
      await sleep(20);
      return version;
    };
    const opts = { ttlS: 0.2, staleWhileRevalidateS: 5 };
    expect(await cache.getOrSet('swr', [1], fn, opts)).toBe(1);
    version = 2;
    await sleep(300);
    const t0 = performance.now();
    expect(await cache.getOrSet('swr', [1], fn, opts)).toBe(1); // stale, served at once
    expect(performance.now() - t0).toBeLessThan(20);
    await sleep(100);
    expect(await cache.getOrSet('swr', [1], fn, opts)).toBe(2); // refreshed
    expect((await cache.stats()).prefixes.swr!.stale_served).toBe(1);
    // An invalidated entry is never served stale.
    version = 3;
    await cache.invalidate('content:77');
    const dep = { ...opts, deps: ['content:77'] };
    expect(await cache.getOrSet('swr', [2], fn, dep)).toBe(3);
    version = 4;
    await cache.invalidate('content:77');
    expect(await cache.getOrSet('swr', [2], fn, dep)).toBe(4);
  });

  it('deletes one key, and by pattern inside the namespace only', async () => {
    await cache.set('script', [1], 'a');
    await cache.set('script', [2], 'b');
    await cache.set('similar_scripts', [1], 'c');
    if (raw) await raw.set('foreign:script:1', 'keep');
    expect(await cache.deleteKey(cache.key('script', [1]))).toBe(true);
    expect(await cache.deleteKey(cache.key('script', [1]))).toBe(false);
    expect(await cache.deletePattern('script:*')).toBe(1);
    expect(await cache.get('script', [2])).toBeUndefined();
    expect(await cache.get('similar_scripts', [1])).toBe('c');
    expect(await cache.deletePattern(`${NAMESPACE}similar_*`)).toBe(1);
    await expect(cache.deletePattern('../*')).rejects.toThrow(TypeError);
    await expect(cache.deletePattern('')).rejects.toThrow(TypeError);
    if (raw) expect(await raw.get('foreign:script:1')).toBe('keep');
  });

  it('flushes the namespace and nothing else', async () => {
    for (let i = 0; i < 50; i++) await cache.set('flush_test', [i], i, { deps: [`content:${i}`] });
    if (raw) {
      await raw.set('ov:q:default:meta', 'queue data');
      await raw.set('ov:cache:v2:other', 'another version');
      await raw.set('unrelated', 'x');
    }
    const removed = await cache.flush();
    expect(removed).toBeGreaterThanOrEqual(50); // entries and their generations
    expect(await cache.get('flush_test', [1], ['content:1'])).toBeUndefined();
    if (raw) {
      expect(await raw.get('ov:q:default:meta')).toBe('queue data');
      expect(await raw.get('ov:cache:v2:other')).toBe('another version');
      expect(await raw.get('unrelated')).toBe('x');
      expect(await raw.keys(`${NAMESPACE}*`)).toEqual([]);
    }
  });

  it('never resurrects an entry after a flush resets its generations', async () => {
    let version = 1;
    const read = () => cache.getOrSet('aba', [1], async () => version, { deps: ['content:1'] });
    expect(await read()).toBe(1);
    await cache.flush();
    version = 2;
    expect(await read()).toBe(2);
    version = 3;
    await cache.invalidate('content:1');
    expect(await read()).toBe(3);
  });

  it('reports per-prefix figures with latency percentiles', async () => {
    await cache.getOrSet('stats_a', [1], async () => 1);
    await cache.getOrSet('stats_a', [1], async () => 1);
    await cache.getOrSet('stats_a', [1], async () => 1);
    const s = await cache.stats();
    const a = s.prefixes.stats_a!;
    expect(a.hits).toBe(2);
    expect(a.misses).toBe(1);
    expect(a.sets).toBe(1);
    expect(a.hit_rate).toBeCloseTo(2 / 3, 3);
    expect(a.get_p50_us).toBeGreaterThan(0);
    expect(a.get_p99_us).toBeGreaterThanOrEqual(a.get_p50_us!);
    expect(s.backend).toBe(kind === 'memory' ? 'memory' : 'redis');
    expect(s.keyspace_scope).toBe(kind === 'memory' ? 'process' : 'redis_server');
    expect(s.namespace_keys).toBeGreaterThanOrEqual(1);
    expect(s.l1.enabled).toBe(kind === 'redis+l1');
    if (kind === 'redis+l1') expect(a.l1_hits).toBeGreaterThanOrEqual(1);
  });

  it.runIf(kind !== 'memory')(
    'one process computes under the cross-process lock; another waits for it',
    async () => {
      const other = makeCache(kind, server!.url);
      try {
        await cacheReady(other);
        let calls = 0;
        const fn = async () => {
          calls++;
          await sleep(150);
          return 'expensive';
        };
        const opts = { lock: { waitMs: 2000 } };
        const [a, b] = await Promise.all([
          cache.getOrSet('locked', [1], fn, opts),
          sleep(20).then(() => other.getOrSet('locked', [1], fn, opts)),
        ]);
        expect([a, b]).toEqual(['expensive', 'expensive']);
        expect(calls).toBe(1);
      } finally {
        await other.close();
      }
    },
  );

  it.runIf(kind === 'redis+l1')('keeps two L1s coherent through the bus', async () => {
    const other = makeCache(kind, server!.url);
    try {
      await cacheReady(other);
      let version = 1;
      const fn = async () => version;
      const opts = { deps: ['content:3'] };
      expect(await cache.getOrSet('coherent', [3], fn, opts)).toBe(1);
      expect(await other.getOrSet('coherent', [3], fn, opts)).toBe(1);
      expect(await other.getOrSet('coherent', [3], fn, opts)).toBe(1); // L1 hit in `other`
      expect((await other.stats()).prefixes.coherent!.l1_hits).toBeGreaterThanOrEqual(1);
      version = 2;
      await cache.invalidate('content:3');
      const t0 = Date.now();
      while ((await other.getOrSet('coherent', [3], fn, opts)) !== 2) {
        if (Date.now() - t0 > 1000) throw new Error('the other L1 stayed stale for over a second');
        await sleep(2);
      }
      // Deleting a key reaches the other L1 as well.
      await other.getOrSet('coherent', [4], async () => 'x');
      await cache.deleteKey(cache.key('coherent', [4]));
      const t1 = Date.now();
      while ((await other.get('coherent', [4])) !== undefined) {
        if (Date.now() - t1 > 1000) throw new Error('deleted key still served by the other L1');
        await sleep(2);
      }
    } finally {
      await other.close();
    }
  });
});
