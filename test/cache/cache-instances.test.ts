/**
 * Two app instances on one database and one Redis, each with an L1: a write through one
 * is seen by the other within the time the bus takes, never later than the L1 TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends, redisUrl } from '../support/backends.js';
import { type CacheApp, databaseUrl, makeCacheApp, redisDb } from './helpers.js';

const run = redisUrl() !== null;

describe.runIf(run)('two instances with L1 over one Redis', () => {
  let a: CacheApp;
  let b: CacheApp;
  let contentId: number;
  const req = async (
    t: CacheApp,
    method: 'GET' | 'PUT' | 'POST' | 'PATCH',
    url: string,
    payload?: unknown,
  ) => {
    const r = await t.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: t.as('editor'),
      ...(payload ? { payload } : {}),
    });
    return r.json();
  };

  beforeAll(async () => {
    const db = await databaseUrl(dbBackends().includes('postgres') ? 'postgres' : 'sqlite');
    if (db.startsWith('sqlite')) throw new Error('two instances need a shared database (PostgreSQL)');
    // L1 TTL far above the bound we assert: only the bus can explain a fast update.
    const env = { CACHE_L1_TTL_MS: '60000' };
    a = await makeCacheApp('redis+l1', db, redisDb(redisUrl(), 3), env);
    b = await makeCacheApp('redis+l1', db, redisDb(redisUrl(), 3), env);
    const client = await req(a, 'POST', '/clients', { name: 'Two' });
    const campaign = await req(a, 'POST', '/campaigns', {
      client_id: client.id,
      name: 'Two',
      platform: 'youtube',
    });
    contentId = (await req(a, 'POST', `/campaigns/${campaign.id}/contents`, { title: 'two' })).id;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('bounds staleness on the other instance by the bus', async () => {
    const bounds: number[] = [];
    let previous = (await req(b, 'GET', `/contents/${contentId}/script`)).full_text as string;
    for (let i = 0; i < 10; i++) {
      const next = `version ${i}`;
      await req(a, 'PUT', `/contents/${contentId}/script`, { blocks: [{ kind: 'body', text: next }] });
      const t0 = performance.now();
      for (;;) {
        const got = (await req(b, 'GET', `/contents/${contentId}/script`)).full_text;
        if (got === next) break;
        expect(got).toBe(previous); // stale for a moment at most, never anything else
        if (performance.now() - t0 > 1000) throw new Error('instance b stayed stale for over a second');
        await new Promise((r) => setTimeout(r, 1));
      }
      bounds.push(performance.now() - t0);
      previous = next;
      // b now serves the new version from its L1.
      const l1Before = (await b.system.cache!.stats()).prefixes.script!.l1_hits;
      expect((await req(b, 'GET', `/contents/${contentId}/script`)).full_text).toBe(next);
      expect((await b.system.cache!.stats()).prefixes.script!.l1_hits).toBe(l1Before + 1);
    }
    bounds.sort((x, y) => x - y);
    // The bus delivers within milliseconds on loopback; allow for a loaded machine.
    expect(bounds[bounds.length - 1]).toBeLessThan(500);
    console.info(
      `[cache] cross-instance staleness: median ${bounds[5]!.toFixed(2)} ms, max ${bounds[9]!.toFixed(2)} ms`,
    );
  });
});
