/**
 * The media API: narration (POST /contents/{id}/audio → audio.generate),
 * audio generations and their files, renders (POST /contents/{id}/renders →
 * video.render) and their files, batch narration, and vendor costs. What
 * cannot succeed is refused here with 422 and a reason, before anything is
 * queued. Files are found from their row by id, never from a client path.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { CacheService } from '../../cache/cache.service.js';
import { gens } from '../../cache/cached-services.js';
import { AppError, notFound } from '../../errors.js';
import type { Jobs } from '../../jobs/jobs.js';
import type { ContentContext } from '../../media/media.repo.js';
import type { MediaServices } from '../../media/media-services.js';
import { estimateNarration } from '../../media/pricing.js';
import { RENDER_PRESETS, RENDER_QUALITIES } from '../../media/render/presets.js';
import { silentBlockDuration } from '../../media/render/render.service.js';
import { countSyllables } from '../../media/stt/acoustic.verifier.js';
import { normalizeNarration } from '../../media/text/normalize.js';
import type { TtsProvider } from '../../media/tts/tts-provider.js';
import { DateOnly, Id, IdParams, Nullable, Platform, StringEnum, errorResponses } from '../schemas.js';

export interface MediaRoutesOptions {
  jobs: Jobs;
  media: MediaServices;
  /** Caches cost summaries until narration records more usage (absent: no cache). */
  cache?: CacheService;
}

/** File routes take the id as an opaque string: anything but a known row's id (a path, say) is simply not found. */
const FileParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
const fileId = (raw: string): number | undefined => (/^[1-9]\d{0,9}$/.test(raw) ? Number(raw) : undefined);

const refuse = (reason: string, message: string, details: Record<string, unknown> = {}) =>
  new AppError('UNPROCESSABLE', message, { reason, ...details });

const NarrationOptions = {
  provider: Type.Optional(
    Type.String({ minLength: 1, maxLength: 40, description: 'espeak (default), openai, elevenlabs' }),
  ),
  voice: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "the provider's voice" })),
  threshold: Type.Optional(
    Type.Number({ minimum: 0, maximum: 1, description: 'similarity needed (default 0.95)' }),
  ),
  max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'default 5' })),
};

const AudioGenerationSchema = Type.Object({
  id: Id,
  content_id: Id,
  task_id: Nullable(Type.String()),
  status: Type.String(),
  provider: Type.String(),
  voice: Nullable(Type.String()),
  language: Type.String(),
  duration_s: Nullable(Type.Number()),
  similarity: Nullable(Type.Number()),
  attempts: Type.Integer(),
  cost_usd: Type.Number(),
  error: Nullable(Type.String()),
  created_at: Type.String(),
  finished_at: Nullable(Type.String()),
  download_url: Nullable(Type.String()),
  compressed_url: Nullable(Type.String()),
  timings: Type.Array(
    Type.Object({ block_id: Id, sequence: Type.Integer(), start_s: Type.Number(), end_s: Type.Number() }),
  ),
  attempt_reports: Type.Array(Type.Unknown()),
});

const RenderSchema = Type.Object({
  id: Id,
  content_id: Id,
  task_id: Nullable(Type.String()),
  status: Type.String(),
  preset: Platform,
  width: Type.Integer(),
  height: Type.Integer(),
  fps: Type.Integer(),
  duration_s: Nullable(Type.Number()),
  size_bytes: Nullable(Type.Integer()),
  error: Nullable(Type.String()),
  created_at: Type.String(),
  finished_at: Nullable(Type.String()),
  download_url: Nullable(Type.String()),
  thumbnail_url: Nullable(Type.String()),
});

const Accepted = (idField: string) =>
  Type.Object({
    task_id: Type.String(),
    [idField]: Id,
    status: Type.Literal('queued'),
    state_url: Type.String(),
  });

const CostGroup = Type.Object({
  key: Type.String(),
  cost_usd: Type.Number(),
  calls: Type.Integer(),
  units: Type.Number(),
});

/** Sends a stored file, honouring a single `Range: bytes=a-b` (206, 416 when unsatisfiable). */
async function sendFile(
  reply: FastifyReply,
  abs: string,
  type: string,
  range: string | undefined,
  name: string,
) {
  let size: number;
  try {
    size = (await fs.stat(abs)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new AppError('MEDIA_FILE_NOT_FOUND', 'the file is no longer stored');
    throw err;
  }
  reply.header('accept-ranges', 'bytes').header('content-type', type);
  reply.header('content-disposition', `inline; filename="${name}"`);
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    let start = m?.[1] ? Number(m[1]) : undefined;
    let end = m?.[2] ? Number(m[2]) : undefined;
    if (m && start === undefined && end !== undefined) {
      // suffix range: the last N bytes
      start = Math.max(0, size - end);
      end = size - 1;
    }
    if (!m || start === undefined || start >= size || (end !== undefined && end < start)) {
      reply.header('content-range', `bytes */${size}`);
      throw new AppError('RANGE_NOT_SATISFIABLE', `range ${range} is outside the file (${size} bytes)`, {
        size,
      });
    }
    end = Math.min(end ?? size - 1, size - 1);
    reply
      .status(206)
      .header('content-range', `bytes ${start}-${end}/${size}`)
      .header('content-length', end - start + 1);
    return reply.send(createReadStream(abs, { start, end }));
  }
  reply.header('content-length', size);
  return reply.send(createReadStream(abs));
}

export const mediaRoutes: FastifyPluginAsyncTypebox<MediaRoutesOptions> = async (
  app,
  { jobs, media, cache },
) => {
  const { repo, storage } = media;

  async function content(id: number): Promise<ContentContext> {
    const c = await repo.contentContext(id);
    if (!c) throw notFound('CONTENT_NOT_FOUND', 'content', id);
    return c;
  }

  function provider(name: string | undefined): TtsProvider {
    const n = name ?? media.config.defaultTtsProvider;
    const p = media.tts.get(n);
    if (!p)
      throw refuse('unknown_provider', `provider: ${n} is not configured`, {
        field: 'provider',
        available: [...media.tts.keys()],
      });
    return p;
  }

  /** The checks a narration must pass before it is queued; returns the voice to use and the script size. */
  function checkNarratable(c: ContentContext, p: TtsProvider, voice: string | undefined) {
    if (voice !== undefined && !p.isKnownVoice(voice))
      throw refuse('unknown_voice', `voice: ${voice} is not a ${p.name} voice`, { field: 'voice' });
    if (c.blocks.length === 0) throw refuse('no_blocks', `content ${c.content_id} has no script blocks`);
    const spoken = c.blocks.map((b) => normalizeNarration(b.text, c.language).text.trim());
    if (spoken.every((t) => t === ''))
      throw refuse('empty_text', `content ${c.content_id} has no text to narrate`);
    const chars = c.blocks.reduce((n, b) => n + [...b.text].length, 0);
    const max = media.config.narration.maxChars;
    if (chars > max)
      throw refuse('text_too_long', `the script has ${chars} characters; at most ${max} are narrated`, {
        chars,
        max,
      });
    const long = spoken.findIndex((t) => [...t].length > p.maxCharsPerCall);
    if (long >= 0)
      throw refuse(
        'block_too_long',
        `block ${c.blocks[long]?.sequence} is longer than ${p.maxCharsPerCall} characters for ${p.name}`,
        { max: p.maxCharsPerCall },
      );
    // The campaign's voice is used when it belongs to this provider.
    const chosen = voice ?? (c.voice && p.isKnownVoice(c.voice) ? c.voice : p.defaultVoice(c.language));
    return { voice: chosen, chars, spoken };
  }

  async function generationView(id: number) {
    const g = await repo.audioGeneration(id);
    if (!g) throw notFound('AUDIO_GENERATION_NOT_FOUND', 'audio generation', id);
    const manifest = g.audio_path ? await media.narration.manifest(g.id) : undefined;
    return {
      id: g.id,
      content_id: g.content_id,
      task_id: g.task_id,
      status: g.status,
      provider: g.provider,
      voice: g.voice,
      language: g.language,
      duration_s: g.duration_s,
      similarity: g.similarity,
      attempts: g.attempts,
      cost_usd: g.cost_usd,
      error: g.error,
      created_at: g.created_at,
      finished_at: g.finished_at,
      download_url: g.audio_path ? `/api/v1/audio-generations/${g.id}/download` : null,
      compressed_url: manifest?.compressed ? `/api/v1/audio-generations/${g.id}/download?format=m4a` : null,
      timings: (manifest?.timings ?? []).map((t) => ({
        block_id: t.block_id,
        sequence: t.sequence,
        start_s: t.start_s,
        end_s: t.end_s,
      })),
      attempt_reports: manifest?.attempts ?? [],
    };
  }

  async function renderView(id: number) {
    const r = await repo.render(id);
    if (!r) throw notFound('RENDER_NOT_FOUND', 'render', id);
    return {
      id: r.id,
      content_id: r.content_id,
      task_id: r.task_id,
      status: r.status,
      preset: r.preset,
      width: r.width,
      height: r.height,
      fps: r.fps,
      duration_s: r.duration_s,
      size_bytes: r.size_bytes,
      error: r.error,
      created_at: r.created_at,
      finished_at: r.finished_at,
      download_url: r.output_path ? `/api/v1/renders/${r.id}/download` : null,
      thumbnail_url: r.thumbnail_path ? `/api/v1/renders/${r.id}/thumbnail` : null,
    };
  }

  const tags = ['media'];

  app.post(
    '/contents/:id/audio',
    {
      schema: {
        tags,
        description:
          'Queues Zero-Fault narration (audio.generate, high_priority). 202 with the task and generation ids; 422 with `details.reason` when it cannot succeed (no_blocks, empty_text, unknown_provider, unknown_voice, text_too_long, block_too_long).',
        params: IdParams,
        body: Type.Object(NarrationOptions, { additionalProperties: false }),
        response: { 202: Accepted('generation_id'), ...errorResponses(400, 404, 422) },
      },
    },
    async (req, reply) => {
      const c = await content(req.params.id);
      const p = provider(req.body.provider);
      const { voice } = checkNarratable(c, p, req.body.voice);
      const gen = await repo.createAudioGeneration({
        content_id: c.content_id,
        provider: p.name,
        voice,
        language: c.language,
        text_hash: null,
      });
      try {
        const job = await jobs.enqueue(
          'audio.generate',
          {
            generation_id: gen.id,
            ...(req.body.threshold !== undefined ? { threshold: req.body.threshold } : {}),
            ...(req.body.max_attempts !== undefined ? { max_attempts: req.body.max_attempts } : {}),
          },
          { idempotencyKey: `audio:${gen.id}` },
        );
        await repo.updateAudioGeneration(gen.id, { task_id: job.id });
        return reply.status(202).send({
          task_id: job.id,
          generation_id: gen.id,
          status: 'queued' as const,
          state_url: `/api/v1/tasks/${job.id}`,
        });
      } catch (err) {
        await repo.updateAudioGeneration(gen.id, {
          status: 'failed',
          error: `could not queue: ${(err as Error).message}`,
        });
        throw err;
      }
    },
  );

  app.get(
    '/audio-generations/:id',
    { schema: { tags, params: IdParams, response: { 200: AudioGenerationSchema, ...errorResponses(404) } } },
    async (req) => generationView(req.params.id),
  );

  app.get(
    '/audio-generations/:id/download',
    {
      schema: {
        tags,
        description: 'The narration: WAV (default) or the compressed m4a copy. Supports Range requests.',
        params: FileParams,
        querystring: Type.Object(
          { format: Type.Optional(StringEnum(['wav', 'm4a'] as const)) },
          { additionalProperties: false },
        ),
        response: errorResponses(404, 416),
      },
    },
    async (req, reply) => {
      const id = fileId(req.params.id);
      const g = id === undefined ? undefined : await repo.audioGeneration(id);
      if (!g) throw notFound('AUDIO_GENERATION_NOT_FOUND', 'audio generation', req.params.id);
      if (!g.audio_path)
        throw new AppError(
          'MEDIA_FILE_NOT_FOUND',
          `audio generation ${g.id} has no audio (status ${g.status})`,
        );
      const m4a = req.query.format === 'm4a';
      const rel = m4a ? path.join(path.dirname(g.audio_path), 'narration.m4a') : g.audio_path;
      return sendFile(
        reply,
        storage.resolve(rel),
        m4a ? 'audio/mp4' : 'audio/wav',
        req.headers.range,
        `narration-${g.id}.${m4a ? 'm4a' : 'wav'}`,
      );
    },
  );

  app.post(
    '/contents/:id/renders',
    {
      schema: {
        tags,
        description:
          "Queues a video render (video.render, default queue, sandboxed). Uses the content's latest good narration, or block durations when `silent`. 202; 422 with `details.reason` (no_blocks, no_narration, ffmpeg_unavailable).",
        params: IdParams,
        body: Type.Object(
          {
            preset: Type.Optional(Platform),
            quality: Type.Optional(StringEnum(RENDER_QUALITIES)),
            silent: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 202: Accepted('render_id'), ...errorResponses(400, 404, 422) },
      },
    },
    async (req, reply) => {
      const c = await content(req.params.id);
      if (!media.ffmpegPath) throw refuse('ffmpeg_unavailable', media.ffmpegError ?? 'ffmpeg not found');
      if (c.blocks.length === 0) throw refuse('no_blocks', `content ${c.content_id} has no script blocks`);
      if (!req.body.silent && !(await repo.latestGoodAudio(c.content_id)))
        throw refuse(
          'no_narration',
          `content ${c.content_id} has no narration yet; generate audio first or render with "silent": true`,
        );
      const preset = req.body.preset ?? c.platform;
      const size = RENDER_PRESETS[preset];
      const row = await repo.createRender({
        content_id: c.content_id,
        preset,
        width: size.width,
        height: size.height,
        fps: size.fps,
      });
      try {
        const job = await jobs.enqueue(
          'video.render',
          {
            render_id: row.id,
            quality: req.body.quality ?? 'medium',
            ...(req.body.silent ? { silent: true } : {}),
          },
          { idempotencyKey: `render:${row.id}` },
        );
        await repo.updateRender(row.id, { task_id: job.id });
        return reply.status(202).send({
          task_id: job.id,
          render_id: row.id,
          status: 'queued' as const,
          state_url: `/api/v1/tasks/${job.id}`,
        });
      } catch (err) {
        await repo.updateRender(row.id, {
          status: 'failed',
          error: `could not queue: ${(err as Error).message}`,
        });
        throw err;
      }
    },
  );

  app.get(
    '/renders/:id',
    { schema: { tags, params: IdParams, response: { 200: RenderSchema, ...errorResponses(404) } } },
    async (req) => renderView(req.params.id),
  );

  app.get(
    '/renders/:id/download',
    {
      schema: {
        tags,
        description: 'The MP4. Supports Range requests.',
        params: FileParams,
        response: errorResponses(404, 416),
      },
    },
    async (req, reply) => {
      const id = fileId(req.params.id);
      const r = id === undefined ? undefined : await repo.render(id);
      if (!r) throw notFound('RENDER_NOT_FOUND', 'render', req.params.id);
      if (!r.output_path)
        throw new AppError('MEDIA_FILE_NOT_FOUND', `render ${r.id} has no video (status ${r.status})`);
      return sendFile(
        reply,
        storage.resolve(r.output_path),
        'video/mp4',
        req.headers.range,
        `render-${r.id}.mp4`,
      );
    },
  );

  app.get(
    '/renders/:id/thumbnail',
    {
      schema: { tags, description: 'The PNG thumbnail.', params: FileParams, response: errorResponses(404) },
    },
    async (req, reply) => {
      const id = fileId(req.params.id);
      const r = id === undefined ? undefined : await repo.render(id);
      if (!r) throw notFound('RENDER_NOT_FOUND', 'render', req.params.id);
      if (!r.thumbnail_path)
        throw new AppError('MEDIA_FILE_NOT_FOUND', `render ${r.id} has no thumbnail (status ${r.status})`);
      return sendFile(reply, storage.resolve(r.thumbnail_path), 'image/png', undefined, `render-${r.id}.png`);
    },
  );

  app.post(
    '/audio/batch',
    {
      schema: {
        tags,
        description:
          'Queues narration of many contents (audio.batch, low_priority); the task result is a summary. 422 when a content cannot be narrated.',
        body: Type.Object(
          {
            content_ids: Type.Array(Id, { minItems: 1, maxItems: 500, uniqueItems: true }),
            ...NarrationOptions,
          },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({ task_id: Type.String(), contents: Type.Integer(), state_url: Type.String() }),
          ...errorResponses(400, 404, 422),
        },
      },
    },
    async (req, reply) => {
      const p = provider(req.body.provider);
      for (const id of req.body.content_ids) checkNarratable(await content(id), p, req.body.voice);
      const { content_ids, ...rest } = req.body;
      const job = await jobs.enqueue('audio.batch', { content_ids, ...rest, provider: p.name });
      return reply
        .status(202)
        .send({ task_id: job.id, contents: content_ids.length, state_url: `/api/v1/tasks/${job.id}` });
    },
  );

  app.get(
    '/costs',
    {
      schema: {
        tags,
        description: 'Vendor spend recorded in ai_api_usage: total, and by UTC day, provider and campaign.',
        querystring: Type.Object(
          {
            from: Type.Optional(DateOnly),
            to: Type.Optional(DateOnly),
            provider: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
            operation: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
            campaign_id: Type.Optional(Id),
            content_id: Type.Optional(Id),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            total_usd: Type.Number(),
            calls: Type.Integer(),
            by_day: Type.Array(CostGroup),
            by_provider: Type.Array(CostGroup),
            by_campaign: Type.Array(CostGroup),
          }),
          ...errorResponses(400),
        },
      },
    },
    async (req) => {
      const q = req.query;
      if (q.from && q.to && q.from > q.to)
        throw new AppError('VALIDATION_FAILED', 'to: must not be before from', { field: 'to' });
      const load = () =>
        repo.costs({
          from: q.from,
          to: q.to,
          provider: q.provider,
          operation: q.operation,
          campaignId: q.campaign_id,
          contentId: q.content_id,
        });
      return cache ? cache.getOrSet('cost_summary', [q], load, { deps: [gens.costs, gens.cascade] }) : load();
    },
  );

  app.get(
    '/costs/estimate',
    {
      schema: {
        tags,
        description:
          'What narrating a content would cost with a provider: one attempt and the worst case (every attempt), from the price table.',
        querystring: Type.Object(
          {
            content_id: Id,
            provider: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
            max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Unknown(), ...errorResponses(400, 404, 422) },
      },
    },
    async (req) => {
      const c = await content(req.query.content_id);
      const p = provider(req.query.provider);
      const { chars } = checkNarratable(c, p, undefined);
      const audioS = c.blocks.reduce(
        (s, b) => s + silentBlockDuration({ text: b.text, duration_s: null }),
        0,
      );
      const stt = media.verifier.name === 'openai';
      return estimateNarration(media.config.prices, {
        ttsProvider: p.name,
        ttsModel: p.model,
        sttProvider: stt ? 'openai' : null,
        sttModel: stt ? media.config.stt.model : null,
        chars,
        audioS: Math.max(audioS, countSyllables(c.blocks.map((b) => b.text).join(' ')) / 4.5),
        maxAttempts: req.query.max_attempts ?? media.config.narration.maxAttempts,
      });
    },
  );
};
