/**
 * Tasks change data outside the domain services: narration and renders advance a
 * content's status, narration records vendor calls. MediaRepo announces both as
 * domain changes; cached reads must follow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('follows a status change that the media pipeline makes', async () => {
    expect((await get(`/contents/${contentId}`)).status).toBe('draft');
    expect((await get(`/campaigns/${campaignId}/contents`)).items[0].status).toBe('draft');
    // What narration and renders do: MediaRepo moves the status and announces the change.
    expect(await t.system.media.repo.advanceContentStatus(contentId, 'rendered')).toBe(true);
    expect((await get(`/contents/${contentId}`)).status).toBe('rendered');
    expect((await get(`/campaigns/${campaignId}/contents`)).items[0].status).toBe('rendered');
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
    const contentId = await (await seedCampaign(t)).addContent('costly');
    const row = {
      provider: 'openai',
      model: 'tts-1',
      operation: 'tts',
      units: 100,
      unit: 'char',
      cost_usd: 0.5,
      campaign_id: null,
      content_id: contentId,
      task_id: 'job-2',
    };
    const now = new Date().toISOString();
    await t.system.database.db
      .insertInto('ai_api_usage')
      .values({ ...row, created_at: now, updated_at: now })
      .execute();
    expect((await costs()).calls).toBe(0); // cached: the insert went around the announcements
    // What narration does: MediaRepo records the vendor call and announces it.
    await t.system.media.repo.recordUsage(row);
    expect((await costs()).calls).toBe(2);
  });
});
