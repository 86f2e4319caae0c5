/**
 * The media use cases the API offers, one method each: ask for a narration, a
 * render or a batch of narrations (checked, then queued), estimate what a
 * narration would cost, read vendor costs, a generation or a render, and find a
 * stored file to download. What cannot succeed is refused with 422 and a reason
 * (`details.reason`) before anything is queued. Files are found from their row by
 * id, never from a client path.
 */
import path from 'node:path';
import type { Platform } from '../db/types.js';
import { AppError, notFound } from '../errors.js';
import type { EnqueueOptions, EnqueueResult } from '../jobs/types.js';
import type { AudioGeneration, ContentContext, CostFilter, CostTotals, Render } from './media.repo.js';
import { lockRenderAssets } from './assets/render-assets.js';
import type { MediaServices } from './media-services.js';
import type { FileDownload } from './storage/media-store.js';
import type { NarrationManifest } from './narration.service.js';
import { estimateNarration, type NarrationEstimate } from './pricing.js';
import {
  DEFAULT_RENDER_OPTIONS,
  type RenderOptions as RenderOptionsStored,
} from './render/render-options.js';
import { RENDER_PRESETS, type RenderQuality } from './render/presets.js';
import { silentBlockDuration } from './render/render.service.js';
import { countSyllables } from './stt/acoustic.verifier.js';
import { VERIFIER_CHECKS, type VerifierName } from './stt/verifier.js';
import { normalizeNarration } from './text/normalize.js';
import type { TtsProvider } from './tts/tts-provider.js';
import { settleRowsOfTask, type TaskStates } from './unfinished-rows.js';

/** What the use cases need of the job system: enqueue a registered task by name. */
export interface TaskEnqueuer {
  enqueue(name: string, payload: unknown, opts?: EnqueueOptions): Promise<EnqueueResult>;
}

export interface NarrationOptions {
  /** A configured TTS provider (default MEDIA_TTS_PROVIDER). */
  provider?: string;
  voice?: string;
  /** Similarity needed, 0..1. */
  threshold?: number;
  maxAttempts?: number;
}

export interface RenderOptions {
  /** Default: the content's platform. */
  preset?: Platform;
  quality?: RenderQuality;
  /** Render without narration, timed by block durations. */
  silent?: boolean;
  /** A title card with the content's title (default false). */
  title_card?: boolean;
  /** An end card with this call to action (default none). */
  end_card?: string;
  /** Image backgrounds zoom slowly (default false). */
  zoom?: boolean;
  /** Mix the chosen music under the narration (default true). */
  music?: boolean;
  /** Draw the client's logo (default true). */
  logo?: boolean;
}

export interface GenerationDetails {
  generation: AudioGeneration;
  /** The stored narration's manifest (timings, attempts), when its audio is stored. */
  manifest: NarrationManifest | undefined;
  /** The verifier that ran; for one not started yet (or a row from before it was recorded), the one configured now. */
  verifier: { name: VerifierName; checks: string };
}

const refuse = (reason: string, message: string, details: Record<string, unknown> = {}) =>
  new AppError('UNPROCESSABLE', message, { reason, ...details });

export class MediaRequests {
  constructor(
    private readonly media: MediaServices,
    private readonly jobs: TaskEnqueuer,
    /** Task states, to end rows whose task ended without finishing them (see unfinished-rows.ts). */
    private readonly tasks: TaskStates,
  ) {}

  /** Checks and queues the narration of a content (audio.generate, one new audio_generations row). */
  async requestNarration(
    contentId: number,
    o: NarrationOptions,
  ): Promise<{ taskId: string; generationId: number }> {
    const c = await this.content(contentId);
    const p = this.provider(o.provider);
    const { voice } = this.checkNarratable(c, p, o.voice);
    const { repo } = this.media;
    const gen = await repo.createAudioGeneration({
      content_id: c.content_id,
      provider: p.name,
      voice,
      language: c.language,
      text_hash: null,
    });
    const taskId = await this.enqueueForRow(
      'audio.generate',
      {
        generation_id: gen.id,
        ...(o.threshold !== undefined ? { threshold: o.threshold } : {}),
        ...(o.maxAttempts !== undefined ? { max_attempts: o.maxAttempts } : {}),
      },
      `audio:${gen.id}`,
      (patch) => repo.updateAudioGeneration(gen.id, patch),
    );
    return { taskId, generationId: gen.id };
  }

  /** Checks and queues a render of a content (video.render, one new renders row). */
  async requestRender(contentId: number, o: RenderOptions): Promise<{ taskId: string; renderId: number }> {
    const c = await this.content(contentId);
    const { repo } = this.media;
    if (!this.media.ffmpegPath)
      throw refuse('ffmpeg_unavailable', this.media.ffmpegError ?? 'ffmpeg not found');
    if (c.blocks.length === 0) throw refuse('no_blocks', `content ${c.content_id} has no script blocks`);
    const audio = o.silent ? undefined : await repo.latestGoodAudio(c.content_id);
    if (!o.silent && !audio)
      throw refuse(
        'no_narration',
        `content ${c.content_id} has no narration yet; generate audio first or render with "silent": true`,
      );
    // The video's length sets the render's timeouts (video.render).
    const durationS = o.silent
      ? c.blocks.reduce((s, b) => s + silentBlockDuration(b), 0)
      : (audio?.duration_s ?? undefined);
    const preset = o.preset ?? c.platform;
    const size = RENDER_PRESETS[preset];
    const options: RenderOptionsStored = {
      titleCard: o.title_card ?? DEFAULT_RENDER_OPTIONS.titleCard,
      endCard: o.end_card ?? DEFAULT_RENDER_OPTIONS.endCard,
      zoom: o.zoom ?? DEFAULT_RENDER_OPTIONS.zoom,
      music: o.music ?? DEFAULT_RENDER_OPTIONS.music,
      logo: o.logo ?? DEFAULT_RENDER_OPTIONS.logo,
    };
    // The check that the assets exist and their record are one locked step with the row (see
    // AssetService.delete): an asset deleted before it refuses the request here and leaves no row;
    // a delete after it is refused with 409 until the render ends.
    const row = await this.media.assetsRepo.locked(async (assets, tx) => {
      const used = await lockRenderAssets(assets, c, options);
      for (const b of c.blocks) {
        const named = used.backgrounds.get(b.id);
        if (named && (!named.asset || named.asset.kind === 'audio'))
          throw refuse(
            'background_unusable',
            named.asset
              ? `block ${b.sequence}'s background is asset ${named.id}, which is audio`
              : `block ${b.sequence}'s background is asset ${named.id}, which this client does not have (deleted?)`,
            { block: b.sequence, asset_id: named.id },
          );
      }
      const renders = repo.inTransaction(tx);
      const created = await renders.createRender({
        content_id: c.content_id,
        preset,
        width: size.width,
        height: size.height,
        fps: size.fps,
      });
      await renders.updateRender(created.id, { options: JSON.stringify(options) });
      await assets.recordRenderAssets(created.id, used.ids);
      return created;
    });
    const taskId = await this.enqueueForRow(
      'video.render',
      {
        render_id: row.id,
        quality: o.quality ?? 'medium',
        ...(o.silent ? { silent: true } : {}),
        ...(durationS === undefined ? {} : { duration_s: durationS }),
      },
      `render:${row.id}`,
      (patch) => repo.updateRender(row.id, patch),
    );
    return { taskId, renderId: row.id };
  }

  /** Checks every content, then queues their narration as one audio.batch task. */
  async requestNarrationBatch(
    contentIds: number[],
    o: NarrationOptions,
  ): Promise<{ taskId: string; contents: number }> {
    const p = this.provider(o.provider);
    for (const id of contentIds) this.checkNarratable(await this.content(id), p, o.voice);
    const job = await this.jobs.enqueue('audio.batch', {
      content_ids: contentIds,
      provider: p.name,
      ...(o.voice !== undefined ? { voice: o.voice } : {}),
      ...(o.threshold !== undefined ? { threshold: o.threshold } : {}),
      ...(o.maxAttempts !== undefined ? { max_attempts: o.maxAttempts } : {}),
    });
    return { taskId: job.id, contents: contentIds.length };
  }

  /** What narrating a content would cost: one attempt and the worst case, from the price table. */
  async estimateNarration(
    contentId: number,
    o: { provider?: string; maxAttempts?: number },
  ): Promise<NarrationEstimate> {
    const { config, verifier } = this.media;
    const c = await this.content(contentId);
    const p = this.provider(o.provider);
    const { chars } = this.checkNarratable(c, p, undefined);
    const audioS = c.blocks.reduce((s, b) => s + silentBlockDuration({ text: b.text, duration_s: null }), 0);
    const stt = verifier.name === 'openai';
    return estimateNarration(config.prices, {
      ttsProvider: p.name,
      ttsModel: p.model,
      sttProvider: stt ? 'openai' : null,
      sttModel: stt ? config.stt.model : null,
      chars,
      audioS: Math.max(audioS, countSyllables(c.blocks.map((b) => b.text).join(' ')) / 4.5),
      maxAttempts: o.maxAttempts ?? config.narration.maxAttempts,
    });
  }

  /** Vendor spend recorded in ai_api_usage. */
  async costs(filter: CostFilter): Promise<CostTotals> {
    if (filter.from && filter.to && filter.from > filter.to)
      throw new AppError('VALIDATION_FAILED', 'to: must not be before from', { field: 'to' });
    return this.media.repo.costs(filter);
  }

  async audioGeneration(id: number): Promise<GenerationDetails> {
    const { repo } = this.media;
    let generation = await repo.audioGeneration(id);
    if (!generation) throw notFound('AUDIO_GENERATION_NOT_FOUND', 'audio generation', id);
    if (await this.settled(generation)) generation = (await repo.audioGeneration(id)) ?? generation;
    const manifest = generation.audio_path ? await this.media.narration.manifest(generation.id) : undefined;
    const v = generation.verifier;
    const name: VerifierName = v === 'openai' || v === 'acoustic' ? v : this.media.verifier.name;
    return { generation, manifest, verifier: { name, checks: VERIFIER_CHECKS[name] } };
  }

  async render(id: number): Promise<Render> {
    const r = await this.media.repo.render(id);
    if (!r) throw notFound('RENDER_NOT_FOUND', 'render', id);
    return (await this.settled(r)) ? ((await this.media.repo.render(id)) ?? r) : r;
  }

  /**
   * Ends a row left `queued` or `running` by a task that has ended. True when the row must be read
   * again: it was unfinished, and it may have changed here or concurrently (the engine's end-of-task
   * hook settles the same rows).
   */
  private async settled(row: { status: string; task_id: string | null }): Promise<boolean> {
    if ((row.status !== 'queued' && row.status !== 'running') || row.task_id === null) return false;
    await settleRowsOfTask(this.media.repo, this.tasks, row.task_id);
    return true;
  }

  /** A narration's audio: the WAV, or its compressed m4a copy. */
  async narrationDownload(id: number, format: 'wav' | 'm4a'): Promise<FileDownload> {
    const g = await this.media.repo.audioGeneration(id);
    if (!g) throw notFound('AUDIO_GENERATION_NOT_FOUND', 'audio generation', id);
    if (!g.audio_path)
      throw new AppError(
        'MEDIA_FILE_NOT_FOUND',
        `audio generation ${g.id} has no audio (status ${g.status})`,
      );
    const m4a = format === 'm4a';
    return this.download(
      m4a ? path.posix.join(path.posix.dirname(g.audio_path), 'narration.m4a') : g.audio_path,
      m4a ? 'audio/mp4' : 'audio/wav',
      `narration-${g.id}.${format}`,
    );
  }

  /** A render's MP4. */
  async renderDownload(id: number): Promise<FileDownload> {
    const r = await this.renderWithFile(id, 'output_path', 'video');
    return this.download(r.path, 'video/mp4', `render-${id}.mp4`);
  }

  /** A render's PNG thumbnail. */
  async thumbnailDownload(id: number): Promise<FileDownload> {
    const r = await this.renderWithFile(id, 'thumbnail_path', 'thumbnail');
    return this.download(r.path, 'image/png', `render-${id}.png`);
  }

  /** A render's captions, with the burned-in timings: SubRip or WebVTT. */
  async captionsDownload(id: number, format: 'srt' | 'vtt'): Promise<FileDownload> {
    const srt = format === 'srt';
    const r = await this.renderWithFile(id, srt ? 'captions_srt_path' : 'captions_vtt_path', 'captions');
    return this.download(r.path, srt ? 'application/x-subrip' : 'text/vtt', `render-${id}.${format}`);
  }

  private async renderWithFile(
    id: number,
    column: 'output_path' | 'thumbnail_path' | 'captions_srt_path' | 'captions_vtt_path',
    what: string,
  ): Promise<{ path: string }> {
    const r = await this.render(id);
    const file = r[column];
    if (!file)
      throw new AppError('MEDIA_FILE_NOT_FOUND', `render ${r.id} has no ${what} (status ${r.status})`);
    return { path: file };
  }

  private async download(relative: string, contentType: string, fileName: string): Promise<FileDownload> {
    const file = await this.media.storage.file(relative);
    if (!file) throw new AppError('MEDIA_FILE_NOT_FOUND', 'the file is no longer stored');
    const presignedUrl = await this.media.storage.presignedUrl(relative, { filename: fileName, contentType });
    return { file, contentType, fileName, presignedUrl };
  }

  private async content(id: number): Promise<ContentContext> {
    const c = await this.media.repo.contentContext(id);
    if (!c) throw notFound('CONTENT_NOT_FOUND', 'content', id);
    return c;
  }

  private provider(name: string | undefined): TtsProvider {
    const n = name ?? this.media.config.defaultTtsProvider;
    const p = this.media.tts.get(n);
    if (!p)
      throw refuse('unknown_provider', `provider: ${n} is not configured`, {
        field: 'provider',
        available: [...this.media.tts.keys()],
      });
    return p;
  }

  /** The checks a narration must pass before it is queued; returns the voice to use and the script size. */
  private checkNarratable(c: ContentContext, p: TtsProvider, voice: string | undefined) {
    if (voice !== undefined && !p.isKnownVoice(voice))
      throw refuse('unknown_voice', `voice: ${voice} is not a ${p.name} voice`, { field: 'voice' });
    if (c.blocks.length === 0) throw refuse('no_blocks', `content ${c.content_id} has no script blocks`);
    const spoken = c.blocks.map((b) => normalizeNarration(b.text, c.language).text.trim());
    if (spoken.every((t) => t === ''))
      throw refuse('empty_text', `content ${c.content_id} has no text to narrate`);
    const chars = c.blocks.reduce((n, b) => n + [...b.text].length, 0);
    const max = this.media.config.narration.maxChars;
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
    return { voice: chosen, chars };
  }

  /**
   * Queues the task of a row just created (its idempotency key names the row), and
   * stores the task id on the row; a row whose task could not be queued is marked
   * failed with the reason, so no row waits for a task that does not exist.
   */
  private async enqueueForRow(
    name: string,
    payload: unknown,
    idempotencyKey: string,
    update: (patch: { task_id?: string; status?: 'failed'; error?: string }) => Promise<void>,
  ): Promise<string> {
    try {
      const job = await this.jobs.enqueue(name, payload, { idempotencyKey });
      await update({ task_id: job.id });
      return job.id;
    } catch (err) {
      await update({ status: 'failed', error: `could not queue: ${(err as Error).message}` });
      throw err;
    }
  }
}
