import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ScriptBlock } from '../../db/types.js';
import { FfmpegError } from '../ffmpeg.js';
import type { MediaRepo } from '../media.repo.js';
import type { MediaStorage } from '../media-storage.js';
import type { NarrationService } from '../narration.service.js';
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
  /** The content rendered and its campaign (a process that did not render can invalidate its caches). */
  contentId: number;
  campaignId: number;
}

/** The render cannot succeed as asked (no narration, no blocks, no ffmpeg): retrying will not help. */
export class RenderInputError extends Error {
  override name = 'RenderInputError';
}

export interface RenderServiceDeps {
  repo: MediaRepo;
  storage: MediaStorage;
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

  private async background(b: ScriptBlock | undefined, brand: string | null): Promise<Background> {
    const fallback = brand && HEX.test(brand) ? brand : DEFAULT_BACKGROUND;
    const value = b?.background?.trim();
    if (!value) return { kind: 'color', color: fallback };
    if (HEX.test(value)) return { kind: 'color', color: value.startsWith('#') ? value : `#${value}` };
    // Anything else names an image in the storage root (never outside it).
    try {
      const abs = this.deps.storage.resolve(value);
      if ((await fs.stat(abs)).isFile()) return { kind: 'image', path: abs };
    } catch (err) {
      this.deps.logger.warn(
        { background: value, err: (err as Error).message },
        'block background is not a colour or a stored image; using the brand colour',
      );
    }
    return { kind: 'color', color: fallback };
  }

  async render(req: RenderRequest): Promise<RenderOutcome> {
    const { repo, storage } = this.deps;
    const row = await repo.render(req.renderId);
    if (!row) throw new RenderInputError(`render ${req.renderId} does not exist`);
    if (!this.deps.ffmpegPath) throw new RenderInputError(this.deps.ffmpegError ?? 'ffmpeg not found');
    const ctx = await repo.contentContext(row.content_id);
    if (!ctx) throw new RenderInputError(`content ${row.content_id} does not exist`);
    if (ctx.blocks.length === 0) throw new RenderInputError(`content ${row.content_id} has no script blocks`);
    await repo.updateRender(row.id, { status: 'running', error: null, task_id: req.taskId ?? row.task_id });

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
          background: await this.background(b, ctx.brand_color),
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
      audioFile = storage.resolve(manifest.wav);
      durationS = manifest.duration_s;
      timeline = [];
      for (const t of manifest.timings) {
        const b = byId.get(t.block_id);
        timeline.push({
          start_s: t.start_s,
          end_s: t.end_s,
          caption: b?.subtitle_text ?? t.subtitle_text ?? b?.text ?? t.text,
          background: await this.background(b, ctx.brand_color),
        });
      }
    }

    const dir = storage.renderDir(row.id);
    const outputPath = path.join(dir, 'video.mp4');
    const thumbnailPath = path.join(dir, 'thumbnail.png');
    const workDir = path.join(storage.resolve(dir), 'work');
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
          outputFile: storage.resolve(outputPath),
          thumbnailFile: storage.resolve(thumbnailPath),
          workDir,
        },
        {
          ffmpeg: this.deps.ffmpegPath,
          timeoutMs: this.deps.timeoutMs,
          signal: req.signal,
          onProgress: req.onProgress,
          onSpawn: req.onSpawn,
        },
      );
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
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
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
