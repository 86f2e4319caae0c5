import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ScriptBlock } from '../../db/types.js';
import { FfmpegError } from '../ffmpeg.js';
import type { ContentContext, MediaRepo, Render } from '../media.repo.js';
import type { MediaSpans } from '../media-observer.js';
import type { NarrationService } from '../narration.service.js';
import type { MediaObserver } from '../media-observer.js';
import { type MediaStore, mediaKeys } from '../storage/media-store.js';
import { countSyllables } from '../stt/acoustic.verifier.js';
import { RENDER_PRESETS, type RenderQuality } from './presets.js';
import type { Asset, AssetsRepo } from '../assets/assets.repo.js';
import { lockRenderAssets, type RenderAssets } from '../assets/render-assets.js';
import { type CaptionCue, toSrt, toVtt } from './captions.js';
import { END_CARD_S, parseRenderOptions, type RenderOptions, TITLE_CARD_S } from './render-options.js';
import { type Background, renderVideo, type TimelineBlock } from './renderer.js';
import { SAFE_AREAS } from './safe-areas.js';

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
  /** Uploaded assets: backgrounds, the client's logo, music. */
  assets: AssetsRepo;
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
  /** Told how long each render took (metrics). */
  observer?: MediaObserver;
  /** A span per ffmpeg render (tracing on). */
  spans?: MediaSpans;
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

  private brandColor(ctx: ContentContext): string {
    return ctx.brand_color && HEX.test(ctx.brand_color) ? ctx.brand_color : DEFAULT_BACKGROUND;
  }

  /**
   * A block's background: `#RRGGBB`; `asset:<id>` (an image or clip the
   * client uploaded, fetched into the scratch directory); a key in media
   * storage (an image); else the client's brand colour.
   */
  private async background(
    b: ScriptBlock | undefined,
    ctx: ContentContext,
    opts: RenderOptions,
    assets: RenderAssets,
    workDir: string,
  ): Promise<Background> {
    const fallback: Background = { kind: 'color', color: this.brandColor(ctx) };
    const value = b?.background?.trim();
    if (!b || !value) return fallback;
    if (HEX.test(value)) return { kind: 'color', color: value.startsWith('#') ? value : `#${value}` };
    const inputs = path.join(workDir, 'inputs');
    const named = assets.backgrounds.get(b.id);
    if (named) {
      const a = named.asset;
      if (a && a.kind !== 'audio') {
        const file = await this.deps.storage.localCopy(a.storage_key, inputs);
        return a.kind === 'clip'
          ? { kind: 'clip', path: file }
          : { kind: 'image', path: file, zoom: opts.zoom };
      }
      this.deps.logger.warn(
        { background: value, block: b.id },
        "block background asset is missing, not this client's, or audio; using the brand colour",
      );
      return fallback;
    }
    try {
      return { kind: 'image', path: await this.deps.storage.localCopy(value, inputs), zoom: opts.zoom };
    } catch (err) {
      this.deps.logger.warn(
        { background: value, err },
        'block background is not a colour, an asset or a stored image; using the brand colour',
      );
    }
    return fallback;
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
    const opts = parseRenderOptions(row.options);
    // What it reads is recorded for the render now too (the script or the choices may have changed
    // since the request): none of it can be deleted while it runs.
    const assets = await this.deps.assets.locked(async (tx) => {
      const used = await lockRenderAssets(tx, ctx, opts);
      await tx.recordRenderAssets(row.id, used.ids);
      return used;
    });
    // Inputs are fetched into and outputs made in this process's scratch directory, then uploaded.
    const workDir = path.join(this.deps.scratchDir, `render-${row.id}-${randomUUID()}`);
    await fs.mkdir(workDir, { recursive: true });
    const t0 = performance.now();
    const observe = (outcome: 'ok' | 'error') =>
      this.deps.observer?.renderFinished({
        preset: row.preset,
        outcome,
        seconds: (performance.now() - t0) / 1000,
      });
    try {
      const out = await this.renderIn(req, row, ctx, opts, assets, workDir, ffmpeg);
      observe('ok');
      return out;
    } catch (err) {
      observe('error');
      throw err;
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
  }

  private async renderIn(
    req: RenderRequest,
    row: Render,
    ctx: ContentContext,
    opts: RenderOptions,
    assets: RenderAssets,
    workDir: string,
    ffmpeg: string,
  ): Promise<RenderOutcome> {
    const { repo, storage } = this.deps;

    const inputs = path.join(workDir, 'inputs');
    const fetch = (a: Asset) => storage.localCopy(a.storage_key, inputs);
    const offset = opts.titleCard ? TITLE_CARD_S : 0;
    const byId = new Map(ctx.blocks.map((b) => [b.id, b]));
    const timeline: TimelineBlock[] = [];
    const cues: CaptionCue[] = [];
    const speech: { start_s: number; end_s: number }[] = [];
    let bodyS: number;
    let audioFile: string | undefined;
    let audioGenerationId: number | null = null;
    if (req.silent) {
      let at = offset;
      for (const b of ctx.blocks) {
        const d = silentBlockDuration(b);
        const caption = b.subtitle_text ?? b.text;
        timeline.push({
          start_s: at,
          end_s: at + d,
          caption,
          background: await this.background(b, ctx, opts, assets, workDir),
        });
        cues.push({ start_s: at, end_s: at + d, text: caption });
        at += d;
      }
      bodyS = at - offset;
    } else {
      const audio = await repo.latestGoodAudio(row.content_id);
      const manifest = audio ? await this.deps.narration.manifest(audio.id) : undefined;
      if (!audio || !manifest)
        throw new RenderInputError(
          `content ${row.content_id} has no narration; generate audio first or ask for a silent render`,
        );
      audioGenerationId = audio.id;
      audioFile = await storage.localCopy(manifest.wav, inputs);
      bodyS = manifest.duration_s;
      for (const t of manifest.timings) {
        const b = byId.get(t.block_id);
        const caption = b?.subtitle_text ?? t.subtitle_text ?? b?.text ?? t.text;
        const span = { start_s: t.start_s + offset, end_s: t.end_s + offset };
        timeline.push({ ...span, caption, background: await this.background(b, ctx, opts, assets, workDir) });
        cues.push({ ...span, text: caption });
        speech.push(span);
      }
    }
    const brand = { kind: 'color', color: this.brandColor(ctx) } as const;
    if (opts.titleCard)
      timeline.unshift({
        start_s: 0,
        end_s: TITLE_CARD_S,
        caption: ctx.title,
        background: brand,
        card: true,
      });
    let durationS = offset + bodyS;
    if (opts.endCard) {
      timeline.push({
        start_s: durationS,
        end_s: durationS + END_CARD_S,
        caption: opts.endCard,
        background: brand,
        card: true,
      });
      durationS += END_CARD_S;
    }
    const { logo, music } = assets;

    const dir = mediaKeys.renderDir(row.id);
    const outputPath = `${dir}/video.mp4`;
    const thumbnailPath = `${dir}/thumbnail.png`;
    const outputFile = path.join(workDir, 'video.mp4');
    const thumbnailFile = path.join(workDir, 'thumbnail.png');
    const preset = RENDER_PRESETS[row.preset];
    const spans = this.deps.spans;
    const inSpan = <T>(run: () => Promise<T>) =>
      spans
        ? spans.render({ renderId: row.id, preset: row.preset, quality: req.quality, durationS }, run)
        : run();
    try {
      const result = await inSpan(async () =>
        renderVideo(
          {
            preset,
            quality: req.quality,
            blocks: timeline,
            durationS,
            audioFile,
            audioOffsetS: offset,
            music: music ? { file: await fetch(music), speech } : undefined,
            logoFile: logo ? await fetch(logo) : undefined,
            safeArea: SAFE_AREAS[row.preset],
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
        ),
      );
      // Uploaded before the row says so: a render is "succeeded" only once its files are stored.
      const srtPath = `${dir}/captions.srt`;
      const vttPath = `${dir}/captions.vtt`;
      await storage.put(srtPath, toSrt(cues), { contentType: 'application/x-subrip' });
      await storage.put(vttPath, toVtt(cues), { contentType: 'text/vtt' });
      await storage.putFile(thumbnailPath, thumbnailFile, { contentType: 'image/png' });
      await storage.putFile(outputPath, outputFile, { contentType: 'video/mp4' });
      await repo.updateRender(row.id, {
        status: 'succeeded',
        width: preset.width,
        height: preset.height,
        fps: preset.fps,
        output_path: outputPath,
        thumbnail_path: thumbnailPath,
        captions_srt_path: srtPath,
        captions_vtt_path: vttPath,
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
