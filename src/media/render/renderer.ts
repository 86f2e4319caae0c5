import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { runFfmpeg } from '../ffmpeg.js';
import { layoutCaption } from './captions.js';
import { QUALITY_SETTINGS, type RenderPreset, type RenderQuality } from './presets.js';

export type Background = { kind: 'color'; color: string } | { kind: 'image'; path: string };

/** One block on the video timeline. */
export interface TimelineBlock {
  start_s: number;
  end_s: number;
  caption: string;
  background: Background;
}

export interface RenderJob {
  preset: RenderPreset;
  quality: RenderQuality;
  blocks: TimelineBlock[];
  /** Total duration, seconds (the narration's, or the sum of block durations when silent). */
  durationS: number;
  /** Narration audio file; absent renders a silent AAC track of the same length. */
  audioFile?: string;
  /** Draw captions (default true). */
  captions?: boolean;
  fontFile: string;
  /** Absolute output paths. */
  outputFile: string;
  thumbnailFile: string;
  /** Scratch directory for the filter script and caption text files. */
  workDir: string;
}

export interface RenderRunOptions {
  ffmpeg: string;
  timeoutMs: number;
  /** 0..100 as ffmpeg advances. */
  onProgress?: (percent: number) => void;
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
}

export interface RenderResult {
  outputFile: string;
  thumbnailFile: string;
  sizeBytes: number;
  durationS: number;
  wallMs: number;
}

/** Pretendard (a Hangul font) from the `pretendard` npm package. */
export function defaultFontFile(): string {
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve('pretendard/package.json'));
  return path.join(dir, 'dist', 'public', 'static', 'Pretendard-Bold.otf');
}

/** A value quoted for an ffmpeg filter option (single quotes; a quote itself closes, escapes and reopens). */
const q = (v: string) => `'${v.replace(/\\/g, '/').replace(/'/g, `'\\''`)}'`;

const hexColor = (c: string) => `0x${c.replace(/^#/, '')}`;

/**
 * Two ffmpeg passes. 1) Stills: one frame per block (its background, colour or
 * image, and its caption drawn with drawtext from text files, so user text is
 * never escaped into the filter graph). 2) Encode: the stills as a timeline
 * (concat demuxer, exact block durations) at the preset's frame rate with the
 * narration: H.264 yuv420p + AAC, faststart. Drawing text once per block
 * instead of once per frame is what makes a 60 s render take seconds.
 * The first block's still is the thumbnail.
 */
export async function renderVideo(job: RenderJob, opts: RenderRunOptions): Promise<RenderResult> {
  const started = performance.now();
  const { width: W, height: H, fps } = job.preset;
  const settings = QUALITY_SETTINGS[job.quality];
  const total = Math.max(0.1, job.durationS);
  const blocks =
    job.blocks.length > 0
      ? job.blocks
      : [
          {
            start_s: 0,
            end_s: total,
            caption: '',
            background: { kind: 'color', color: '#111827' } as Background,
          },
        ];
  const n = blocks.length;
  await fs.mkdir(job.workDir, { recursive: true });
  await fs.mkdir(path.dirname(job.outputFile), { recursive: true });
  const deadline = started + opts.timeoutMs;
  const left = () => Math.max(1, Math.round(deadline - performance.now()));

  // Pass 1: one still per block (frame k is block k).
  const inputs: string[] = ['-f', 'lavfi', '-i', `color=c=0x000000:s=${W}x${H}:r=1:d=${n}`];
  const filters: string[] = [];
  let cur = '[0:v]';
  let label = 0;
  const next = () => `[v${++label}]`;
  let imageInput = 1;
  for (const [k, b] of blocks.entries()) {
    const only = `enable='eq(n,${k})'`;
    if (b.background.kind === 'color') {
      const out = next();
      filters.push(
        `${cur}drawbox=x=0:y=0:w=iw:h=ih:color=${hexColor(b.background.color)}:t=fill:${only}${out}`,
      );
      cur = out;
    } else {
      inputs.push('-loop', '1', '-framerate', '1', '-t', String(n), '-i', b.background.path);
      const img = `[img${imageInput}]`;
      filters.push(
        `[${imageInput}:v]scale=${W}:${H}:force_original_aspect_ratio=increase,crop=${W}:${H},setsar=1,format=yuv420p${img}`,
      );
      const out = next();
      filters.push(`${cur}${img}overlay=0:0:${only}${out}`);
      cur = out;
      imageInput++;
    }
    if (!(job.captions ?? true) || !b.caption.trim()) continue;
    const { fontSize, lines } = layoutCaption(b.caption, W, H);
    const lineH = Math.round(fontSize * 1.35);
    // Captions sit in the lower third, centred line by line.
    const top = Math.round(H * 0.72 - (lines.length * lineH) / 2);
    for (const [i, line] of lines.entries()) {
      const file = path.join(job.workDir, `caption-${k}-${i}.txt`);
      await fs.writeFile(file, line);
      const out = next();
      filters.push(
        `${cur}drawtext=fontfile=${q(job.fontFile)}:textfile=${q(file)}:expansion=none:fontsize=${fontSize}` +
          `:fontcolor=white:borderw=${Math.max(2, Math.round(fontSize / 14))}:bordercolor=black@0.85` +
          `:box=1:boxcolor=black@0.35:boxborderw=${Math.round(fontSize / 5)}` +
          `:x=(w-text_w)/2:y=${top + i * lineH}:${only}${out}`,
      );
      cur = out;
    }
  }
  const stillsOut = next();
  filters.push(`${cur}format=rgb24${stillsOut}`);
  const script = path.join(job.workDir, 'stills.filters');
  await fs.writeFile(script, filters.join(';\n'));
  const stillPattern = path.join(job.workDir, 'still-%03d.png');
  await runFfmpeg({
    ffmpeg: opts.ffmpeg,
    args: [
      ...inputs,
      '-filter_complex_script',
      script,
      '-map',
      stillsOut,
      '-frames:v',
      String(n),
      '-start_number',
      '0',
      stillPattern,
    ],
    timeoutMs: left(),
    signal: opts.signal,
    onSpawn: opts.onSpawn,
  });
  const still = (k: number) => path.join(job.workDir, `still-${String(k).padStart(3, '0')}.png`);
  opts.onProgress?.(5);

  // Pass 2: the timeline. Each still lasts until the next block starts; the last until the end.
  const lines = ['ffconcat version 1.0'];
  for (const [k, b] of blocks.entries()) {
    const start = k === 0 ? 0 : b.start_s;
    const end = k + 1 < n ? (blocks[k + 1]?.start_s ?? total) : total;
    lines.push(`file ${q(still(k))}`, `duration ${Math.max(1 / fps, end - start).toFixed(6)}`);
  }
  // The concat demuxer applies the last duration only when the file is listed again.
  lines.push(`file ${q(still(n - 1))}`);
  const list = path.join(job.workDir, 'timeline.ffconcat');
  await fs.writeFile(list, `${lines.join('\n')}\n`);
  const audio = job.audioFile
    ? ['-i', job.audioFile]
    : ['-f', 'lavfi', '-i', `anullsrc=r=48000:cl=mono:d=${total.toFixed(3)}`];
  await runFfmpeg({
    ffmpeg: opts.ffmpeg,
    args: [
      '-f',
      'concat',
      '-safe',
      '0',
      '-i',
      list,
      ...audio,
      '-map',
      '0:v',
      '-map',
      '1:a',
      '-vf',
      `format=yuv420p,fps=${fps}`,
      '-t',
      total.toFixed(3),
      '-c:v',
      'libx264',
      '-preset',
      settings.x264Preset,
      '-crf',
      String(settings.crf),
      '-pix_fmt',
      'yuv420p',
      '-g',
      String(fps * 2),
      '-r',
      String(fps),
      '-c:a',
      'aac',
      '-b:a',
      `${settings.audioKbps}k`,
      '-ar',
      '48000',
      '-movflags',
      '+faststart',
      job.outputFile,
    ],
    timeoutMs: left(),
    signal: opts.signal,
    onSpawn: opts.onSpawn,
    onProgress: (t) => opts.onProgress?.(Math.min(99, 5 + (t / total) * 94)),
  });
  await fs.mkdir(path.dirname(job.thumbnailFile), { recursive: true });
  await fs.copyFile(still(0), job.thumbnailFile);
  opts.onProgress?.(100);
  const stat = await fs.stat(job.outputFile);
  return {
    outputFile: job.outputFile,
    thumbnailFile: job.thumbnailFile,
    sizeBytes: stat.size,
    durationS: total,
    wallMs: performance.now() - started,
  };
}
