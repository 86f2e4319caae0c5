import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { runFfmpeg } from '../ffmpeg.js';
import { layoutCaption } from './captions.js';
import { QUALITY_SETTINGS, type RenderPreset, type RenderQuality } from './presets.js';
import { type SafeArea, safeRect } from './safe-areas.js';

/** What fills a block: a colour, an image (cover-fit, optionally slowly zoomed) or a clip (cover-fit, trimmed or looped, muted). */
export type Background =
  | { kind: 'color'; color: string }
  | { kind: 'image'; path: string; zoom?: boolean }
  | { kind: 'clip'; path: string };

/** One block on the video timeline. */
export interface TimelineBlock {
  start_s: number;
  end_s: number;
  caption: string;
  background: Background;
  /** A title or end card: the text is drawn large in the middle instead of as a caption. */
  card?: boolean;
}

/** Background music under the narration. */
export interface MusicBed {
  file: string;
  /** Seconds of narration (speech) on the output timeline; the music is ducked under them. */
  speech: { start_s: number; end_s: number }[];
}

export interface RenderJob {
  preset: RenderPreset;
  quality: RenderQuality;
  blocks: TimelineBlock[];
  /** Total duration, seconds (the narration's, or the sum of block durations when silent, plus any cards). */
  durationS: number;
  /** Narration audio file; absent renders without narration. */
  audioFile?: string;
  /** Where the narration starts on the timeline (after a title card), seconds. */
  audioOffsetS?: number;
  music?: MusicBed;
  /** A logo (PNG with alpha) drawn in the top-right corner of the safe area on every frame. */
  logoFile?: string;
  /** The platform's safe area (captions and logo stay inside); default a 5 % margin. */
  safeArea?: SafeArea;
  /** Draw captions (default true). */
  captions?: boolean;
  fontFile: string;
  /** Absolute output paths. */
  outputFile: string;
  thumbnailFile: string;
  /** Scratch directory for the filter scripts, caption text files and the audio mix. */
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
  /** The final mix as measured before normalisation (null without any audio). */
  loudness: { inputI: number; inputTp: number } | null;
}

/** Loudness targets of the final mix: platforms normalise to about -14 LUFS; -1.5 dBTP leaves room for AAC overshoot under -1. */
export const LOUDNESS = { integratedLufs: -14, truePeakDbtp: -1.5, lra: 11 } as const;
/** Music gain between blocks, and how far it drops while narration plays (dB, after both are at -16 LUFS). */
export const MUSIC = { bedDb: -8, duckDb: -16, rampS: 0.25 } as const;

/** Pretendard (a Hangul font) from the `pretendard` npm package. */
export function defaultFontFile(): string {
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve('pretendard/package.json'));
  return path.join(dir, 'dist', 'public', 'static', 'Pretendard-Bold.otf');
}

/** A value quoted for an ffmpeg filter option (single quotes; a quote itself closes, escapes and reopens). */
const q = (v: string) => `'${v.replace(/\\/g, '/').replace(/'/g, `'\\''`)}'`;

const hexColor = (c: string) => `0x${c.replace(/^#/, '')}`;
const DEFAULT_SAFE: SafeArea = { top: 0.05, bottom: 0.05, left: 0.05, right: 0.05 };

/**
 * The music's gain over time as an ffmpeg expression: `bedDb` between
 * blocks, `bedDb + duckDb` while narration plays, with linear ramps of `rampS`.
 */
export function duckingExpression(speech: MusicBed['speech']): string {
  const { bedDb, duckDb, rampS } = MUSIC;
  const bed = 10 ** (bedDb / 20);
  const ducked = 10 ** ((bedDb + duckDb) / 20);
  if (speech.length === 0) return bed.toFixed(5);
  // d(t) in 0..1: 1 inside a span, ramping over rampS before and after it.
  const spans = speech.map(
    (s) =>
      `min(clip((t-${(s.start_s - rampS).toFixed(3)})/${rampS},0,1),clip((${(s.end_s + rampS).toFixed(3)}-t)/${rampS},0,1))`,
  );
  const d = spans.reduce((acc, e) => `max(${acc},${e})`);
  return `${bed.toFixed(5)}-${(bed - ducked).toFixed(5)}*${d}`;
}

/** Runs one ffmpeg command of a render: within its deadline, stopped by `signal`. */
type FfmpegRun = (args: string[], onTime?: (t: number) => void) => Promise<{ stderrTail: string }>;

const moving = (b: TimelineBlock) =>
  b.background.kind === 'clip' || (b.background.kind === 'image' && b.background.zoom === true);

/**
 * Cover-fit of a moving source to W×H: the centred crop of the target's aspect
 * ratio first, then one scale to the frame. The same picture as scaling to
 * cover and cropping after, without scaling the part that is cut away (a 16:9
 * clip on a 9:16 frame would otherwise be scaled to 3413×1920 on every frame).
 */
const coverCropScale = (W: number, H: number) =>
  `crop=w='min(iw,ih*${W}/${H})':h='min(ih,iw*${H}/${W})',scale=${W}:${H},setsar=1`;

/**
 * Four stages. 1) Stills: one RGBA frame per block with its background
 * (colour or image, cover-fit; transparent for clip and zoom blocks), its
 * caption inside the platform's safe area (drawtext from text files, so user
 * text never enters the filter graph) and the logo. 2) Audio: narration
 * (delayed after a title card), music ducked under it by a gain envelope
 * from the known speech spans, then loudness-normalised in two passes
 * (measure, then apply) to -14 LUFS, true peak under -1 dBTP. 3) Video: each
 * still held for its block's frames, each clip block its clip (looped or
 * trimmed, muted) under its transparent still, concatenated at the preset's
 * frame rate: H.264 yuv420p. 2 runs while 1 and 3 do. 4) The MP4: the video
 * copied, the mix encoded to AAC, faststart. A still block's text is drawn
 * once, not once per frame, and a still is converted to the video's pixel
 * format once, not per frame, which keeps a 60 s render to seconds.
 */
export async function renderVideo(job: RenderJob, opts: RenderRunOptions): Promise<RenderResult> {
  const started = performance.now();
  const settings = QUALITY_SETTINGS[job.quality];
  const total = Math.max(0.1, job.durationS);
  const blocks: TimelineBlock[] =
    job.blocks.length > 0
      ? job.blocks
      : [{ start_s: 0, end_s: total, caption: '', background: { kind: 'color', color: '#111827' } }];
  await fs.mkdir(job.workDir, { recursive: true });
  await fs.mkdir(path.dirname(job.outputFile), { recursive: true });
  const deadline = started + opts.timeoutMs;
  const runner =
    (signal: AbortSignal | undefined): FfmpegRun =>
    (args, onTime) =>
      runFfmpeg({
        ffmpeg: opts.ffmpeg,
        args,
        timeoutMs: Math.max(1, Math.round(deadline - performance.now())),
        signal,
        onSpawn: opts.onSpawn,
        onProgress: onTime,
      });

  // The soundtrack (2) needs nothing from the picture, so it is made while the stills (1) are
  // drawn and the video is encoded (3); the two meet in a last, cheap step (4) that copies the
  // video and encodes the audio. When either side fails, the other's ffmpeg is stopped.
  const stages = new AbortController();
  const stopStages = () => stages.abort();
  opts.signal?.addEventListener('abort', stopStages, { once: true });
  if (opts.signal?.aborted) stages.abort();
  const run = runner(stages.signal);
  const audioDone = mixAudio(job, total, run);
  const videoDone = (async () => {
    await drawStills(job, blocks, run);
    opts.onProgress?.(5);
    return encodeVideo(job, blocks, total, run, (t) => opts.onProgress?.(Math.min(95, 5 + (t / total) * 90)));
  })();
  let audio: Awaited<typeof audioDone>;
  let videoFile: string;
  try {
    [audio, videoFile] = await Promise.all([audioDone, videoDone]);
  } catch (err) {
    stages.abort();
    await Promise.allSettled([audioDone, videoDone]);
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', stopStages);
  }

  // 4) The MP4: the video as encoded, the soundtrack (or silence) as AAC, the index first.
  const audioIn = audio
    ? ['-i', audio.file]
    : ['-f', 'lavfi', '-i', `anullsrc=r=48000:cl=stereo:d=${total.toFixed(3)}`];
  const finish = runner(opts.signal);
  await finish([
    '-i',
    videoFile,
    ...audioIn,
    '-map',
    '0:v',
    '-map',
    '1:a',
    '-t',
    total.toFixed(3),
    '-c:v',
    'copy',
    '-c:a',
    'aac',
    '-b:a',
    `${settings.audioKbps}k`,
    '-ar',
    '48000',
    '-movflags',
    '+faststart',
    job.outputFile,
  ]);
  opts.onProgress?.(99);
  // The thumbnail: the first still (for a clip block, its first frame with the overlay).
  await fs.mkdir(path.dirname(job.thumbnailFile), { recursive: true });
  if (moving(blocks[0] as TimelineBlock))
    await finish(['-i', job.outputFile, '-frames:v', '1', '-update', '1', job.thumbnailFile]);
  else await fs.copyFile(stillFile(job, 0), job.thumbnailFile);
  opts.onProgress?.(100);
  const stat = await fs.stat(job.outputFile);
  return {
    outputFile: job.outputFile,
    thumbnailFile: job.thumbnailFile,
    sizeBytes: stat.size,
    durationS: total,
    wallMs: performance.now() - started,
    loudness: audio ? { inputI: audio.inputI, inputTp: audio.inputTp } : null,
  };
}

/**
 * Stage 3: the video alone (`video-only.mp4` in the work directory): each still
 * held for its block's frames, each clip or zoom block its moving background
 * under its transparent still, concatenated at the preset's frame rate, H.264 yuv420p.
 */
async function encodeVideo(
  job: RenderJob,
  blocks: TimelineBlock[],
  total: number,
  run: FfmpegRun,
  onTime: (t: number) => void,
): Promise<string> {
  const { width: W, height: H, fps } = job.preset;
  const settings = QUALITY_SETTINGS[job.quality];
  const n = blocks.length;
  const still = (k: number) => stillFile(job, k);
  // Each block lasts from its start (0 for the first) to the next block's start, in whole frames.
  const frameAt = (t: number) => Math.round(t * fps);
  const totalFrames = Math.max(1, frameAt(total));
  const encodeInputs: string[] = [];
  const graph: string[] = [];
  const segs: string[] = [];
  let idx = 0;
  for (const [k, b] of blocks.entries()) {
    const startF = k === 0 ? 0 : frameAt(b.start_s);
    const endF = k + 1 < n ? frameAt(blocks[k + 1]?.start_s ?? total) : totalFrames;
    const frames = Math.max(1, endF - startF);
    const seconds = frames / fps;
    const seg = `[s${k}]`;
    // The transparent still over a moving background: converted to the overlay's format once, then repeated.
    const overlayStill = `[${idx + 1}:v]format=yuva420p,loop=loop=-1:size=1,settb=1/${fps},setpts=N[ov${k}]`;
    const over = `[bg${k}][ov${k}]overlay=0:0:shortest=1:format=yuv420,trim=end_frame=${frames},format=yuv420p${seg}`;
    if (b.background.kind === 'clip') {
      // Looped as needed and cut to the block; muted (its audio is never mapped).
      encodeInputs.push(
        '-stream_loop',
        '-1',
        '-t',
        (seconds + 1).toFixed(3),
        '-i',
        b.background.path,
        '-i',
        still(k),
      );
      graph.push(
        `[${idx}:v]fps=${fps},${coverCropScale(W, H)},format=yuv420p,trim=end_frame=${frames},setpts=PTS-STARTPTS[bg${k}]`,
        overlayStill,
        over,
      );
      idx += 2;
    } else if (b.background.kind === 'image' && b.background.zoom) {
      // Slow zoom: from 100 % to 108 % over the block, centred, on a copy scaled once (zoompan is per frame).
      encodeInputs.push('-i', b.background.path, '-i', still(k));
      graph.push(
        `[${idx}:v]scale=${W}:${H}:force_original_aspect_ratio=increase,crop=${W}:${H},setsar=1,format=yuv420p,` +
          `zoompan=z='1+0.08*on/${frames}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=${frames}:s=${W}x${H}:fps=${fps},setpts=PTS-STARTPTS[bg${k}]`,
        overlayStill,
        over,
      );
      idx += 2;
    } else {
      encodeInputs.push('-i', still(k));
      // Timestamps in frames (time base 1/fps): an image's own time base (1/25) cannot hold them exactly.
      graph.push(`[${idx}:v]format=yuv420p,loop=loop=${frames - 1}:size=1,settb=1/${fps},setpts=N${seg}`);
      idx += 1;
    }
    segs.push(seg);
  }
  graph.push(`${segs.join('')}concat=n=${n}:v=1:a=0[vout]`);
  const encodeScript = path.join(job.workDir, 'encode.filters');
  await fs.writeFile(encodeScript, graph.join(';\n'));
  const videoFile = path.join(job.workDir, 'video-only.mp4');
  await run(
    [
      ...encodeInputs,
      '-filter_complex_script',
      encodeScript,
      '-map',
      '[vout]',
      '-frames:v',
      String(totalFrames),
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
      '-an',
      videoFile,
    ],
    onTime,
  );
  return videoFile;
}

/** The still of block k (stage 1's output). */
const stillFile = (job: RenderJob, k: number) =>
  path.join(job.workDir, `still-${String(k).padStart(3, '0')}.png`);

/**
 * Stage 1: `still-NNN.png` in the work directory, one RGBA frame per block:
 * its colour or image background (cover-fit; transparent behind clip and zoom
 * blocks), its caption or card text inside the safe area, and the logo.
 */
async function drawStills(job: RenderJob, blocks: TimelineBlock[], run: FfmpegRun): Promise<void> {
  const { width: W, height: H } = job.preset;
  const n = blocks.length;
  const safe = safeRect(job.safeArea ?? DEFAULT_SAFE, W, H);
  const inputs: string[] = ['-f', 'lavfi', '-i', `color=c=black@0.0:s=${W}x${H}:r=1:d=${n},format=rgba`];
  const filters: string[] = [];
  let cur = '[0:v]';
  let label = 0;
  const next = () => `[v${++label}]`;
  let input = 1;
  for (const [k, b] of blocks.entries()) {
    const only = `enable='eq(n,${k})'`;
    if (b.background.kind === 'color') {
      const out = next();
      filters.push(
        `${cur}drawbox=x=0:y=0:w=iw:h=ih:color=${hexColor(b.background.color)}:t=fill:${only}${out}`,
      );
      cur = out;
    } else if (!moving(b) && b.background.kind === 'image') {
      inputs.push('-i', b.background.path);
      const img = `[img${input}]`;
      filters.push(
        `[${input}:v]scale=${W}:${H}:force_original_aspect_ratio=increase,crop=${W}:${H},setsar=1,format=rgba${img}`,
      );
      const out = next();
      filters.push(`${cur}${img}overlay=0:0:format=auto:${only}${out}`);
      cur = out;
      input++;
    }
    if (!(job.captions ?? true) || !b.caption.trim()) continue;
    const { fontSize, lines } = b.card
      ? layoutCaption(b.caption, W, H, { boxWidth: safe.w * 0.9, scale: 1.6, maxLines: 5 })
      : layoutCaption(b.caption, W, H, { boxWidth: safe.w * 0.94 });
    const lineH = Math.round(fontSize * 1.35);
    const blockH = lines.length * lineH;
    // Cards: centred in the safe area. Captions: the lower part of the safe area, bottom edge 4 % above its end.
    const top = b.card
      ? Math.round(safe.y + (safe.h - blockH) / 2)
      : Math.round(Math.min(safe.y + safe.h * 0.72 - blockH / 2, safe.y + safe.h * 0.96 - blockH));
    for (const [i, line] of lines.entries()) {
      const file = path.join(job.workDir, `caption-${k}-${i}.txt`);
      await fs.writeFile(file, line);
      const out = next();
      filters.push(
        `${cur}drawtext=fontfile=${q(job.fontFile)}:textfile=${q(file)}:expansion=none:fontsize=${fontSize}` +
          `:fontcolor=white:borderw=${Math.max(2, Math.round(fontSize / 14))}:bordercolor=black@0.85` +
          `:box=1:boxcolor=black@0.35:boxborderw=${Math.round(fontSize / 5)}` +
          `:x=${safe.x}+(${safe.w}-text_w)/2:y=${top + i * lineH}:${only}${out}`,
      );
      cur = out;
    }
  }
  if (job.logoFile) {
    // About a sixth of the shorter side wide, in the safe area's top-right corner.
    const logoW = Math.round(Math.min(W, H) / 6);
    const margin = Math.round(Math.min(W, H) * 0.02);
    inputs.push('-i', job.logoFile);
    filters.push(`[${input}:v]scale=${logoW}:-1,format=rgba[logo]`);
    const out = next();
    filters.push(
      `${cur}[logo]overlay=x=${safe.x + safe.w - margin}-w:y=${safe.y + margin}:format=auto${out}`,
    );
    cur = out;
  }
  const stillsOut = next();
  filters.push(`${cur}format=rgba${stillsOut}`);
  const script = path.join(job.workDir, 'stills.filters');
  await fs.writeFile(script, filters.join(';\n'));
  await run([
    ...inputs,
    '-filter_complex_script',
    script,
    '-map',
    stillsOut,
    '-frames:v',
    String(n),
    '-start_number',
    '0',
    path.join(job.workDir, 'still-%03d.png'),
  ]);
}

interface LoudnormMeasure {
  input_i: string;
  input_tp: string;
  input_lra: string;
  input_thresh: string;
  target_offset: string;
}

/** The last JSON object ffmpeg's loudnorm printed to stderr. */
function parseLoudnorm(stderr: string): LoudnormMeasure | undefined {
  const start = stderr.lastIndexOf('{');
  const end = stderr.lastIndexOf('}');
  if (start < 0 || end < start) return undefined;
  try {
    return JSON.parse(stderr.slice(start, end + 1)) as LoudnormMeasure;
  } catch {
    // Not loudnorm's block: treated as no measurement.
    return undefined;
  }
}

/**
 * Builds the soundtrack: narration at -16 LUFS (delayed by a title card),
 * music at -16 LUFS with the ducking envelope, mixed and padded to the video's
 * length; then loudnorm's two passes to the platform target. Undefined when
 * there is neither narration nor music (a silent track is made at encode).
 */
async function mixAudio(
  job: RenderJob,
  total: number,
  run: FfmpegRun,
): Promise<{ file: string; inputI: number; inputTp: number } | undefined> {
  if (!job.audioFile && !job.music) return undefined;
  const inputs: string[] = [];
  const chains: string[] = [];
  const mixIn: string[] = [];
  const delayMs = Math.round((job.audioOffsetS ?? 0) * 1000);
  if (job.audioFile) {
    // Narration WAVs are mono (every TTS provider's PCM), often without a channel layout: pan names it.
    inputs.push('-i', job.audioFile);
    chains.push(
      `[0:a]pan=stereo|c0=c0|c1=c0,aresample=48000,loudnorm=I=-16:TP=-2:LRA=11,aresample=48000,adelay=${delayMs}:all=1,apad,atrim=0:${total.toFixed(3)}[narr]`,
    );
    mixIn.push('[narr]');
  }
  if (job.music) {
    const i = inputs.length / 2;
    inputs.push('-stream_loop', '-1', '-i', job.music.file);
    chains.push(
      `[${i}:a]aresample=48000,aformat=channel_layouts=stereo,atrim=0:${total.toFixed(3)},asetpts=PTS-STARTPTS,` +
        `loudnorm=I=-16:TP=-2:LRA=11,aresample=48000,volume='${duckingExpression(job.music.speech)}':eval=frame[music]`,
    );
    mixIn.push('[music]');
  }
  chains.push(
    mixIn.length === 2
      ? `[narr][music]amix=inputs=2:duration=longest:normalize=0,atrim=0:${total.toFixed(3)}[mix]`
      : `${mixIn[0]}anull[mix]`,
  );
  const mixFile = path.join(job.workDir, 'mix.wav');
  const script = path.join(job.workDir, 'audio.filters');
  await fs.writeFile(script, chains.join(';\n'));
  await run([...inputs, '-filter_complex_script', script, '-map', '[mix]', '-c:a', 'pcm_s24le', mixFile]);
  const { integratedLufs: I, truePeakDbtp: TP, lra: LRA } = LOUDNESS;
  const measured = parseLoudnorm(
    (
      await run([
        '-i',
        mixFile,
        '-af',
        `loudnorm=I=${I}:TP=${TP}:LRA=${LRA}:print_format=json`,
        '-f',
        'null',
        '-',
      ])
    ).stderrTail,
  );
  const finalFile = path.join(job.workDir, 'final.wav');
  const inputI = Number(measured?.input_i);
  // Silence cannot be normalised (-inf): the mix is used as it is.
  if (!measured || !Number.isFinite(inputI)) return { file: mixFile, inputI: -Infinity, inputTp: -Infinity };
  await run([
    '-i',
    mixFile,
    '-af',
    `loudnorm=I=${I}:TP=${TP}:LRA=${LRA}:measured_I=${measured.input_i}:measured_TP=${measured.input_tp}` +
      `:measured_LRA=${measured.input_lra}:measured_thresh=${measured.input_thresh}:offset=${measured.target_offset}:linear=true,aresample=48000,aformat=channel_layouts=stereo`,
    '-c:a',
    'pcm_s24le',
    finalFile,
  ]);
  return { file: finalFile, inputI, inputTp: Number(measured.input_tp) };
}
