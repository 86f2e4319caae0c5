import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cacheKey,
  globToRegExp,
  hashArgs,
  namespacedKey,
  namespacedPattern,
  stableSerialize,
} from '../../src/cache/cache-key.js';
import { loadCacheConfig } from '../../src/config/cache.js';
import { ConfigError } from '../../src/config/config.js';

/** Rebuilds an object with its keys in a shuffled order (recursively). */
function shuffleKeys(v: unknown, rnd: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, rnd));
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).sort(() => rnd() - 0.5);
    return Object.fromEntries(entries.map(([k, x]) => [k, shuffleKeys(x, rnd)]));
  }
  return v;
}

const jsonLike = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary' }),
    fc.integer(),
    fc.double({ noNaN: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: 'binary' }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('cache keys', () => {
  it('do not depend on object key order, for any Unicode', () => {
    fc.assert(
      fc.property(jsonLike, fc.integer(), (v, seed) => {
        let s = seed;
        const rnd = () => ((s = (s * 16807 + 11) % 2147483647) & 0xffff) / 0xffff;
        expect(hashArgs(shuffleKeys(v, rnd))).toBe(hashArgs(v));
      }),
      { numRuns: 300 },
    );
  });

  it('differ for different strings, lone surrogates and normalisation forms included', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        fc.pre(a !== b);
        expect(cacheKey('p', [a])).not.toBe(cacheKey('p', [b]));
      }),
      { numRuns: 500 },
    );
    expect(hashArgs(['\u00e9'])).not.toBe(hashArgs(['e\u0301'])); // NFC vs NFD are different arguments
    expect(hashArgs(['\ud800'])).not.toBe(hashArgs(['\udc00']));
  });

  it('type values: 1, "1", null, undefined, [] and {} never collide', () => {
    const values = [1, '1', null, undefined, [], {}, [undefined], [null], true, 'true', 0, -0, '0', 1n];
    const keys = new Set(values.map((v) => stableSerialize([v])));
    expect(keys.size).toBe(values.length - 1); // 0 and -0 are the same number
    expect(stableSerialize({ a: 1, b: undefined })).toBe(stableSerialize({ a: 1 }));
    expect(() => stableSerialize([new Map()])).toThrow(TypeError);
    expect(() => stableSerialize([() => 1])).toThrow(TypeError);
    // Query objects come with a null or foreign prototype: same data, same key.
    const bare = Object.assign(Object.create(null) as object, { b: 2, a: 1 });
    function Empty() {}
    Empty.prototype = Object.create(null);
    const exotic = Object.assign(Object.create(Empty.prototype as object) as object, { a: 1, b: 2 });
    expect(hashArgs([bare])).toBe(hashArgs([{ a: 1, b: 2 }]));
    expect(hashArgs([exotic])).toBe(hashArgs([{ a: 1, b: 2 }]));
    expect(cacheKey('script', [1])).toMatch(/^ov:cache:v1:script:[0-9a-f]{32}$/);
  });

  it('confine patterns and keys to the namespace', () => {
    expect(namespacedPattern('script:*')).toBe('ov:cache:v1:script:*');
    expect(namespacedPattern('ov:cache:v1:script:*')).toBe('ov:cache:v1:script:*');
    for (const bad of ['', 'a b', 'x'.repeat(201), '../*', 'a\\*', 'a{b}', 'ключ*']) {
      expect(namespacedPattern(bad), bad).toBeNull();
    }
    expect(namespacedKey('script:abc')).toBe('ov:cache:v1:script:abc');
    expect(namespacedKey('a*')).toBeNull();
  });

  it('match globs the way Redis does', () => {
    const cases: [string, string, boolean][] = [
      ['ov:cache:v1:*', 'ov:cache:v1:script:1', true],
      ['ov:cache:v1:*', 'ov:cache:v2:script:1', false],
      ['ov:cache:v1:script:?', 'ov:cache:v1:script:1', true],
      ['ov:cache:v1:script:?', 'ov:cache:v1:script:12', false],
      ['ov:cache:v1:s[ck]ript:*', 'ov:cache:v1:skript:1', true],
      ['ov:cache:v1:s[^c]ript:*', 'ov:cache:v1:script:1', false],
      ['ov:cache:v1:[a-c]*', 'ov:cache:v1:campaign:1', true],
      ['ov:cache:v1:a.b', 'ov:cache:v1:axb', false],
    ];
    for (const [glob, key, match] of cases)
      expect(globToRegExp(glob).test(key), `${glob} ~ ${key}`).toBe(match);
  });
});

describe('cache config', () => {
  it('defaults to memory, and Redis when CACHE_REDIS_URL or REDIS_URL is set', () => {
    const d = loadCacheConfig({});
    expect(d.mode).toBe('memory');
    expect(d.defaultTtlS).toBe(300);
    expect(d.prefixTtlS.script).toBe(600);
    expect(d.prefixTtlS.similar_scripts).toBe(600);
    expect(loadCacheConfig({ REDIS_URL: 'redis://h:1' })).toMatchObject({
      mode: 'redis',
      redisUrl: 'redis://h:1',
    });
    expect(loadCacheConfig({ REDIS_URL: 'redis://h:1', CACHE_REDIS_URL: 'redis://c:2/3' }).redisUrl).toBe(
      'redis://c:2/3',
    );
    expect(loadCacheConfig({ REDIS_URL: 'redis://h:1', CACHE_MODE: 'memory' }).mode).toBe('memory');
    expect(loadCacheConfig({ CACHE_MODE: 'off' }).mode).toBe('off');
    expect(loadCacheConfig({ CACHE_PREFIX_TTLS: 'script=60,custom=5' }).prefixTtlS).toMatchObject({
      script: 60,
      custom: 5,
    });
  });

  it('names the variable that is wrong', () => {
    const bad: Record<string, string>[] = [
      { CACHE_MODE: 'redis' },
      { CACHE_MODE: 'fast' },
      { CACHE_DEFAULT_TTL_S: '0' },
      { CACHE_PREFIX_TTLS: 'script:600' },
      { CACHE_PREFIX_TTLS: 'script=0' },
      { CACHE_COMMAND_TIMEOUT_MS: 'soon' },
      { CACHE_REDIS_URL: 'http://x' },
    ];
    for (const env of bad) {
      const name = Object.keys(env)[0]!;
      expect(() => loadCacheConfig(env), name).toThrow(ConfigError);
      expect(() => loadCacheConfig(env)).toThrow(name);
    }
  });
});
