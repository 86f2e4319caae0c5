/**
 * The media API: narration (POST /contents/{id}/audio → audio.generate),
 * audio generations and their files, renders (POST /contents/{id}/renders →
 * video.render) and their files, batch narration, and vendor costs. Each
 * route validates, calls one use case of MediaRequests (src/media/media-requests.ts)
 * and shapes the reply; downloads go through sendDownload (../file-download.ts).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { CacheService } from '../../cache/cache.service.js';
import { costSummaryDeps } from '../../domain-cache/generations.js';
import { notFound } from '../../errors.js';
import type { Render } from '../../media/media.repo.js';
import type { GenerationDetails, MediaRequests } from '../../media/media-requests.js';
import { RENDER_QUALITIES } from '../../media/render/presets.js';
import { sendDownload } from '../file-download.js';
import { DateOnly, Id, IdParams, Nullable, Platform, StringEnum, Text, errorResponses } from '../schemas.js';

export interface MediaRoutesOptions {
  media: MediaRequests;
  /** Caches cost summaries until narration records more usage (absent: no cache). */
  cache?: CacheService;
}

/** File routes take the id as an opaque string: anything but a known row's id (a path, say) is simply not found. */
const FileParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
const DOWNLOAD_NOTE =
  'Sends ETag and Last-Modified; answers 304 to If-None-Match (or If-Modified-Since); supports Range with one or several ranges (206, multipart/byteranges for several) and If-Range.';

const fileId = (raw: string): number | undefined => (/^[1-9]\d{0,9}$/.test(raw) ? Number(raw) : undefined);

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
  verifier: Type.Object(
    {
      name: Type.String({
        description: '`openai` (speech-to-text) or `acoustic` (no speech-to-text configured)',
      }),
      checks: Type.String({ description: 'what that verifier checks' }),
    },
    { description: 'The verifier that judged (or will judge) this narration.' },
  ),
  score: Nullable(
    Type.Number({
      description:
        "the verifier's verdict 0..1, compared with the threshold (acoustic: share of its checks passed)",
    }),
  ),
  similarity: Nullable(
    Type.Number({
      description:
        'word similarity 0..1 of the transcript to the script, only when speech-to-text measured it; null otherwise',
    }),
  ),
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
  captions_srt_url: Nullable(Type.String()),
  captions_vtt_url: Nullable(Type.String()),
  options: Nullable(
    Type.Unknown({ description: 'what the render was asked for (cards, zoom, music, logo)' }),
  ),
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

export const mediaRoutes: FastifyPluginAsyncTypebox<MediaRoutesOptions> = async (app, { media, cache }) => {
  function generationView({ generation: g, manifest, verifier }: GenerationDetails) {
    return {
      id: g.id,
      content_id: g.content_id,
      task_id: g.task_id,
      status: g.status,
      provider: g.provider,
      voice: g.voice,
      language: g.language,
      duration_s: g.duration_s,
      verifier,
      score: g.score,
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

  function renderView(r: Render) {
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
      captions_srt_url: r.captions_srt_path ? `/api/v1/renders/${r.id}/captions.srt` : null,
      captions_vtt_url: r.captions_vtt_path ? `/api/v1/renders/${r.id}/captions.vtt` : null,
      options: r.options ? (JSON.parse(r.options) as unknown) : null,
    };
  }

  const accepted = (taskId: string, idField: string, id: number) => ({
    task_id: taskId,
    [idField]: id,
    status: 'queued' as const,
    state_url: `/api/v1/tasks/${taskId}`,
  });

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
      const b = req.body;
      const q = await media.requestNarration(req.params.id, {
        provider: b.provider,
        voice: b.voice,
        threshold: b.threshold,
        maxAttempts: b.max_attempts,
      });
      return reply.status(202).send(accepted(q.taskId, 'generation_id', q.generationId));
    },
  );

  app.get(
    '/audio-generations/:id',
    { schema: { tags, params: IdParams, response: { 200: AudioGenerationSchema, ...errorResponses(404) } } },
    async (req) => generationView(await media.audioGeneration(req.params.id)),
  );

  app.get(
    '/audio-generations/:id/download',
    {
      schema: {
        tags,
        description: `The narration: WAV (default) or the compressed m4a copy. ${DOWNLOAD_NOTE}`,
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
      if (id === undefined) throw notFound('AUDIO_GENERATION_NOT_FOUND', 'audio generation', req.params.id);
      return sendDownload(req, reply, await media.narrationDownload(id, req.query.format ?? 'wav'));
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
            title_card: Type.Optional(
              Type.Boolean({
                description: "a 2 s title card with the content's title first (default false)",
              }),
            ),
            end_card: Type.Optional({
              ...Text(120, 1),
              description: 'an end card with this call to action (2.5 s)',
            }),
            zoom: Type.Optional(
              Type.Boolean({ description: 'image backgrounds zoom slowly (default false)' }),
            ),
            music: Type.Optional(
              Type.Boolean({
                description: "mix the content's (else the campaign's) music, ducked (default true)",
              }),
            ),
            logo: Type.Optional(Type.Boolean({ description: "draw the client's logo (default true)" })),
          },
          { additionalProperties: false },
        ),
        response: { 202: Accepted('render_id'), ...errorResponses(400, 404, 422) },
      },
    },
    async (req, reply) => {
      const q = await media.requestRender(req.params.id, req.body);
      return reply.status(202).send(accepted(q.taskId, 'render_id', q.renderId));
    },
  );

  app.get(
    '/renders/:id',
    { schema: { tags, params: IdParams, response: { 200: RenderSchema, ...errorResponses(404) } } },
    async (req) => renderView(await media.render(req.params.id)),
  );

  app.get(
    '/renders/:id/download',
    {
      schema: {
        tags,
        description: `The MP4. ${DOWNLOAD_NOTE}`,
        params: FileParams,
        response: errorResponses(404, 416),
      },
    },
    async (req, reply) => {
      const id = fileId(req.params.id);
      if (id === undefined) throw notFound('RENDER_NOT_FOUND', 'render', req.params.id);
      return sendDownload(req, reply, await media.renderDownload(id));
    },
  );

  app.get(
    '/renders/:id/captions.:format',
    {
      schema: {
        tags,
        description: `The captions as SubRip (\`captions.srt\`) or WebVTT (\`captions.vtt\`), with the timings burned into the MP4. ${DOWNLOAD_NOTE}`,
        params: Type.Object(
          { id: Type.String({ minLength: 1, maxLength: 200 }), format: StringEnum(['srt', 'vtt'] as const) },
          { additionalProperties: false },
        ),
        response: errorResponses(400, 404, 416),
      },
    },
    async (req, reply) => {
      const id = fileId(req.params.id);
      if (id === undefined) throw notFound('RENDER_NOT_FOUND', 'render', req.params.id);
      return sendDownload(req, reply, await media.captionsDownload(id, req.params.format));
    },
  );

  app.get(
    '/renders/:id/thumbnail',
    {
      schema: {
        tags,
        description: `The PNG thumbnail. ${DOWNLOAD_NOTE}`,
        params: FileParams,
        response: errorResponses(404, 416),
      },
    },
    async (req, reply) => {
      const id = fileId(req.params.id);
      if (id === undefined) throw notFound('RENDER_NOT_FOUND', 'render', req.params.id);
      return sendDownload(req, reply, await media.thumbnailDownload(id));
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
      const { content_ids, max_attempts, ...o } = req.body;
      const q = await media.requestNarrationBatch(content_ids, { ...o, maxAttempts: max_attempts });
      return reply
        .status(202)
        .send({ task_id: q.taskId, contents: q.contents, state_url: `/api/v1/tasks/${q.taskId}` });
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
      const load = () =>
        media.costs({
          from: q.from,
          to: q.to,
          provider: q.provider,
          operation: q.operation,
          campaignId: q.campaign_id,
          contentId: q.content_id,
        });
      return cache ? cache.getOrSet('cost_summary', [q], load, { deps: costSummaryDeps }) : load();
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
    async (req) =>
      media.estimateNarration(req.query.content_id, {
        provider: req.query.provider,
        maxAttempts: req.query.max_attempts,
      }),
  );
};
