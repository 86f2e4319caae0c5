import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/db/database.js';
import { analyse, parseWav } from '../../src/media/audio/wav.js';
import { ChangeFeed } from '../../src/domain/changes.js';
import { createMediaServices, type MediaServices } from '../../src/media/media-services.js';
import type { NarrationProgress } from '../../src/media/narration.service.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { apiError, FakeVendors, type Responder } from './fake-vendors.js';
import { mediaConfig, openMigrated, storedFile, seedContent, silentLogger } from './media-fixtures.js';

const SCRIPT = ['안녕하세요, 오늘커피입니다.', '봄 한정 라떼가 3개 남았습니다.', '지금 바로 주문하세요!'];
const RIGHT = '안녕하세요 오늘커피입니다 봄 한정 라떼가 세 개 남았습니다 지금 바로 주문하세요';
const CLOSE = '안녕하세요 오늘커피입니다 봄 한정 라떼가 세 개 남았어요 지금 주문하세요'; // ~0.85
const CLOSER = '안녕하세요 오늘커피입니다 봄 한정 라떼가 세 개 남았습니다 지금 주문하세요'; // ~0.94
const WRONG = '내일 날씨는 맑겠습니다';

const transcript = (text: string) => () => ({
  status: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ text }),
});

describe.each(dbBackends())('Zero-Fault narration (%s)', (backend) => {
  const fake = new FakeVendors();
  let handle: DatabaseHandle;
  let media: MediaServices;

  beforeAll(async () => {
    await fake.start();
    handle = await openMigrated(await freshDatabaseConfig(backend));
    media = createMediaServices(
      mediaConfig({
        OPENAI_BASE_URL: `${fake.url}/v1`,
        OPENAI_API_KEY: 'sk-test',
        NARRATION_VERIFIER: 'openai',
        VENDOR_RETRY_BASE_MS: '10',
      }),
      handle.db,
      handle.dialect,
      silentLogger,
      { changes: new ChangeFeed(silentLogger) },
    );
  });
  afterAll(async () => {
    await media?.close();
    await handle?.close();
    await fake.close();
  });

  async function generation(blocks: string[] = SCRIPT, provider = 'openai') {
    const seeded = await seedContent(handle.db, blocks);
    const gen = await media.repo.createAudioGeneration({
      content_id: seeded.contentId,
      provider,
      voice: null,
      language: 'ko',
      text_hash: null,
    });
    return { ...seeded, gen };
  }

  const stt = (...r: Responder[]) => fake.reply('/audio/transcriptions', ...r);
  const sttCalls = () => fake.callsTo('/audio/transcriptions').length;

  it('wrong then right: two attempts, succeeded, files, timings, usage and costs recorded', async () => {
    const { gen, contentId } = await generation();
    stt(transcript(CLOSE), transcript(RIGHT));
    const progress: NarrationProgress[] = [];
    const before = sttCalls();
    const out = await media.narration.narrate({
      generationId: gen.id,
      taskId: 'task-1',
      onProgress: (p) => void progress.push(p),
    });
    expect(out).toMatchObject({
      status: 'succeeded',
      attempts: 2,
      verifier: 'openai',
      score: 1,
      similarity: 1,
      error: null,
    });
    expect(sttCalls() - before).toBe(2);

    const row = await media.repo.audioGeneration(gen.id);
    expect(row).toMatchObject({
      status: 'succeeded',
      attempts: 2,
      verifier: 'openai',
      score: 1,
      similarity: 1,
      task_id: 'task-1',
      audio_path: 'audio/' + gen.id + '/narration.wav',
    });
    expect(row?.finished_at).not.toBeNull();
    const wav = parseWav(fs.readFileSync(await storedFile(media.storage, row?.audio_path ?? '')));
    expect(row?.duration_s).toBeCloseTo(wav.samples.length / wav.sampleRate, 2);
    expect((await media.storage.file(`audio/${gen.id}/narration.m4a`))?.size).toBeGreaterThan(1000);

    const manifest = await media.narration.manifest(gen.id);
    expect(manifest?.timings).toHaveLength(3);
    const t = manifest?.timings ?? [];
    for (let i = 1; i < t.length; i++) expect(t[i]?.start_s).toBeGreaterThan(t[i - 1]?.end_s ?? 0);
    expect(t.at(-1)?.end_s).toBeCloseTo(manifest?.duration_s ?? 0, 2);
    expect(t[1]?.spoken).toBe('봄 한정 라떼가 세 개 남았습니다.');
    expect(manifest?.attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(manifest?.attempts[0]?.mismatches.length).toBeGreaterThan(0);

    // 3 TTS calls per attempt + 1 transcription per attempt, each priced
    const usage = await media.repo.usageFor(contentId);
    expect(usage.filter((u) => u.operation === 'tts')).toHaveLength(6);
    expect(usage.filter((u) => u.operation === 'stt')).toHaveLength(2);
    expect(usage.every((u) => u.task_id === 'task-1' && u.content_id === contentId)).toBe(true);
    const chars = usage.filter((u) => u.operation === 'tts').reduce((n, u) => n + u.units, 0);
    const seconds = usage.filter((u) => u.operation === 'stt').reduce((n, u) => n + u.units, 0);
    expect(row?.cost_usd).toBeCloseTo(chars * 15e-6 + seconds * (0.006 / 60), 6);

    const content = await handle.db
      .selectFrom('contents')
      .select('status')
      .where('id', '=', contentId)
      .executeTakeFirst();
    expect(content?.status).toBe('audio_ready');
    expect(progress.map((p) => p.stage)).toEqual(
      expect.arrayContaining(['prepare', 'tts', 'verify', 'store', 'done']),
    );
    expect(progress.at(-1)?.percent).toBe(100);
    const percents = progress.map((p) => p.percent);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
  });

  it('always wrong: partial after max attempts, keeping the best attempt', async () => {
    const { gen, contentId } = await generation();
    stt(transcript(CLOSE), transcript(CLOSER), transcript(CLOSE));
    const out = await media.narration.narrate({ generationId: gen.id, maxAttempts: 3 });
    expect(out.status).toBe('partial');
    expect(out.attempts).toBe(3);
    const manifest = await media.narration.manifest(gen.id);
    expect(manifest?.best_attempt).toBe(2);
    expect(out.similarity).toBe(manifest?.attempts[1]?.similarity);
    expect(out.similarity).toBeLessThan(0.95);
    expect(out.error).toMatch(/below the threshold 0.95/);
    const content = await handle.db
      .selectFrom('contents')
      .select('status')
      .where('id', '=', contentId)
      .executeTakeFirst();
    expect(content?.status).toBe('scripted');
  });

  it('a structurally wrong first attempt stops early as failed', async () => {
    const { gen } = await generation();
    stt(transcript(WRONG));
    const before = sttCalls();
    const out = await media.narration.narrate({ generationId: gen.id, maxAttempts: 5 });
    expect(out).toMatchObject({ status: 'failed', attempts: 1, structuralMismatch: true });
    expect(sttCalls() - before).toBe(1);
    expect((await media.repo.audioGeneration(gen.id))?.error).toMatch(/structural mismatch/);
  });

  it('uses the threshold and attempt limit of the request', async () => {
    const { gen } = await generation();
    stt(transcript(CLOSE));
    const lenient = await media.narration.narrate({ generationId: gen.id, threshold: 0.8 });
    expect(lenient).toMatchObject({ status: 'succeeded', attempts: 1 });
    const strict = await generation();
    stt(transcript(CLOSE), transcript(CLOSE));
    const out = await media.narration.narrate({ generationId: strict.gen.id, maxAttempts: 2 });
    expect(out).toMatchObject({ status: 'partial', attempts: 2 });
  });

  it('429 from the transcription API is retried, then succeeds', async () => {
    const { gen } = await generation();
    stt(() => apiError(429, 'Rate limit reached for whisper-1', { 'retry-after': '0' }), transcript(RIGHT));
    const before = sttCalls();
    const out = await media.narration.narrate({ generationId: gen.id });
    expect(out).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(sttCalls() - before).toBe(2);
  });

  it('401 from the transcription API fails at once', async () => {
    const { gen } = await generation();
    stt(() => apiError(401, 'Incorrect API key provided'));
    const before = sttCalls();
    const out = await media.narration.narrate({ generationId: gen.id });
    expect(out.status).toBe('failed');
    expect(out.error).toMatch(/401/);
    expect(sttCalls() - before).toBe(1);
    const row = await media.repo.audioGeneration(gen.id);
    expect(row).toMatchObject({ status: 'failed', audio_path: null });
  });

  it('a vendor outage that outlasts the retries is thrown for the job system to retry', async () => {
    const { gen } = await generation();
    for (let i = 0; i < 4; i++) stt(() => apiError(503, 'overloaded'));
    await expect(media.narration.narrate({ generationId: gen.id })).rejects.toMatchObject({
      kind: 'unavailable',
      retryable: true,
    });
    const row = await media.repo.audioGeneration(gen.id);
    expect(row?.status).toBe('running');
    expect(row?.error).toMatch(/^retrying: /);
  });

  it('fails without vendor calls for a content without text, or an unknown provider', async () => {
    const before = fake.calls.length;
    const empty = await generation(['   ']);
    expect(await media.narration.narrate({ generationId: empty.gen.id })).toMatchObject({
      status: 'failed',
      attempts: 0,
    });
    const unknown = await generation(SCRIPT, 'nope');
    expect((await media.narration.narrate({ generationId: unknown.gen.id })).error).toMatch(
      /unknown TTS provider/,
    );
    expect(fake.calls.length).toBe(before);
  });

  it('a retry with eSpeak is delivered differently (slower), not a copy of the failed attempt', async () => {
    const { gen } = await generation(SCRIPT, 'espeak');
    stt(transcript(CLOSE), transcript(RIGHT));
    const out = await media.narration.narrate({ generationId: gen.id });
    expect(out).toMatchObject({ status: 'succeeded', attempts: 2 });
    const attempts = (await media.narration.manifest(gen.id))?.attempts ?? [];
    expect(attempts[1]?.duration_s).toBeGreaterThan((attempts[0]?.duration_s ?? 0) * 1.04);
  });

  it('real eSpeak in Korean with the acoustic verifier: succeeded, non-silent, plausible duration', async () => {
    const local = createMediaServices(mediaConfig(), handle.db, handle.dialect, silentLogger, {
      changes: new ChangeFeed(silentLogger),
    });
    try {
      expect(local.verifier.name).toBe('acoustic');
      const seeded = await seedContent(handle.db, SCRIPT);
      const gen = await local.repo.createAudioGeneration({
        content_id: seeded.contentId,
        provider: 'espeak',
        voice: null,
        language: 'ko',
        text_hash: null,
      });
      const out = await local.narration.narrate({ generationId: gen.id });
      // The acoustic verifier hears no words: it says so, and reports no word similarity.
      expect(out).toMatchObject({
        status: 'succeeded',
        attempts: 1,
        verifier: 'acoustic',
        score: 1,
        similarity: null,
        costUsd: 0,
      });
      const row = await local.repo.audioGeneration(gen.id);
      expect(row).toMatchObject({ verifier: 'acoustic', score: 1, similarity: null });
      const manifest = await local.narration.manifest(gen.id);
      expect(manifest?.verifier_checks).toMatch(/no word similarity is measured/);
      expect(manifest?.attempts.every((a) => a.similarity === null)).toBe(true);
      const audio = parseWav(fs.readFileSync(await storedFile(local.storage, out.audioPath ?? '')));
      const a = analyse(audio);
      expect(a.rmsDbfs).toBeGreaterThan(-35);
      expect(a.durationS).toBeGreaterThan(4);
      expect(a.durationS).toBeLessThan(20);
      expect((await local.repo.audioGeneration(gen.id))?.voice).toBe('ko');
    } finally {
      await local.close();
    }
  });
});
