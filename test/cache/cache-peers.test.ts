/**
 * Memory caches of separate processes over one SQLite file follow each other's
 * generation bumps through cache_generation_log. Two caches here, each with its own
 * connection to the file, stand for two processes (the serve + worker test spawns real ones).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCacheConfig } from '../../src/config/cache.js';
import type { CacheService } from '../../src/cache/cache.service.js';
import { createCacheService } from '../../src/cache/create-cache.js';
import { SqliteGenerationLog } from '../../src/cache/sqlite-generation-log.js';
import { openDatabase, openSqliteFile } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { embeddedEnabled } from '../support/backends.js';
import { silentLogger, sleep } from './helpers.js';

/** A migrated SQLite file in a new temporary directory. */
async function migratedFile(prefix: string): Promise<{ dir: string; file: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, 'main.db');
  const config = { dialect: 'sqlite' as const, file, busyTimeoutMs: 5000 };
  const handle = openDatabase(config);
  await migrateToLatest(handle.db, config);
  await handle.close();
  return { dir, file };
}

describe.runIf(embeddedEnabled())('memory caches sharing a SQLite file', () => {
  let dir: string;
  let file: string;
  const caches: CacheService[] = [];
  const open = (env: Record<string, string> = {}) => {
    const cache = createCacheService(loadCacheConfig({ CACHE_MODE: 'memory', ...env }), silentLogger(), {
      sharedSqlite: { file, busyTimeoutMs: 5000 },
    });
    if (!cache) throw new Error('cache is off');
    caches.push(cache);
    return cache;
  };
  const counted = (cache: CacheService, counts: { n: number }, dep: string) =>
    cache.getOrSet('peer', ['k'], async () => ++counts.n, { deps: [dep] });

  beforeAll(async () => {
    ({ dir, file } = await migratedFile('ov-cache-peers-'));
  });
  afterAll(async () => {
    for (const c of caches) await c.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a bump made by one is seen by the other's next read", async () => {
    const a = open({ CACHE_PEER_CHECK_MS: '0' });
    const b = open({ CACHE_PEER_CHECK_MS: '0' });
    const ca = { n: 0 };
    const cb = { n: 0 };
    expect(await counted(a, ca, 'content:1')).toBe(1);
    expect(await counted(a, ca, 'content:1')).toBe(1); // cached
    expect(await counted(b, cb, 'content:1')).toBe(1);
    await b.invalidate('content:1');
    expect(await counted(a, ca, 'content:1')).toBe(2);
    expect(await counted(a, ca, 'content:1')).toBe(2);
    // The writer applied its own bump once; it does not read it back from the log.
    expect(await counted(b, cb, 'content:1')).toBe(2);
    expect(await counted(b, cb, 'content:1')).toBe(2);
    // Other generations are untouched.
    const other = { n: 0 };
    await counted(a, other, 'content:2').then((v) => expect(v).toBe(1));
    await b.invalidate('content:1');
    expect(await a.getOrSet('peer', ['k'], async () => -1, { deps: ['content:2'] })).toBe(1);
  });

  it('a reader looks at the log at most once per CACHE_PEER_CHECK_MS, so staleness is bounded by it', async () => {
    const a = open({ CACHE_PEER_CHECK_MS: '300' });
    const b = open({ CACHE_PEER_CHECK_MS: '0' });
    const ca = { n: 0 };
    await counted(a, ca, 'content:3');
    await sleep(310); // the next read checks
    await counted(a, ca, 'content:3');
    const t0 = Date.now();
    await b.invalidate('content:3');
    // Within the interval the old value may still be served; after it, never.
    let fresh = 0;
    for (;;) {
      if ((await counted(a, ca, 'content:3')) === 2) break;
      fresh = Date.now() - t0;
      expect(fresh).toBeLessThan(300 + 100);
      await sleep(5);
    }
    expect(Date.now() - t0).toBeLessThanOrEqual(300 + 100);
  });
});

describe.runIf(embeddedEnabled())('the SQLite generation log', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    ({ dir, file } = await migratedFile('ov-cache-log-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("hands each reader the others' bumps in order, never its own, and only what came after it opened", () => {
    const a = new SqliteGenerationLog(openSqliteFile(file, 5000), { checkIntervalMs: 0, retainMs: 60_000 });
    a.publish(['before']);
    const b = new SqliteGenerationLog(openSqliteFile(file, 5000), { checkIntervalMs: 0, retainMs: 60_000 });
    expect(b.poll()).toEqual([]);
    a.publish(['x', 'y']);
    b.publish(['mine']);
    a.publish(['z']);
    expect(b.poll()).toEqual(['x', 'y', 'z']);
    expect(b.poll()).toEqual([]);
    expect(a.poll()).toEqual(['mine']);
    a.close();
    b.close();
  });

  it('tells a reader that slept past the retention that it lost track (null), once', () => {
    let now = Date.now();
    const clock = () => now;
    const writer = new SqliteGenerationLog(openSqliteFile(file, 5000), {
      checkIntervalMs: 0,
      retainMs: 1000,
      now: clock,
    });
    const sleeper = new SqliteGenerationLog(openSqliteFile(file, 5000), {
      checkIntervalMs: 0,
      retainMs: 1000,
      now: clock,
    });
    writer.publish(['missed']);
    now += 5000;
    // Pruning runs every 1,000th publish of a process.
    for (let i = 0; i < 999; i++) writer.publish([`n${i}`]);
    expect(sleeper.poll()).toBeNull();
    writer.publish(['after']);
    expect(sleeper.poll()).toEqual(['after']);
    writer.close();
    sleeper.close();
  });
});
