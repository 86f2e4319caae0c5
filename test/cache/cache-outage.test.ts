/**
 * Fail-open: with the cache's Redis killed or stalled, cached endpoints answer 200 from the
 * database within the command timeout; once Redis is back the cache is used again.
 * Redis here is a server of this file's own (restarted and paused by the test).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheStats } from '../../src/cache/cache.service.js';
import { dbBackends, redisUrl } from '../support/backends.js';
import { type RunningService, startRedis } from '../support/services.js';
import { type CacheApp, databaseUrl, makeCacheApp, seedCampaign, sleep, until } from './helpers.js';

describe.runIf(redisUrl() !== null).each(['redis', 'redis+l1'] as const)('cache outage: %s', (kind) => {
  let server: RunningService;
  let t: CacheApp;
  let contentId: number;
  const COMMAND_TIMEOUT_MS = 100;

  const get = async (url: string) => {
    const t0 = performance.now();
    const r = await t.app.inject({ method: 'GET', url: `/api/v1${url}`, headers: t.as('viewer') });
    return { status: r.statusCode, body: r.json(), ms: performance.now() - t0 };
  };
  const put = (url: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'PUT', url: `/api/v1${url}`, headers: t.as('editor'), payload });
  const stats = (): Promise<CacheStats> => t.system.cache!.stats();

  beforeAll(async () => {
    server = await startRedis();
    const backend = dbBackends().includes('postgres') ? 'postgres' : 'sqlite';
    t = await makeCacheApp(kind, await databaseUrl(backend), server.url, {
      CACHE_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
      CACHE_BREAKER_FAILURES: '3',
      CACHE_BREAKER_COOLDOWN_MS: '200',
      CACHE_ERROR_LOG_INTERVAL_MS: '1000',
    });
    contentId = await (await seedCampaign(t)).addContent('outage');
    await put(`/contents/${contentId}/script`, { blocks: [{ kind: 'body', text: 'before' }] });
  });
  afterAll(async () => {
    await t?.close();
    await server?.stop();
  });

  it('answers 200 from the database while Redis is down, and uses the cache again after', async () => {
    expect((await get(`/contents/${contentId}/script`)).status).toBe(200);
    const hitsBefore = (await stats()).prefixes.script!.hits;
    expect((await get(`/contents/${contentId}/script`)).body.full_text).toBe('before');
    expect((await stats()).prefixes.script!.hits).toBe(hitsBefore + 1);

    const outage = server.restart!(1500);
    await sleep(100); // Redis is down now
    const latencies: number[] = [];
    let wrote = false;
    const deadline = Date.now() + 1200;
    while (Date.now() < deadline) {
      const r = await get(`/contents/${contentId}/script`);
      expect(r.status).toBe(200);
      expect(r.body.full_text).toBe(wrote ? 'during' : 'before');
      latencies.push(r.ms);
      expect((await get(`/contents/${contentId}`)).status).toBe(200);
      if (!wrote && latencies.length > 5) {
        // A write during the outage: the next read must show it.
        expect(
          (await put(`/contents/${contentId}/script`, { blocks: [{ kind: 'body', text: 'during' }] }))
            .statusCode,
        ).toBe(200);
        wrote = true;
      }
      await sleep(10);
    }
    const during = await stats();
    expect(during.errors).toBeGreaterThan(0);
    expect(during.circuit).not.toBe('closed');
    expect(Math.max(...latencies)).toBeLessThan(COMMAND_TIMEOUT_MS * 5);

    await outage;
    // Back: the probe closes the circuit and the cache serves hits again.
    await until(async () => (await stats()).circuit === 'closed', 10_000, 'circuit closes');
    if (kind === 'redis+l1') await until(async () => (await stats()).l1.connected, 10_000, 'bus reconnects');
    expect((await get(`/contents/${contentId}/script`)).body.full_text).toBe('during');
    const hits = (await stats()).prefixes.script!.hits;
    expect((await get(`/contents/${contentId}/script`)).body.full_text).toBe('during');
    expect((await stats()).prefixes.script!.hits).toBe(hits + 1);
  });

  it('bounds latency by the command timeout when Redis stalls, and stays correct after', async () => {
    await until(async () => (await stats()).circuit === 'closed', 10_000, 'circuit closed');
    await get(`/contents/${contentId}/script`);
    const admin = new Redis(server.url);
    try {
      // Every client's commands wait 1.5 s: the cache must give up after its command timeout.
      await admin.client('PAUSE', 1500, 'ALL');
      const r1 = await get(`/contents/${contentId}/script`);
      expect(r1.status).toBe(200);
      expect(r1.ms).toBeLessThan(COMMAND_TIMEOUT_MS + 400);
      // A write while Redis stalls: its invalidation is kept and replayed; reads bypass the cache meanwhile.
      const w = await put(`/contents/${contentId}/script`, { blocks: [{ kind: 'body', text: 'stalled' }] });
      expect(w.statusCode).toBe(200);
      const r2 = await get(`/contents/${contentId}/script`);
      expect(r2.body.full_text).toBe('stalled');
      expect(r2.ms).toBeLessThan(COMMAND_TIMEOUT_MS + 400);
      await sleep(1600);
      await until(
        async () => (await stats()).circuit === 'closed' && (await stats()).pending_invalidations === 0,
        10_000,
        'recovered',
      );
      expect((await get(`/contents/${contentId}/script`)).body.full_text).toBe('stalled');
      expect((await get(`/contents/${contentId}/script`)).body.full_text).toBe('stalled');
    } finally {
      admin.disconnect();
    }
  });
});
