import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import { Worker } from '../../src/jobs/worker/worker.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createSystem, type System } from '../../src/main/system.js';
import { dbBackends, embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { CHILD_MODULE, until } from '../jobs/helpers.js';
import { seedContent, silentLogger, tempDir } from './media-fixtures.js';

type Mode = 'embedded' | 'distributed';
function modes(): Mode[] {
  const out: Mode[] = [];
  if (embeddedEnabled()) out.push('embedded');
  if (redisUrl() && dbBackends().includes('postgres')) out.push('distributed');
  return out;
}

// Embedded: SQLite file + SQLite queue, media in a local directory. Distributed: PostgreSQL + BullMQ
// on Redis, media in object storage (an S3-compatible server, or TEST_MEDIA_STORAGE_URL: test/support/s3.ts).
describe.each(modes())('media API (%s)', (mode) => {
  let s3: S3TestTarget | undefined;
  let system: System;
  let app: FastifyInstance;
  let worker: Worker;
  let auth: { authorization: string };
  let viewer: { authorization: string };
  const dataDir = tempDir('ov-media-api-');
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${path.join(dataDir, 'omnivibe.db')}`,
    LOG_LEVEL: 'silent',
    NARRATION_MAX_CHARS: '400',
    OPENAI_API_KEY: 'sk-estimate-only',
    NARRATION_VERIFIER: 'acoustic',
  };

  beforeAll(async () => {
    if (mode === 'distributed') {
      const pg = await freshDatabaseConfig('postgres');
      env.DATABASE_URL = (pg as { url: string }).url;
      env.REDIS_URL = redisUrl() ?? '';
      env.JOBS_REDIS_PREFIX = `ov:q:media${Math.random().toString(36).slice(2, 8)}`;
      s3 = await startS3();
      Object.assign(env, s3.env);
    }
    const config = loadConfig(env);
    system = await createSystem(config, silentLogger);
    expect(system.media.storage.kind).toBe(mode === 'embedded' ? 'local' : 's3');
    app = await buildApp(appDepsFrom(system, { logger: false }));
    auth = { authorization: `Bearer ${(await system.apiKeys.create('media', 'editor')).key}` };
    viewer = { authorization: `Bearer ${(await system.apiKeys.create('media-viewer', 'viewer')).key}` };
    worker = new Worker({
      queue: system.jobs.leasing,
      registry: system.jobs.registry,
      deps: {
        config,
        logger: silentLogger,
        db: () => system.database.db,
        dialect: system.database.dialect,
        queue: () => system.jobs.admin,
        media: () => system.media,
        changes: () => system.changes,
      },
      logger: silentLogger,
      concurrency: 2,
      idleWaitMs: 100,
      sandbox: {
        childModule: CHILD_MODULE,
        maxTasksPerChild: 10,
        maxMemoryMb: 1024,
        env: { ...process.env, ...env },
      },
    }).start();
  });
  afterAll(async () => {
    await worker?.stop({ now: true });
    await app?.close();
    await system?.close();
    await s3?.stop();
  });

  const post = (url: string, payload: unknown, headers = auth) =>
    app.inject({ method: 'POST', url: `/api/v1${url}`, payload: payload as object, headers });
  const get = (url: string, headers: Record<string, string> = auth) =>
    app.inject({ method: 'GET', url: `/api/v1${url}`, headers });
  async function finished(taskId: string) {
    await until(
      async () => ['completed', 'failed'].includes((await system.jobs.admin.get(taskId))?.state ?? ''),
      90_000,
      `task ${taskId}`,
    );
    return system.jobs.admin.get(taskId);
  }

  it('narrates, renders and serves the files by id with Range requests', async () => {
    const { contentId } = await seedContent(system.database.db, [
      '봄 신메뉴를 소개합니다.',
      '벚꽃 라떼 2잔에 5,000원!',
    ]);
    // Read (and cache) the content first: narration and rendering must invalidate it.
    const status = async () => (await get(`/contents/${contentId}`)).json<{ status: string }>().status;
    expect(await status()).toBe('scripted');
    const a = await post(`/contents/${contentId}/audio`, {
      provider: 'espeak',
      max_attempts: 2,
      threshold: 0.9,
    });
    expect(a.statusCode).toBe(202);
    const { task_id, generation_id } = a.json<{ task_id: string; generation_id: number }>();
    expect((await finished(task_id))?.state).toBe('completed');

    expect(await status()).toBe('audio_ready');
    const g = await get(`/audio-generations/${generation_id}`);
    expect(g.json()).toMatchObject({
      status: 'succeeded',
      provider: 'espeak',
      voice: 'ko',
      attempts: 1,
      task_id,
      download_url: `/api/v1/audio-generations/${generation_id}/download`,
      // No speech-to-text here: the response says which verifier ran and claims no word similarity.
      verifier: { name: 'acoustic', checks: expect.stringMatching(/no word similarity is measured/) },
      score: 1,
      similarity: null,
    });
    expect(g.json<{ timings: unknown[] }>().timings).toHaveLength(2);

    const full = await get(`/audio-generations/${generation_id}/download`);
    expect(full.statusCode).toBe(200);
    expect(full.headers['content-type']).toBe('audio/wav');
    expect(full.rawPayload.subarray(0, 4).toString()).toBe('RIFF');
    const part = await app.inject({
      method: 'GET',
      url: `/api/v1/audio-generations/${generation_id}/download`,
      headers: { ...auth, range: 'bytes=0-99' },
    });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 0-99/${full.rawPayload.length}`);
    expect(part.rawPayload.length).toBe(100);
    const tail = await app.inject({
      method: 'GET',
      url: `/api/v1/audio-generations/${generation_id}/download`,
      headers: { ...auth, range: 'bytes=-10' },
    });
    expect(tail.rawPayload).toEqual(full.rawPayload.subarray(-10));
    const beyond = await app.inject({
      method: 'GET',
      url: `/api/v1/audio-generations/${generation_id}/download`,
      headers: { ...auth, range: 'bytes=99999999-' },
    });
    expect(beyond.statusCode).toBe(416);
    expect(beyond.json().error.code).toBe('RANGE_NOT_SATISFIABLE');
    // Validators and conditional requests (issue 12): a cached copy is confirmed with 304, several
    // ranges come back as multipart/byteranges (not 416).
    expect(full.headers.etag).toMatch(/^"[0-9a-f-]+"$/); // size-mtime locally, the object's MD5 on S3
    expect(full.headers['last-modified']).toBeDefined();
    const cached = await app.inject({
      method: 'GET',
      url: `/api/v1/audio-generations/${generation_id}/download`,
      headers: { ...auth, 'if-none-match': full.headers.etag as string },
    });
    expect(cached.statusCode).toBe(304);
    const several = await app.inject({
      method: 'GET',
      url: `/api/v1/audio-generations/${generation_id}/download`,
      headers: { ...auth, range: 'bytes=0-3,8-11', 'if-range': full.headers.etag as string },
    });
    expect(several.statusCode).toBe(206);
    expect(several.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
    expect(several.rawPayload.toString('latin1')).toContain('content-range: bytes 8-11/');
    expect(several.rawPayload.toString('latin1')).toContain('WAVE');
    const m4a = await get(`/audio-generations/${generation_id}/download?format=m4a`);
    expect(m4a.statusCode).toBe(200);
    expect(m4a.rawPayload.subarray(4, 8).toString()).toBe('ftyp');

    const r = await post(`/contents/${contentId}/renders`, { preset: 'tiktok', quality: 'low' });
    expect(r.statusCode).toBe(202);
    const render = r.json<{ task_id: string; render_id: number }>();
    expect((await finished(render.task_id))?.state).toBe('completed');
    expect(await status()).toBe('rendered');
    const rv = await get(`/renders/${render.render_id}`);
    expect(rv.json()).toMatchObject({
      status: 'succeeded',
      preset: 'tiktok',
      width: 1080,
      height: 1920,
      fps: 30,
    });
    expect(rv.json<{ duration_s: number }>().duration_s).toBeCloseTo(
      g.json<{ duration_s: number }>().duration_s,
      1,
    );
    const video = await app.inject({
      method: 'GET',
      url: `/api/v1/renders/${render.render_id}/download`,
      headers: { ...auth, range: 'bytes=4-7' },
    });
    expect(video.statusCode).toBe(206);
    expect(video.rawPayload.toString()).toBe('ftyp');
    const thumb = await get(`/renders/${render.render_id}/thumbnail`);
    expect(thumb.headers['content-type']).toBe('image/png');
    expect(thumb.rawPayload.subarray(1, 4).toString()).toBe('PNG');
    // viewers may read
    expect((await get(`/renders/${render.render_id}`, viewer)).statusCode).toBe(200);
  }, 150_000);

  it('serves files by id only: a path in the id is not found', async () => {
    for (const url of [
      '/audio-generations/..%2F..%2Fetc%2Fpasswd/download',
      '/audio-generations/1%2F..%2F..%2Fomnivibe.db/download',
      '/renders/..%2Fomnivibe.db/download',
      '/renders/%2Fetc%2Fpasswd/thumbnail',
      '/renders/999999/download',
    ]) {
      const res = await get(url);
      expect(res.statusCode, `${url} ${res.body}`).toBe(404);
    }
  });

  it('refuses with 422 and a reason what cannot succeed, before queueing', async () => {
    const empty = await seedContent(system.database.db, []);
    const blank = await seedContent(system.database.db, ['   ']);
    const ok = await seedContent(system.database.db, ['정상적인 문장입니다.']);
    const long = await seedContent(system.database.db, ['가'.repeat(300), '나'.repeat(200)]);
    const reason = async (url: string, body: unknown) => {
      const res = await post(url, body);
      expect(res.statusCode, `${url} ${JSON.stringify(body)}`).toBe(422);
      return res.json<{ error: { details: { reason: string } } }>().error.details.reason;
    };
    const before = (await system.jobs.admin.counts()).reduce(
      (n, q) => n + Object.values(q.counts).reduce((a, b) => a + b, 0),
      0,
    );
    expect(await reason(`/contents/${empty.contentId}/audio`, {})).toBe('no_blocks');
    expect(await reason(`/contents/${blank.contentId}/audio`, {})).toBe('empty_text');
    expect(await reason(`/contents/${ok.contentId}/audio`, { provider: 'nope' })).toBe('unknown_provider');
    expect(await reason(`/contents/${ok.contentId}/audio`, { provider: 'espeak', voice: 'klingon' })).toBe(
      'unknown_voice',
    );
    expect(await reason(`/contents/${long.contentId}/audio`, {})).toBe('text_too_long');
    expect(await reason(`/contents/${ok.contentId}/renders`, {})).toBe('no_narration');
    expect(await reason(`/contents/${empty.contentId}/renders`, { silent: true })).toBe('no_blocks');
    expect(await reason('/audio/batch', { content_ids: [ok.contentId, empty.contentId] })).toBe('no_blocks');
    const after = (await system.jobs.admin.counts()).reduce(
      (n, q) => n + Object.values(q.counts).reduce((a, b) => a + b, 0),
      0,
    );
    expect(after).toBe(before);
    expect((await post('/contents/999999/audio', {})).statusCode).toBe(404);
    expect((await post(`/contents/${ok.contentId}/audio`, { threshold: 2 })).statusCode).toBe(400);
    expect((await post(`/contents/${ok.contentId}/audio`, {}, viewer)).statusCode).toBe(403);
  });

  it('batch narration returns a summary', async () => {
    const one = await seedContent(system.database.db, ['첫 번째 영상']);
    const two = await seedContent(system.database.db, ['두 번째 영상']);
    const res = await post('/audio/batch', { content_ids: [one.contentId, two.contentId] });
    expect(res.statusCode).toBe(202);
    const job = await finished(res.json<{ task_id: string }>().task_id);
    expect(job?.result).toMatchObject({ total: 2, succeeded: 2, failed: 0 });
  }, 60_000);

  it('reports costs by day, provider and campaign, with filters; estimates a narration', async () => {
    const { campaignId, contentId } = await seedContent(system.database.db, ['비용 계산용 문장입니다.']);
    const db = system.database.db;
    const row = (provider: string, cost: number, day: string, campaign: number | null) => ({
      provider,
      model: 'm',
      operation: 'tts',
      units: 10,
      unit: 'char',
      cost_usd: cost,
      campaign_id: campaign,
      content_id: null,
      task_id: null,
      created_at: `${day}T10:00:00.000Z`,
      updated_at: `${day}T10:00:00.000Z`,
    });
    await db
      .insertInto('ai_api_usage')
      .values([
        row('openai', 0.5, '2020-01-01', campaignId),
        row('openai', 0.25, '2020-01-02', campaignId),
        row('elevenlabs', 1, '2020-01-02', null),
      ])
      .execute();
    const res = await get('/costs?from=2020-01-01&to=2020-01-31');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      total_usd: 1.75,
      calls: 3,
      by_day: [
        { key: '2020-01-01', cost_usd: 0.5, calls: 1 },
        { key: '2020-01-02', cost_usd: 1.25, calls: 2 },
      ],
      by_provider: [
        { key: 'elevenlabs', cost_usd: 1 },
        { key: 'openai', cost_usd: 0.75 },
      ],
    });
    const byCampaign = await get(
      `/costs?from=2020-01-01&to=2020-01-31&campaign_id=${campaignId}&provider=openai`,
    );
    expect(byCampaign.json()).toMatchObject({
      total_usd: 0.75,
      calls: 2,
      by_campaign: [{ key: String(campaignId), cost_usd: 0.75 }],
    });
    expect((await get('/costs?from=2020-02-01&to=2020-01-01')).statusCode).toBe(400);

    const chars = [...'비용 계산용 문장입니다.'].length;
    const est = await get(`/costs/estimate?content_id=${contentId}&provider=openai&max_attempts=3`);
    expect(est.statusCode).toBe(200);
    expect(est.json()).toMatchObject({
      tts_provider: 'openai',
      tts_model: 'tts-1',
      chars,
      tts_usd: Math.round(chars * 15e-6 * 1e6) / 1e6,
      stt_usd: 0,
      max_attempts: 3,
      prices_known: true,
    });
    expect((await get(`/costs/estimate?content_id=${contentId}&provider=espeak`)).json()).toMatchObject({
      total_usd: 0,
    });
  });
});
