import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ScriptBlock } from '../../db/types.js';
import { FfmpegError } from '../ffmpeg.js';
import type { ContentContext, MediaRepo, Render } from '../media.repo.js';
import type { NarrationService } from '../narration.service.js';
import { type MediaStore, mediaKeys } from '../storage/media-store.js';
import { countSyllables } from '../stt/acoustic.verifier.js';
import { RENDER_PRESETS, type RenderQuality } from './presets.js';
import { type Background, renderVideo, type TimelineBlock } from './renderer.js';

export interface RenderRequest {
  renderId: number;
  quality: RenderQuality;
  /** Render without narration, timed by block durations (estimated from the text when unset). */
  silent?: boolean;
  taskId?: string | null;
  signal?: AbortSignal;
  /** 0..100. */
  onProgress?: (percent: number) => void;
  onSpawn?: (pid: number) => void;
}

export interface RenderOutcome {
  renderId: number;
  outputPath: string;
  thumbnailPath: string;
  durationS: number;
  sizeBytes: number;
  wallMs: number;
  audioGenerationId: number | null;
  /** The content rendered and its campaign. */
  contentId: number;
  campaignId: number;
}

/** The render cannot succeed as asked (no narration, no blocks, no ffmpeg): retrying will not help. */
export class RenderInputError extends Error {
  override name = 'RenderInputError';
}

export interface RenderServiceDeps {
  repo: MediaRepo;
  storage: MediaStore;
  /** This process's working directory: inputs are fetched and ffmpeg writes here before upload. */
  scratchDir: string;
  narration: NarrationService;
  ffmpegPath: string | undefined;
  /** Why ffmpeg is unavailable, when it is. */
  ffmpegError?: string;
  fontFile: string;
  timeoutMs: number;
  logger: Logger;
}

const DEFAULT_BACKGROUND = '#111827';
const HEX = /^#?[0-9a-fA-F]{6}$/;

/** Seconds a block lasts in a silent render: its duration_s, else ~4.5 syllables per second (at least 2 s). */
export function silentBlockDuration(b: Pick<ScriptBlock, 'duration_s' | 'text'>): number {
  if (b.duration_s && b.duration_s > 0) return b.duration_s;
  return Math.max(2, Math.round((countSyllables(b.text) / 4.5 + 0.5) * 10) / 10);
}

/** Turns renders rows into MP4 files: timeline from the narration (or block durations), then ffmpeg. */
export class RenderService {
  constructor(private readonly deps: RenderServiceDeps) {}

  private async background(
    b: ScriptBlock | undefined,
    brand: string | null,
    workDir: string,
  ): Promise<Background> {
    const fallback = brand && HEX.test(brand) ? brand : DEFAULT_BACKGROUND;
    const value = b?.background?.trim();
    if (!value) return { kind: 'color', color: fallback };
    if (HEX.test(value)) return { kind: 'color', color: value.startsWith('#') ? value : `#${value}` };
    // Anything else names an image in media storage (never outside it).
    try {
      return { kind: 'image', path: await this.deps.storage.localCopy(value, path.join(workDir, 'inputs')) };
    } catch (err) {
      this.deps.logger.warn(
        { background: value, err },
        'block background is not a colour or a stored image; using the brand colour',
      );
    }
    return { kind: 'color', color: fallback };
  }

  async render(req: RenderRequest): Promise<RenderOutcome> {
    const { repo } = this.deps;
    const row = await repo.render(req.renderId);
    if (!row) throw new RenderInputError(`render ${req.renderId} does not exist`);
    const ffmpeg = this.deps.ffmpegPath;
    if (!ffmpeg) throw new RenderInputError(this.deps.ffmpegError ?? 'ffmpeg not found');
    const ctx = await repo.contentContext(row.content_id);
    if (!ctx) throw new RenderInputError(`content ${row.content_id} does not exist`);
    if (ctx.blocks.length === 0) throw new RenderInputError(`content ${row.content_id} has no script blocks`);
    await repo.updateRender(row.id, { status: 'running', error: null, task_id: req.taskId ?? row.task_id });
    // Inputs are fetched into and outputs made in this process's scratch directory, then uploaded.
    const workDir = path.join(this.deps.scratchDir, `render-${row.id}-${randomUUID()}`);
    await fs.mkdir(workDir, { recursive: true });
    try {
      return await this.renderIn(req, row, ctx, workDir, ffmpeg);
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
  }

  private async renderIn(
    req: RenderRequest,
    row: Render,
    ctx: ContentContext,
    workDir: string,
    ffmpeg: string,
  ): Promise<RenderOutcome> {
    const { repo, storage } = this.deps;

    const byId = new Map(ctx.blocks.map((b) => [b.id, b]));
    let timeline: TimelineBlock[];
    let durationS: number;
    let audioFile: string | undefined;
    let audioGenerationId: number | null = null;
    if (req.silent) {
      timeline = [];
      let at = 0;
      for (const b of ctx.blocks) {
        const d = silentBlockDuration(b);
        timeline.push({
          start_s: at,
          end_s: at + d,
          caption: b.subtitle_text ?? b.text,
          background: await this.background(b, ctx.brand_color, workDir),
        });
        at += d;
      }
      durationS = at;
    } else {
      const audio = await repo.latestGoodAudio(row.content_id);
      const manifest = audio ? await this.deps.narration.manifest(audio.id) : undefined;
      if (!audio || !manifest)
        throw new RenderInputError(
          `content ${row.content_id} has no narration; generate audio first or ask for a silent render`,
        );
      audioGenerationId = audio.id;
      audioFile = await storage.localCopy(manifest.wav, path.join(workDir, 'inputs'));
      durationS = manifest.duration_s;
      timeline = [];
      for (const t of manifest.timings) {
        const b = byId.get(t.block_id);
        timeline.push({
          start_s: t.start_s,
          end_s: t.end_s,
          caption: b?.subtitle_text ?? t.subtitle_text ?? b?.text ?? t.text,
          background: await this.background(b, ctx.brand_color, workDir),
        });
      }
    }

    const dir = mediaKeys.renderDir(row.id);
    const outputPath = `${dir}/video.mp4`;
    const thumbnailPath = `${dir}/thumbnail.png`;
    const outputFile = path.join(workDir, 'video.mp4');
    const thumbnailFile = path.join(workDir, 'thumbnail.png');
    const preset = RENDER_PRESETS[row.preset];
    try {
      const result = await renderVideo(
        {
          preset,
          quality: req.quality,
          blocks: timeline,
          durationS,
          audioFile,
          fontFile: this.deps.fontFile,
          outputFile,
          thumbnailFile,
          workDir: path.join(workDir, 'ffmpeg'),
        },
        {
          ffmpeg,
          timeoutMs: this.deps.timeoutMs,
          signal: req.signal,
          onProgress: req.onProgress,
          onSpawn: req.onSpawn,
        },
      );
      // Uploaded before the row says so: a render is "succeeded" only once its files are stored.
      await storage.putFile(thumbnailPath, thumbnailFile, { contentType: 'image/png' });
      await storage.putFile(outputPath, outputFile, { contentType: 'video/mp4' });
      await repo.updateRender(row.id, {
        status: 'succeeded',
        width: preset.width,
        height: preset.height,
        fps: preset.fps,
        output_path: outputPath,
        thumbnail_path: thumbnailPath,
        duration_s: Math.round(durationS * 1000) / 1000,
        size_bytes: result.sizeBytes,
        error: null,
        finished_at: new Date().toISOString(),
      });
      await repo.advanceContentStatus(row.content_id, 'rendered');
      return {
        renderId: row.id,
        outputPath,
        thumbnailPath,
        durationS,
        sizeBytes: result.sizeBytes,
        wallMs: result.wallMs,
        audioGenerationId,
        contentId: ctx.content_id,
        campaignId: ctx.campaign_id,
      };
    } catch (err) {
      if (err instanceof FfmpegError)
        await repo.updateRender(row.id, { error: `retrying: ${err.message}`.slice(0, 8000) });
      throw err;
    }
  }

  /** Marks a render failed for good (final attempt, or an input that cannot render). */
  async markFailed(renderId: number, error: string): Promise<void> {
    await this.deps.repo.updateRender(renderId, {
      status: 'failed',
      error: error.slice(0, 8000),
      finished_at: new Date().toISOString(),
    });
  }
}
