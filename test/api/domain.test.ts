import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends } from '../support/backends.js';
import { makeTestApp, type TestApp } from '../support/app.js';

describe.each(dbBackends())('domain API on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp(backend);
  });
  afterAll(async () => t.close());

  const call = async (
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    role: 'admin' | 'editor' | 'viewer' = 'editor',
  ) => {
    const res = await t.app.inject({
      method,
      url,
      headers: t.as(role),
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    return {
      status: res.statusCode,
      body: res.body ? (res.json() as Record<string, unknown>) : {},
      headers: res.headers,
    };
  };
  const errCode = (r: { body: Record<string, unknown> }) =>
    (r.body.error as { code: string } | undefined)?.code;

  async function newClient(name = 'Acme') {
    const r = await call('POST', '/api/v1/clients', {
      name,
      brand_color: '#112233',
      contact_email: 'a@example.com',
    });
    expect(r.status).toBe(201);
    return r.body as { id: number };
  }
  async function newCampaign(clientId: number, extra: Record<string, unknown> = {}) {
    const r = await call('POST', '/api/v1/campaigns', {
      client_id: clientId,
      name: 'Winter',
      platform: 'tiktok',
      ...extra,
    });
    expect(r.status).toBe(201);
    return r.body as { id: number; status: string; language: string; platform: string };
  }
  async function newContent(campaignId: number, extra: Record<string, unknown> = {}) {
    const r = await call('POST', `/api/v1/campaigns/${campaignId}/contents`, {
      title: '첫눈 라떼',
      ...extra,
    });
    expect(r.status).toBe(201);
    return r.body as { id: number; status: string; platform: string; keywords: string[] };
  }

  describe('clients', () => {
    it('creates, reads, updates, lists with a cursor and deletes', async () => {
      const a = await newClient('A');
      expect(await call('GET', `/api/v1/clients/${a.id}`)).toMatchObject({
        status: 200,
        body: { id: a.id, name: 'A' },
      });
      expect(await call('PATCH', `/api/v1/clients/${a.id}`, { industry: 'coffee' })).toMatchObject({
        status: 200,
        body: { industry: 'coffee', name: 'A' },
      });
      await newClient('B');
      await newClient('C');
      const p1 = await call('GET', '/api/v1/clients?limit=2');
      expect((p1.body.items as unknown[]).length).toBe(2);
      expect(p1.body.next_cursor).toEqual(expect.any(String));
      const p2 = await call('GET', `/api/v1/clients?limit=2&cursor=${p1.body.next_cursor as string}`);
      const ids = [...(p1.body.items as { id: number }[]), ...(p2.body.items as { id: number }[])].map(
        (c) => c.id,
      );
      expect(new Set(ids).size).toBe(ids.length);
      expect(await call('DELETE', `/api/v1/clients/${a.id}`)).toMatchObject({ status: 204 });
      expect(errCode(await call('GET', `/api/v1/clients/${a.id}`))).toBe('CLIENT_NOT_FOUND');
      expect(errCode(await call('DELETE', `/api/v1/clients/${a.id}`))).toBe('CLIENT_NOT_FOUND');
    });

    it('rejects bad input with the field named', async () => {
      const r = await call('POST', '/api/v1/clients', { name: '' });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'name' } });
      const unknown = await call('POST', '/api/v1/clients', { name: 'x', color: 'red' });
      expect(unknown.body.error).toMatchObject({
        code: 'VALIDATION_FAILED',
        details: { field: 'color', reason: 'unknown field' },
      });
      expect(errCode(await call('POST', '/api/v1/clients', { name: 'x', brand_color: 'blue' }))).toBe(
        'VALIDATION_FAILED',
      );
      expect(errCode(await call('PATCH', '/api/v1/clients/1', {}))).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/clients/abc'))).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/clients/99999999999'))).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/clients?cursor=garbage!'))).toBe('INVALID_CURSOR');
      expect(errCode(await call('GET', '/api/v1/clients?limit=1000'))).toBe('VALIDATION_FAILED');
    });
  });

  describe('campaigns', () => {
    it('CRUD with defaults and a client that must exist', async () => {
      const c = await newClient();
      const camp = await newCampaign(c.id, {
        concept_tone: 'warm',
        start_date: '2026-12-01',
        end_date: '2027-01-31',
      });
      expect(camp).toMatchObject({ status: 'active', language: 'ko', platform: 'tiktok' });
      expect(await call('GET', `/api/v1/campaigns/${camp.id}`)).toMatchObject({
        status: 200,
        body: { start_date: '2026-12-01', end_date: '2027-01-31', concept_tone: 'warm' },
      });
      expect(await call('PATCH', `/api/v1/campaigns/${camp.id}`, { status: 'paused' })).toMatchObject({
        status: 200,
        body: { status: 'paused' },
      });
      const missing = await call('POST', '/api/v1/campaigns', {
        client_id: 987654,
        name: 'x',
        platform: 'youtube',
      });
      expect(missing.status).toBe(422);
      expect(missing.body.error).toMatchObject({ code: 'UNPROCESSABLE', details: { field: 'client_id' } });
      expect(errCode(await call('PATCH', `/api/v1/campaigns/${camp.id}`, { end_date: '2026-01-01' }))).toBe(
        'VALIDATION_FAILED',
      );
      expect(errCode(await call('PATCH', `/api/v1/campaigns/${camp.id}`, { client_id: 2 }))).toBe(
        'VALIDATION_FAILED',
      );
      expect(
        errCode(await call('POST', '/api/v1/campaigns', { client_id: c.id, name: 'x', platform: 'myspace' })),
      ).toBe('VALIDATION_FAILED');
      expect(await call('DELETE', `/api/v1/campaigns/${camp.id}`)).toMatchObject({ status: 204 });
      expect(errCode(await call('GET', `/api/v1/campaigns/${camp.id}`))).toBe('CAMPAIGN_NOT_FOUND');
    });

    it('lists newest first with filters and a stable cursor', async () => {
      const c1 = await newClient('list-1');
      const c2 = await newClient('list-2');
      const made: number[] = [];
      for (let i = 0; i < 7; i++) {
        const camp = await newCampaign(i % 2 === 0 ? c1.id : c2.id, {
          status: i % 3 === 0 ? 'paused' : 'active',
          platform: i % 2 === 0 ? 'youtube' : 'tiktok',
        });
        made.push(camp.id);
      }
      const all = await call('GET', `/api/v1/campaigns?client_id=${c1.id}&limit=100`);
      const ids = (all.body.items as { id: number; client_id: number }[]).map((x) => x.id);
      expect(ids).toEqual(made.filter((_, i) => i % 2 === 0).reverse());

      const paused = await call('GET', `/api/v1/campaigns?client_id=${c1.id}&status=paused`);
      expect((paused.body.items as { status: string }[]).every((x) => x.status === 'paused')).toBe(true);
      expect((paused.body.items as unknown[]).length).toBe(2); // i = 0, 6

      const yt = await call('GET', `/api/v1/campaigns?platform=youtube&client_id=${c1.id}`);
      expect((yt.body.items as { platform: string }[]).every((x) => x.platform === 'youtube')).toBe(true);

      // Walk pages of 3: every campaign of client 2 exactly once, in order.
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const url: string = `/api/v1/campaigns?client_id=${c2.id}&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const page = await call('GET', url);
        seen.push(...(page.body.items as { id: number }[]).map((x) => x.id));
        cursor = page.body.next_cursor as string | null;
      } while (cursor);
      expect(seen).toEqual(made.filter((_, i) => i % 2 === 1).reverse());

      const future = new Date(Date.now() + 86_400_000).toISOString();
      const none = await call('GET', `/api/v1/campaigns?created_from=${encodeURIComponent(future)}`);
      expect(none.body.items).toEqual([]);
      const range = await call(
        'GET',
        `/api/v1/campaigns?client_id=${c1.id}&created_from=2000-01-01T00:00:00Z&created_to=${encodeURIComponent(future)}`,
      );
      expect((range.body.items as unknown[]).length).toBe(4);
      expect(
        errCode(
          await call('GET', `/api/v1/campaigns?created_from=${future}&created_to=2000-01-01T00:00:00Z`),
        ),
      ).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/campaigns?status=deleted'))).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/campaigns?limit=101'))).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/campaigns?sort=name'))).toBe('VALIDATION_FAILED');
    });

    it('deleting a client cascades to its campaigns and contents', async () => {
      const c = await newClient('cascade');
      const camp = await newCampaign(c.id);
      const content = await newContent(camp.id);
      expect((await call('DELETE', `/api/v1/clients/${c.id}`)).status).toBe(204);
      expect(errCode(await call('GET', `/api/v1/campaigns/${camp.id}`))).toBe('CAMPAIGN_NOT_FOUND');
      expect(errCode(await call('GET', `/api/v1/contents/${content.id}`))).toBe('CONTENT_NOT_FOUND');
    });
  });

  describe('contents', () => {
    it('CRUD inside a campaign, platform defaulting to the campaign', async () => {
      const camp = await newCampaign((await newClient()).id, { platform: 'instagram' });
      const content = await newContent(camp.id, {
        keywords: ['라떼', 'winter'],
        publish_at: '2026-12-01T09:00:00+09:00',
      });
      expect(content).toMatchObject({ platform: 'instagram', status: 'draft', keywords: ['라떼', 'winter'] });
      const got = await call('GET', `/api/v1/contents/${content.id}`);
      expect(got.body).toMatchObject({ publish_at: '2026-12-01T00:00:00.000Z' });
      const upd = await call('PATCH', `/api/v1/contents/${content.id}`, {
        status: 'scheduled',
        keywords: ['new'],
      });
      expect(upd.body).toMatchObject({ status: 'scheduled', keywords: ['new'] });
      expect(errCode(await call('POST', '/api/v1/campaigns/999999/contents', { title: 'x' }))).toBe(
        'CAMPAIGN_NOT_FOUND',
      );
      expect(
        errCode(await call('POST', `/api/v1/campaigns/${camp.id}/contents`, { title: 'x', status: 'viral' })),
      ).toBe('VALIDATION_FAILED');
      expect((await call('DELETE', `/api/v1/contents/${content.id}`)).status).toBe(204);
      expect(errCode(await call('PATCH', `/api/v1/contents/${content.id}`, { title: 'x' }))).toBe(
        'CONTENT_NOT_FOUND',
      );
    });

    it('lists by campaign with a status filter and full-text search over title and keywords', async () => {
      const camp = await newCampaign((await newClient()).id);
      await newContent(camp.id, { title: '겨울 라떼 출시', keywords: ['신메뉴'] });
      await newContent(camp.id, {
        title: 'Summer smoothie launch',
        keywords: ['mango'],
        status: 'published',
      });
      await newContent(camp.id, { title: '봄 딸기 케이크', keywords: ['라떼아트', 'dessert'] });
      const titles = async (qs: string) =>
        (
          (await call('GET', `/api/v1/campaigns/${camp.id}/contents?${qs}`)).body.items as { title: string }[]
        ).map((c) => c.title);
      expect(await titles('')).toEqual(['봄 딸기 케이크', 'Summer smoothie launch', '겨울 라떼 출시']);
      expect(await titles('status=published')).toEqual(['Summer smoothie launch']);
      expect(await titles(`q=${encodeURIComponent('라떼')}`)).toEqual(['봄 딸기 케이크', '겨울 라떼 출시']);
      expect(await titles('q=MANGO')).toEqual(['Summer smoothie launch']);
      expect(await titles(`q=${encodeURIComponent('smoothie launch')}`)).toEqual(['Summer smoothie launch']);
      expect(await titles(`q=${encodeURIComponent('"*) OR (')}`)).toEqual([]);
      expect(await titles('q=nothingmatches')).toEqual([]);
      expect(errCode(await call('GET', '/api/v1/campaigns/424242/contents'))).toBe('CAMPAIGN_NOT_FOUND');
    });
  });

  describe('script', () => {
    const blocks = [
      { kind: 'hook', text: '첫눈 오는 날, 라떼 한 잔', duration_s: 3 },
      { kind: 'body', text: '겨울 한정 메뉴 출시', duration_s: 4.5, subtitle_text: '겨울 한정' },
      { kind: 'cta', text: '지금 주문하세요', duration_s: 2 },
    ];

    it('replaces atomically, reads in order with full text and duration, and marks the content scripted', async () => {
      const content = await newContent((await newCampaign((await newClient()).id)).id);
      const put = await call('PUT', `/api/v1/contents/${content.id}/script`, { blocks });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({
        block_count: 3,
        total_duration_s: 9.5,
        full_text: blocks.map((b) => b.text).join('\n'),
      });
      expect((put.body.blocks as { sequence: number }[]).map((b) => b.sequence)).toEqual([1, 2, 3]);
      expect((await call('GET', `/api/v1/contents/${content.id}`)).body.status).toBe('scripted');
      const replaced = await call('PUT', `/api/v1/contents/${content.id}/script`, { blocks: [blocks[2]] });
      expect(replaced.body).toMatchObject({ block_count: 1, full_text: '지금 주문하세요' });

      // An invalid block anywhere leaves the old script untouched.
      const bad = await call('PUT', `/api/v1/contents/${content.id}/script`, {
        blocks: [blocks[0], { kind: 'outro', text: '' }],
      });
      expect(bad.body.error).toMatchObject({
        code: 'VALIDATION_FAILED',
        details: { field: 'blocks.1.text' },
      });
      expect((await call('GET', `/api/v1/contents/${content.id}/script`)).body.block_count).toBe(1);
      expect(errCode(await call('GET', '/api/v1/contents/777777/script'))).toBe('CONTENT_NOT_FOUND');
      expect(
        errCode(
          await call('PUT', `/api/v1/contents/${content.id}/script`, {
            blocks: [{ kind: 'rant', text: 'x' }],
          }),
        ),
      ).toBe('VALIDATION_FAILED');
    });

    it('updates one block and reorders', async () => {
      const content = await newContent((await newCampaign((await newClient()).id)).id);
      const put = await call('PUT', `/api/v1/contents/${content.id}/script`, { blocks });
      const ids = (put.body.blocks as { id: number }[]).map((b) => b.id);
      const upd = await call('PATCH', `/api/v1/contents/${content.id}/script/blocks/${ids[1]}`, {
        text: '새 문장',
        duration_s: 1,
      });
      expect(upd.body).toMatchObject({ text: '새 문장', sequence: 2 });
      const reordered = await call('POST', `/api/v1/contents/${content.id}/script/reorder`, {
        block_ids: [ids[2], ids[0], ids[1]],
      });
      expect(
        (reordered.body.blocks as { id: number; sequence: number }[]).map((b) => [b.id, b.sequence]),
      ).toEqual([
        [ids[2], 1],
        [ids[0], 2],
        [ids[1], 3],
      ]);
      expect(reordered.body.total_duration_s).toBe(6);
      const partial = await call('POST', `/api/v1/contents/${content.id}/script/reorder`, {
        block_ids: [ids[0], ids[1]],
      });
      expect(partial.body.error).toMatchObject({
        code: 'VALIDATION_FAILED',
        details: { field: 'block_ids' },
      });
      const dup = await call('POST', `/api/v1/contents/${content.id}/script/reorder`, {
        block_ids: [ids[0], ids[0], ids[1]],
      });
      expect(errCode(dup)).toBe('VALIDATION_FAILED');
      expect(
        errCode(await call('PATCH', `/api/v1/contents/${content.id}/script/blocks/999999`, { text: 'x' })),
      ).toBe('SCRIPT_BLOCK_NOT_FOUND');
    });
  });

  describe('metrics and similar scripts', () => {
    it('ingests a batch, computes engagement and score, serves the series and the latest', async () => {
      const content = await newContent((await newCampaign((await newClient()).id)).id);
      const ingest = await call('POST', `/api/v1/contents/${content.id}/metrics`, {
        metrics: [
          {
            recorded_at: '2026-11-02T00:00:00Z',
            views: 1000,
            likes: 50,
            comments: 30,
            shares: 20,
            ctr: 0.05,
          },
          { recorded_at: '2026-11-01T00:00:00Z', views: 0, likes: 0, comments: 0, shares: 0 },
        ],
      });
      expect(ingest).toMatchObject({ status: 201, body: { inserted: 2 } });
      const series = await call('GET', `/api/v1/contents/${content.id}/metrics`);
      const items = series.body.items as {
        recorded_at: string;
        engagement_rate: number;
        performance_score: number;
      }[];
      expect(items.map((m) => m.recorded_at)).toEqual([
        '2026-11-01T00:00:00.000Z',
        '2026-11-02T00:00:00.000Z',
      ]);
      expect(items[0]).toMatchObject({ engagement_rate: 0, performance_score: 0 });
      // 100/1000 = 10 % engagement (50) + 5 % CTR (30) + 20·log10(1001)/6 (10.0)
      expect(items[1]?.engagement_rate).toBeCloseTo(0.1, 6);
      expect(items[1]?.performance_score).toBeCloseTo(90, 2);
      const latest = await call('GET', `/api/v1/contents/${content.id}/metrics/latest`);
      expect(latest.body).toMatchObject({ recorded_at: '2026-11-02T00:00:00.000Z', views: 1000 });
      const from = await call('GET', `/api/v1/contents/${content.id}/metrics?from=2026-11-02T00:00:00Z`);
      expect((from.body.items as unknown[]).length).toBe(1);
      expect((await call('GET', `/api/v1/contents/${content.id}`)).body.latest_performance_score).toBeCloseTo(
        90,
        2,
      );

      expect(
        errCode(
          await call('POST', `/api/v1/contents/${content.id}/metrics`, {
            metrics: [{ recorded_at: 'yesterday', views: 1, likes: 0, comments: 0, shares: 0 }],
          }),
        ),
      ).toBe('VALIDATION_FAILED');
      expect(
        errCode(
          await call('POST', `/api/v1/contents/${content.id}/metrics`, {
            metrics: [{ recorded_at: '2026-11-01T00:00:00Z', views: -1, likes: 0, comments: 0, shares: 0 }],
          }),
        ),
      ).toBe('VALIDATION_FAILED');
      expect(errCode(await call('POST', `/api/v1/contents/${content.id}/metrics`, { metrics: [] }))).toBe(
        'VALIDATION_FAILED',
      );
      const fresh = await newContent((await newCampaign((await newClient()).id)).id);
      expect(errCode(await call('GET', `/api/v1/contents/${fresh.id}/metrics/latest`))).toBe('NOT_FOUND');
      expect(errCode(await call('GET', '/api/v1/contents/5555555/metrics'))).toBe('CONTENT_NOT_FOUND');
    });

    it('ranks similar scripts by latest score, filters by tone, and by full-text relevance to q', async () => {
      const client = await newClient('similar');
      const warm = await newCampaign(client.id, { platform: 'youtube', concept_tone: 'warm-sim' });
      const bold = await newCampaign(client.id, { platform: 'youtube', concept_tone: 'bold-sim' });
      const mk = async (campaignId: number, text: string, views: number, likes: number) => {
        const c = await newContent(campaignId, { title: text.slice(0, 10) });
        await call('PUT', `/api/v1/contents/${c.id}/script`, { blocks: [{ kind: 'body', text }] });
        await call('POST', `/api/v1/contents/${c.id}/metrics`, {
          metrics: [{ recorded_at: '2026-11-01T00:00:00Z', views, likes, comments: 0, shares: 0 }],
        });
        return c.id;
      };
      const a = await mk(warm.id, '따뜻한 라떼와 함께하는 겨울 아침', 1000, 100); // highest score
      const b = await mk(warm.id, '겨울 라떼 라떼 라떼 신메뉴 라떼', 1000, 10);
      const c = await mk(bold.id, '강렬한 에스프레소 한 잔', 1000, 50);
      const unscored = await newContent(warm.id, { title: 'no metrics' });
      await call('PUT', `/api/v1/contents/${unscored.id}/script`, {
        blocks: [{ kind: 'body', text: '라떼' }],
      });

      const ids = async (qs: string) =>
        ((await call('GET', `/api/v1/scripts/similar?${qs}`)).body.items as { content_id: number }[])
          .map((x) => x.content_id)
          .filter((id) => [a, b, c, unscored.id].includes(id));
      expect(await ids('platform=youtube&limit=50')).toEqual([a, c, b]);
      expect(await ids('platform=youtube&tone=warm-sim')).toEqual([a, b]);
      const ranked = await ids(`platform=youtube&q=${encodeURIComponent('라떼')}&limit=50`);
      expect(ranked).toEqual([b, a]); // b mentions 라떼 far more often
      // Relevance on its documented scale: 0–100, the best match of the query 100, in rank order.
      const scored = (
        await call('GET', `/api/v1/scripts/similar?platform=youtube&q=${encodeURIComponent('라떼')}&limit=50`)
      ).body.items as { content_id: number; relevance: number }[];
      expect(scored[0]?.relevance).toBe(100);
      for (let i = 1; i < scored.length; i++) {
        expect(scored[i]!.relevance).toBeGreaterThanOrEqual(0);
        expect(scored[i]!.relevance).toBeLessThanOrEqual(scored[i - 1]!.relevance);
      }
      const rel = (id: number) => scored.find((x) => x.content_id === id)!.relevance;
      expect(rel(a)).toBeGreaterThan(0);
      expect(rel(a)).toBeLessThan(rel(b));
      expect(
        (
          (await call('GET', '/api/v1/scripts/similar?platform=youtube&limit=5')).body.items as {
            relevance: null;
          }[]
        ).every((x) => x.relevance === null),
      ).toBe(true);
      expect(await ids(`platform=youtube&q=${encodeURIComponent('에스프레소')}`)).toEqual([c]);
      expect(await ids('platform=tiktok&q=zzzz')).toEqual([]);
      const one = await call(
        'GET',
        `/api/v1/scripts/similar?platform=youtube&q=${encodeURIComponent('라떼')}&limit=1`,
      );
      expect(one.body.items).toEqual([
        expect.objectContaining({
          content_id: b,
          excerpt: expect.any(String),
          relevance: expect.any(Number),
        }),
      ]);
      expect(errCode(await call('GET', '/api/v1/scripts/similar'))).toBe('VALIDATION_FAILED');
      expect(errCode(await call('GET', '/api/v1/scripts/similar?platform=youtube&limit=0'))).toBe(
        'VALIDATION_FAILED',
      );
    });
  });

  describe('protocol errors', () => {
    it('maps body limit, content type, bad JSON and unknown routes to the catalogue', async () => {
      const big = await t.app.inject({
        method: 'POST',
        url: '/api/v1/clients',
        headers: { ...t.as('editor'), 'content-type': 'application/json' },
        payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
      });
      expect(big.statusCode).toBe(413);
      expect(big.json().error.code).toBe('PAYLOAD_TOO_LARGE');
      const xml = await t.app.inject({
        method: 'POST',
        url: '/api/v1/clients',
        headers: { ...t.as('editor'), 'content-type': 'application/xml' },
        payload: '<client/>',
      });
      expect(xml.statusCode).toBe(415);
      expect(xml.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      const broken = await t.app.inject({
        method: 'POST',
        url: '/api/v1/clients',
        headers: { ...t.as('editor'), 'content-type': 'application/json' },
        payload: '{"name": ',
      });
      expect(broken.statusCode).toBe(400);
      expect(broken.json().error.code).toBe('INVALID_JSON');
      const proto = await t.app.inject({
        method: 'POST',
        url: '/api/v1/clients',
        headers: { ...t.as('editor'), 'content-type': 'application/json' },
        payload: '{"name":"x","__proto__":{"admin":true}}',
      });
      expect(proto.statusCode).toBe(400);
      const nul = await call('POST', '/api/v1/clients', { name: 'a\u0000b' });
      expect(errCode(nul)).toBe('VALIDATION_FAILED');
      const missing = await t.app.inject({
        method: 'GET',
        url: '/api/v1/nothing-here',
        headers: t.as('viewer'),
      });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('NOT_FOUND');
    });

    it('serves health, readiness, the OpenAPI document and the docs page without a key', async () => {
      expect((await t.app.inject({ url: '/health' })).json()).toEqual({ status: 'ok' });
      expect((await t.app.inject({ url: '/ready' })).json()).toEqual({ status: 'ready', database: backend });
      const doc = (await t.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/api/v1/campaigns',
          '/api/v1/contents/{id}/script',
          '/api/v1/scripts/similar',
        ]),
      );
      const docs = await t.app.inject({ url: '/docs/' });
      expect(docs.statusCode).toBe(200);
      expect(docs.headers['content-type']).toContain('text/html');
    });
  });
});
