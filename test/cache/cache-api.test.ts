/**
 * The cache through the API: reads after writes are never stale on one instance, cached
 * endpoints really hit, and the management endpoints (admin only) do what they say.
 * Memory cache on SQLite in embedded runs; Redis and Redis + L1 on PostgreSQL in distributed runs.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheStats } from '../../src/cache/cache.service.js';
import { dbBackends, redisUrl } from '../support/backends.js';
import { type CacheApp, type CacheKind, cacheKinds, databaseUrl, makeCacheApp, redisDb } from './helpers.js';

const backendFor = (kind: CacheKind) =>
  kind === 'memory' ? 'sqlite' : dbBackends().includes('postgres') ? 'postgres' : 'sqlite';

describe.each(cacheKinds())('cache through the API: %s', (kind) => {
  let t: CacheApp;
  let app: FastifyInstance;
  let campaignId: number;
  let contentId: number;
  const admin = () => t.as('admin');
  const editor = () => t.as('editor');

  const json = async (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown) => {
    const r = await app.inject({
      method,
      url: `/api/v1${url}`,
      headers: editor(),
      ...(body ? { payload: body } : {}),
    });
    return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : null };
  };
  const stats = async (): Promise<CacheStats> =>
    (await app.inject({ method: 'GET', url: '/api/v1/cache/stats', headers: admin() })).json();

  beforeAll(async () => {
    t = await makeCacheApp(kind, await databaseUrl(backendFor(kind)), redisDb(redisUrl(), 2));
    app = t.app;
    await t.system.cache!.flush();
    const client = await json('POST', '/clients', { name: 'Acme' });
    const campaign = await json('POST', '/campaigns', {
      client_id: client.body!.id,
      name: 'Spring',
      platform: 'youtube',
      concept_tone: 'warm',
    });
    campaignId = campaign.body!.id as number;
    const content = await json('POST', `/campaigns/${campaignId}/contents`, {
      title: '봄 세일',
      keywords: ['봄'],
    });
    contentId = content.body!.id as number;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves a content script from the cache and never stale after script writes', async () => {
    const put = await json('PUT', `/contents/${contentId}/script`, {
      blocks: [
        { kind: 'hook', text: '안녕하세요 첫 문장', duration_s: 2 },
        { kind: 'body', text: 'second block', duration_s: 3 },
      ],
    });
    expect(put.status).toBe(200);
    const first = await json('GET', `/contents/${contentId}/script`);
    expect(first.body!.full_text).toBe('안녕하세요 첫 문장\nsecond block');
    const before = (await stats()).prefixes.script?.hits ?? 0;
    const again = await json('GET', `/contents/${contentId}/script`);
    expect(again.body).toEqual(first.body);
    expect((await stats()).prefixes.script!.hits).toBe(before + 1);

    const blocks = first.body!.blocks as { id: number }[];
    await json('PATCH', `/contents/${contentId}/script/blocks/${blocks[1]!.id}`, { text: 'edited block' });
    expect((await json('GET', `/contents/${contentId}/script`)).body!.full_text).toBe(
      '안녕하세요 첫 문장\nedited block',
    );
    await json('POST', `/contents/${contentId}/script/reorder`, {
      block_ids: [blocks[1]!.id, blocks[0]!.id],
    });
    expect((await json('GET', `/contents/${contentId}/script`)).body!.full_text).toBe(
      'edited block\n안녕하세요 첫 문장',
    );
    // The script write moved the content to `scripted`: its cached read and its campaign's list follow.
    expect((await json('GET', `/contents/${contentId}`)).body!.status).toBe('scripted');
    const list = await json('GET', `/campaigns/${campaignId}/contents`);
    expect((list.body!.items as { status: string }[])[0]!.status).toBe('scripted');
  });

  it('keeps content and campaign reads and lists fresh across writes', async () => {
    await json('GET', `/contents/${contentId}`);
    await json('GET', `/campaigns/${campaignId}/contents`);
    await json('GET', `/campaigns/${campaignId}`);
    await json('GET', '/campaigns');
    await json('PATCH', `/contents/${contentId}`, { title: '여름 세일' });
    expect((await json('GET', `/contents/${contentId}`)).body!.title).toBe('여름 세일');
    const list = await json('GET', `/campaigns/${campaignId}/contents`);
    expect((list.body!.items as { title: string }[]).map((c) => c.title)).toContain('여름 세일');

    const created = await json('POST', `/campaigns/${campaignId}/contents`, { title: 'second' });
    expect((await json('GET', `/campaigns/${campaignId}/contents`)).body!.items).toHaveLength(2);
    await json('DELETE', `/contents/${created.body!.id}`);
    expect((await json('GET', `/campaigns/${campaignId}/contents`)).body!.items).toHaveLength(1);
    expect((await json('GET', `/contents/${created.body!.id}`)).status).toBe(404);

    await json('PATCH', `/campaigns/${campaignId}`, { name: 'Spring 2' });
    expect((await json('GET', `/campaigns/${campaignId}`)).body!.name).toBe('Spring 2');
    const campaigns = await json('GET', '/campaigns');
    expect((campaigns.body!.items as { name: string }[]).map((c) => c.name)).toContain('Spring 2');
  });

  it('re-ranks similar scripts when metrics arrive and when the campaign tone changes', async () => {
    const similar = () => json('GET', '/scripts/similar?platform=youtube&tone=warm');
    expect((await similar()).body!.items).toEqual([]); // no metrics yet: negative-cached
    const ingest = await json('POST', `/contents/${contentId}/metrics`, {
      metrics: [
        { recorded_at: '2026-01-01T00:00:00Z', views: 1000, likes: 50, comments: 5, shares: 5, ctr: 0.02 },
      ],
    });
    expect(ingest.status).toBe(201);
    const ranked = (await similar()).body!.items as { content_id: number; performance_score: number }[];
    expect(ranked.map((r) => r.content_id)).toEqual([contentId]);
    expect((await json('GET', `/contents/${contentId}`)).body!.latest_performance_score).toBe(
      ranked[0]!.performance_score,
    );
    await json('PATCH', `/campaigns/${campaignId}`, { concept_tone: 'bold' });
    expect((await similar()).body!.items).toEqual([]);
  });

  it('answers exactly as the database does through a random mix of reads and writes', async () => {
    const c2 = await json('POST', `/campaigns/${campaignId}/contents`, { title: 'mix' });
    const id = c2.body!.id as number;
    let seed = 7;
    const rnd = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 120; i++) {
      const r = rnd();
      if (r < 0.15) {
        await json('PUT', `/contents/${id}/script`, { blocks: [{ kind: 'body', text: `text ${i}` }] });
      } else if (r < 0.25) {
        await json('PATCH', `/contents/${id}`, { title: `title ${i}`, keywords: [`k${i}`] });
      } else if (r < 0.3) {
        await json('POST', `/contents/${id}/metrics`, {
          metrics: [
            {
              recorded_at: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
              views: i,
              likes: 1,
              comments: 0,
              shares: 0,
            },
          ],
        });
      } else if (r < 0.65) {
        const got = await json('GET', `/contents/${id}/script`);
        expect(got.body).toEqual(JSON.parse(JSON.stringify(await t.truth.scripts.get(id))));
      } else if (r < 0.85) {
        const got = await json('GET', `/contents/${id}`);
        expect(got.body).toEqual(JSON.parse(JSON.stringify(await t.truth.contents.get(id))));
      } else {
        const got = await json('GET', `/campaigns/${campaignId}/contents`);
        expect(got.body).toEqual(JSON.parse(JSON.stringify(await t.truth.contents.list(campaignId, {}, {}))));
      }
    }
  });

  it('answers 404 after deletes that cascade', async () => {
    const client = await json('POST', '/clients', { name: 'Gone' });
    const camp = await json('POST', '/campaigns', {
      client_id: client.body!.id,
      name: 'Gone',
      platform: 'tiktok',
    });
    const cont = await json('POST', `/campaigns/${camp.body!.id}/contents`, { title: 'gone' });
    await json('PUT', `/contents/${cont.body!.id}/script`, { blocks: [{ kind: 'body', text: 'x' }] });
    expect((await json('GET', `/contents/${cont.body!.id}/script`)).status).toBe(200);
    expect((await json('GET', `/contents/${cont.body!.id}`)).status).toBe(200);
    expect((await json('GET', `/campaigns/${camp.body!.id}`)).status).toBe(200);
    await json('DELETE', `/clients/${client.body!.id}`);
    expect((await json('GET', `/contents/${cont.body!.id}/script`)).status).toBe(404);
    expect((await json('GET', `/contents/${cont.body!.id}`)).status).toBe(404);
    expect((await json('GET', `/campaigns/${camp.body!.id}`)).status).toBe(404);
    // A read of an id before it exists is not served once it does.
    const next = await json('POST', '/campaigns', { client_id: 1, name: 'Next', platform: 'tiktok' });
    expect((await json('GET', `/campaigns/${next.body!.id}`)).status).toBe(200);
  });

  describe('management', () => {
    const call = (
      method: 'GET' | 'POST' | 'DELETE',
      url: string,
      headers: Record<string, string>,
      payload?: unknown,
    ) => app.inject({ method, url: `/api/v1${url}`, headers, ...(payload ? { payload } : {}) });

    it('reports stats with keyspace figures labelled, per-prefix figures and the L1', async () => {
      const s = await stats();
      expect(s.backend).toBe(kind === 'memory' ? 'memory' : 'redis');
      expect(s.keyspace_scope).toBe(kind === 'memory' ? 'process' : 'redis_server');
      for (const f of ['keyspace_hits', 'keyspace_misses', 'total_keys'] as const)
        expect(s[f]).toBeGreaterThanOrEqual(0);
      expect(s.hit_rate).not.toBeNull();
      expect(s.prefixes.script!.get_p50_us).not.toBeNull();
      expect(s.namespace_keys).toBeGreaterThan(0);
      expect(s.circuit).toBe('closed');
      expect(s.l1.enabled).toBe(kind === 'redis+l1');
    });

    it('invalidates by campaign, content, prefix and pattern, one at a time', async () => {
      await json('GET', `/contents/${contentId}/script`);
      await json('GET', `/contents/${contentId}/script`);
      const misses = (await stats()).prefixes.script!.misses;
      const byContent = await call('POST', '/cache/invalidate', admin(), { content_id: contentId });
      expect(byContent.statusCode).toBe(200);
      expect(byContent.json()).toMatchObject({ target: 'content_id', removed: null });
      await json('GET', `/contents/${contentId}/script`);
      expect((await stats()).prefixes.script!.misses).toBe(misses + 1);

      const byCampaign = await call('POST', '/cache/invalidate', admin(), { campaign_id: campaignId });
      expect(byCampaign.json().generations).toContain(`campaign:${campaignId}`);

      await json('GET', `/contents/${contentId}/script`);
      const byPrefix = await call('POST', '/cache/invalidate', admin(), { prefix: 'script' });
      expect(byPrefix.json()).toMatchObject({ target: 'prefix' });
      expect(byPrefix.json().removed).toBeGreaterThanOrEqual(1);

      await json('GET', `/contents/${contentId}`);
      const byPattern = await call('POST', '/cache/invalidate', admin(), { pattern: 'content:*' });
      expect(byPattern.json().removed).toBeGreaterThanOrEqual(1);
      const none = await call('POST', '/cache/invalidate', admin(), { pattern: 'nothing:*' });
      expect(none.json().removed).toBe(0);

      for (const bad of [
        {},
        { prefix: 'script', pattern: 'x*' },
        { pattern: 'a b' },
        { pattern: 'x'.repeat(201) },
        { prefix: 'Bad!' },
        { pattern: '../*' },
      ]) {
        const r = await call('POST', '/cache/invalidate', admin(), bad);
        expect(r.statusCode, JSON.stringify(bad)).toBe(400);
        expect(r.json().error.code).toBe('VALIDATION_FAILED');
      }
    });

    it('deletes one key and answers 404 when there is none', async () => {
      await json('GET', `/contents/${contentId}/script`);
      const key = t.system.cache!.key('script', [contentId]);
      const del = await call('DELETE', `/cache/${encodeURIComponent(key)}`, admin());
      expect(del.statusCode).toBe(200);
      expect(del.json()).toEqual({ key, deleted: true });
      const again = await call('DELETE', `/cache/${encodeURIComponent(key)}`, admin());
      expect(again.statusCode).toBe(404);
      expect(again.json().error.code).toBe('CACHE_KEY_NOT_FOUND');
      // Short form without the namespace.
      await json('GET', `/contents/${contentId}/script`);
      const short = key.slice('ov:cache:v1:'.length);
      expect((await call('DELETE', `/cache/${short}`, admin())).statusCode).toBe(200);
      expect((await call('DELETE', `/cache/${encodeURIComponent('a b*')}`, admin())).statusCode).toBe(400);
    });

    it('flushes and reports how many keys went', async () => {
      await json('GET', `/contents/${contentId}/script`);
      const r = await call('POST', '/cache/flush', admin());
      expect(r.statusCode).toBe(200);
      expect(r.json().removed).toBeGreaterThanOrEqual(1);
      expect((await stats()).namespace_keys).toBe(0);
      // Still correct afterwards.
      expect((await json('GET', `/contents/${contentId}/script`)).status).toBe(200);
    });

    it('lets only admins in: no key 401, viewer and editor 403', async () => {
      const endpoints: [method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown][] = [
        ['GET', '/cache/stats'],
        ['POST', '/cache/invalidate', { prefix: 'script' }],
        ['POST', '/cache/flush'],
        ['DELETE', '/cache/script:0000'],
      ];
      for (const [method, url, body] of endpoints) {
        const as = async (h: Record<string, string>) => (await call(method, url, h, body)).statusCode;
        expect(await as({}), `${method} ${url} without a key`).toBe(401);
        expect(await as(t.as('viewer')), `${method} ${url} as viewer`).toBe(403);
        expect(await as(t.as('editor')), `${method} ${url} as editor`).toBe(403);
        const adminStatus = await as(admin());
        expect(adminStatus, `${method} ${url} as admin`).toBe(url.startsWith('/cache/script:') ? 404 : 200);
      }
    });
  });
});
