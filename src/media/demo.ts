import type { MediaServices } from './media-services.js';
import type { Platform } from '../db/types.js';
import { RENDER_PRESETS, type RenderQuality } from './render/presets.js';

export interface MediaDemoResult {
  generation_id: number;
  render_id: number;
  narration: {
    status: string;
    /** Which verifier ran, and what it checked. */
    verifier: string;
    verifier_checks: string;
    score: number | null;
    /** Measured word similarity; null when the verifier hears no words. */
    similarity: number | null;
    duration_s: number | null;
    audio: string | null;
  };
  video: string;
  thumbnail: string;
  size_bytes: number;
  /** Wall time of each step, ms. */
  timings_ms: { narrate: number; render: number };
}

/**
 * Narrates a content with the local TTS and renders it, in this process (no
 * worker needed): what `omnivibe demo` runs after seeding a sample campaign.
 */
export async function runMediaDemo(
  media: MediaServices,
  contentId: number,
  opts: { preset?: Platform; quality?: RenderQuality; onStep?: (line: string) => void } = {},
): Promise<MediaDemoResult> {
  const say = opts.onStep ?? (() => undefined);
  const ctx = await media.repo.contentContext(contentId);
  if (!ctx) throw new Error(`content ${contentId} does not exist`);
  const gen = await media.repo.createAudioGeneration({
    content_id: contentId,
    provider: 'espeak',
    voice: null,
    language: ctx.language,
    text_hash: null,
  });
  say(`narrating content ${contentId} (${ctx.blocks.length} blocks) with eSpeak NG…`);
  let t0 = performance.now();
  const narration = await media.narration.narrate({ generationId: gen.id });
  const narrateMs = performance.now() - t0;
  if (narration.status === 'failed')
    throw new Error(`narration failed: ${narration.error ?? 'unknown error'}`);
  const preset = opts.preset ?? 'tiktok';
  const size = RENDER_PRESETS[preset];
  const render = await media.repo.createRender({
    content_id: contentId,
    preset,
    width: size.width,
    height: size.height,
    fps: size.fps,
  });
  say(`rendering ${preset} ${size.width}×${size.height} (${narration.durationS ?? 0} s)…`);
  t0 = performance.now();
  const out = await media.renders.render({ renderId: render.id, quality: opts.quality ?? 'medium' });
  const renderMs = performance.now() - t0;
  return {
    generation_id: gen.id,
    render_id: render.id,
    narration: {
      status: narration.status,
      verifier: narration.verifier,
      verifier_checks: media.verifier.checks,
      score: narration.score,
      similarity: narration.similarity,
      duration_s: narration.durationS,
      audio: narration.audioPath ? media.storage.locate(narration.audioPath) : null,
    },
    video: media.storage.locate(out.outputPath),
    thumbnail: media.storage.locate(out.thumbnailPath),
    size_bytes: out.sizeBytes,
    timings_ms: { narrate: Math.round(narrateMs), render: Math.round(renderMs) },
  };
}
