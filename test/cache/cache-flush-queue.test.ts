/**
 * Flush removes the cache namespace only: real pending BullMQ jobs on the same Redis
 * survive it and still complete, and a foreign key survives too.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends, redisUrl } from '../support/backends.js';
import { type RunningService, startRedis } from '../support/services.js';
import { type CacheApp, databaseUrl, makeCacheApp, seedCampaign } from './helpers.js';

describe.runIf(redisUrl() !== null)('flush next to a job queue', () => {
  let server: RunningService;
  let t: CacheApp;
  let raw: Redis;
  let queue: Queue;
  const connection = () => ({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null });

  beforeAll(async () => {
    server = await startRedis();
    raw = new Redis(server.url);
    const backend = dbBackends().includes('postgres') ? 'postgres' : 'sqlite';
    t = await makeCacheApp('redis+l1', await databaseUrl(backend), server.url);
    queue = new Queue('default', { connection: connection(), prefix: 'ov:q' });
  });
  afterAll(async () => {
    await queue?.close();
    await t?.close();
    raw?.disconnect();
    await server?.stop();
  });

  it('leaves every non-cache key alone, and the jobs still complete', async () => {
    const jobs = 25;
    await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'work', data: { i } })));
    await queue.add('later', { i: -1 }, { delay: 200 });
    await raw.set('foreign:key', 'mine');
    await raw.hset('ov:cachex:v1:lookalike', 'f', 'v');

    // Fill the cache through the API.
    const h = t.as('editor');
    const seeded = await seedCampaign(t);
    for (let i = 0; i < 20; i++) {
      const id = await seeded.addContent(`c${i}`);
      await t.app.inject({ method: 'GET', url: `/api/v1/contents/${id}/script`, headers: h });
    }
    const before = new Map<string, string>();
    for (const k of await raw.keys('*')) if (!k.startsWith('ov:cache:v1:')) before.set(k, await raw.type(k));
    expect([...before.keys()].some((k) => k.startsWith('ov:q:default:'))).toBe(true);
    expect((await raw.keys('ov:cache:v1:*')).length).toBeGreaterThan(20);

    const flush = await t.app.inject({ method: 'POST', url: '/api/v1/cache/flush', headers: t.as('admin') });
    expect(flush.statusCode).toBe(200);
    expect(flush.json().removed).toBeGreaterThan(20);

    expect(await raw.keys('ov:cache:v1:*')).toEqual([]);
    const after = new Map<string, string>();
    for (const k of await raw.keys('*')) after.set(k, await raw.type(k));
    expect(after).toEqual(before);
    expect(await raw.get('foreign:key')).toBe('mine');
    expect(await queue.getWaitingCount()).toBe(jobs);

    const done: number[] = [];
    const worker = new Worker(
      'default',
      async (job) => {
        done.push((job.data as { i: number }).i);
        return job.data;
      },
      { connection: connection(), prefix: 'ov:q', concurrency: 5 },
    );
    try {
      const deadline = Date.now() + 15_000;
      while ((await queue.getCompletedCount()) < jobs + 1) {
        if (Date.now() > deadline) throw new Error(`only ${done.length} of ${jobs + 1} jobs completed`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await worker.close();
    }
    expect(done.sort((x, y) => x - y)).toEqual([-1, ...Array.from({ length: jobs }, (_, i) => i)]);
  });
});
