/**
 * Tasks change contents outside the domain services (narration and renders advance the
 * status). invalidateContent, which those tasks call, must make cached reads follow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidateContent } from '../../src/cache/content-invalidation.js';
import { dbBackends, redisUrl } from '../support/backends.js';
import { type CacheApp, cacheKinds, databaseUrl, makeCacheApp, redisDb, seedCampaign } from './helpers.js';

describe.each(cacheKinds())('invalidation after a task changes a content: %s', (kind) => {
  let t: CacheApp;
  let contentId: number;
  let campaignId: number;
  const get = async (url: string) =>
    (await t.app.inject({ method: 'GET', url: `/api/v1${url}`, headers: t.as('viewer') })).json();

  beforeAll(async () => {
    const backend = kind === 'memory' || !dbBackends().includes('postgres') ? 'sqlite' : 'postgres';
    t = await makeCacheApp(kind, await databaseUrl(backend), redisDb(redisUrl(), 5));
    await t.system.cache!.flush(); // each describe has its own database; the Redis db is shared
    const seeded = await seedCampaign(t);
    campaignId = seeded.campaignId;
    contentId = await seeded.addContent('task');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('follows a status change made directly in the database once the task invalidates', async () => {
    const db = t.system.database.db;
    expect((await get(`/contents/${contentId}`)).status).toBe('draft');
    expect((await get(`/campaigns/${campaignId}/contents`)).items[0].status).toBe('draft');
    const now = new Date().toISOString();
    const render = await db
      .insertInto('renders')
      .values({
        content_id: contentId,
        task_id: 'job-1',
        status: 'succeeded',
        preset: 'youtube',
        width: 1920,
        height: 1080,
        fps: 30,
        output_path: null,
        thumbnail_path: null,
        duration_s: null,
        size_bytes: null,
        error: null,
        finished_at: now,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    // What a render does (MediaRepo.advanceContentStatus): the cache cannot see it by itself.
    await db
      .updateTable('contents')
      .set({ status: 'rendered', updated_at: now })
      .where('id', '=', contentId)
      .execute();
    expect((await get(`/contents/${contentId}`)).status).toBe('draft');

    const errors: unknown[] = [];
    await invalidateContent(t.system.cache, db, { renderId: render.id }, (err) => errors.push(err));
    expect(errors).toEqual([]);
    expect((await get(`/contents/${contentId}`)).status).toBe('rendered');
    expect((await get(`/campaigns/${campaignId}/contents`)).items[0].status).toBe('rendered');
  });

  it('is a no-op for unknown rows and without a cache', async () => {
    const errors: unknown[] = [];
    await invalidateContent(t.system.cache, t.system.database.db, { audioGenerationId: 999_999 }, (e) =>
      errors.push(e),
    );
    await invalidateContent(undefined, t.system.database.db, { contentId }, (e) => errors.push(e));
    expect(errors).toEqual([]);
  });
});

describe.each(cacheKinds())('cost summaries: %s', (kind) => {
  let t: CacheApp;
  beforeAll(async () => {
    const backend = kind === 'memory' || !dbBackends().includes('postgres') ? 'sqlite' : 'postgres';
    t = await makeCacheApp(kind, await databaseUrl(backend), redisDb(redisUrl(), 5));
    await t.system.cache!.flush(); // each describe has its own database; the Redis db is shared
  });
  afterAll(async () => {
    await t?.close();
  });

  it('are cached until narration records usage, then follow', async () => {
    const costs = async () =>
      (
        await t.app.inject({ method: 'GET', url: '/api/v1/costs?from=2020-01-01', headers: t.as('viewer') })
      ).json();
    expect((await costs()).calls).toBe(0);
    const { contentId } = await (async () => {
      const s = await seedCampaign(t);
      return { contentId: await s.addContent('costly') };
    })();
    const now = new Date().toISOString();
    await t.system.database.db
      .insertInto('ai_api_usage')
      .values({
        provider: 'openai',
        model: 'tts-1',
        operation: 'tts',
        units: 100,
        unit: 'char',
        cost_usd: 0.5,
        campaign_id: null,
        content_id: contentId,
        task_id: 'job-2',
        created_at: now,
        updated_at: now,
      })
      .execute();
    expect((await costs()).calls).toBe(0); // cached: the insert went around the cache
    await invalidateContent(t.system.cache, t.system.database.db, { contentId }, () => undefined, {
      costs: true,
    });
    expect((await costs()).calls).toBe(1);
  });
});
