/** Real media files made with ffmpeg for asset and render tests (no fixtures checked in). */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { locateFfmpeg } from '../../src/media/ffmpeg.js';
import { tempDir } from './media-fixtures.js';

export const FFMPEG = locateFfmpeg(undefined).path;

function ff(args: string[], out: string): string {
  execFileSync(FFMPEG, ['-v', 'error', '-y', ...args, out]);
  return out;
}

const dir = () => tempDir('ov-assets-');

/** A still image; `alpha` makes an RGBA PNG whose colour is half transparent. */
export function makeImage(
  opts: { w?: number; h?: number; color?: string; alpha?: boolean; ext?: 'png' | 'jpg' | 'webp' } = {},
): string {
  const { w = 64, h = 48, color = 'red', alpha = false, ext = 'png' } = opts;
  const src = alpha ? `color=c=${color}@0.5:s=${w}x${h},format=rgba` : `color=c=${color}:s=${w}x${h}`;
  return ff(['-f', 'lavfi', '-i', src, '-frames:v', '1'], path.join(dir(), `image.${ext}`));
}

/** A test-pattern clip of `seconds` (MP4 H.264, MOV, or WebM VP9), with a tone unless `silent`. */
export function makeClip(
  opts: { seconds?: number; w?: number; h?: number; ext?: 'mp4' | 'mov' | 'webm'; color?: string } = {},
): string {
  const { seconds = 1, w = 64, h = 48, ext = 'mp4', color } = opts;
  const video = color
    ? `color=c=${color}:s=${w}x${h}:r=30:d=${seconds}`
    : `testsrc=s=${w}x${h}:r=30:d=${seconds}`;
  const codec =
    ext === 'webm'
      ? ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-c:a', 'libopus']
      : ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac'];
  return ff(
    ['-f', 'lavfi', '-i', video, '-f', 'lavfi', '-i', `sine=f=880:d=${seconds}`, '-shortest', ...codec],
    path.join(dir(), `clip.${ext}`),
  );
}

/** An image of `fill` colour inside a `border`-pixel frame of `frame` colour (PNG, exact edges). */
export function makeFramedImage(opts: {
  w: number;
  h: number;
  border: number;
  frame: string;
  fill: string;
}): string {
  const { w, h, border, frame, fill } = opts;
  return ff(
    [
      '-f',
      'lavfi',
      '-i',
      `color=c=${frame}:s=${w}x${h},drawbox=x=${border}:y=${border}:w=${w - 2 * border}:h=${h - 2 * border}:color=${fill}:t=fill`,
      '-frames:v',
      '1',
    ],
    path.join(dir(), 'framed.png'),
  );
}

/** A clip of solid colours one after another (MP4 H.264, 30 fps) with an 880 Hz tone over its whole length. */
export function makeColourClip(segments: { color: string; seconds: number }[], w = 320, h = 240): string {
  const total = segments.reduce((s, x) => s + x.seconds, 0);
  const inputs = segments.flatMap((x) => [
    '-f',
    'lavfi',
    '-i',
    `color=c=${x.color}:s=${w}x${h}:r=30:d=${x.seconds}`,
  ]);
  const joined = `${segments.map((_, i) => `[${i}:v]`).join('')}concat=n=${segments.length}:v=1:a=0[v]`;
  return ff(
    [
      ...inputs,
      '-f',
      'lavfi',
      '-i',
      `sine=f=880:d=${total}:sample_rate=48000`,
      '-filter_complex',
      joined,
      '-map',
      '[v]',
      '-map',
      `${segments.length}:a`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-t',
      String(total),
    ],
    path.join(dir(), 'colours.mp4'),
  );
}

/** A sine tone of `seconds` at `hz` (MP3, WAV or M4A). */
export function makeTone(opts: { seconds?: number; hz?: number; ext?: 'mp3' | 'wav' | 'm4a' } = {}): string {
  const { seconds = 1, hz = 440, ext = 'wav' } = opts;
  const codec = ext === 'm4a' ? ['-c:a', 'aac'] : [];
  return ff(
    ['-f', 'lavfi', '-i', `sine=f=${hz}:d=${seconds}:sample_rate=48000`, ...codec],
    path.join(dir(), `tone.${ext}`),
  );
}

/** One decoded video frame at `t` seconds as raw pixels (`gray`: 1 byte each; `rgb24`: 3). */
export function videoFrame(file: string, t: number, pixFmt: 'gray' | 'rgb24'): Buffer {
  return execFileSync(
    FFMPEG,
    [
      '-v',
      'error',
      '-ss',
      String(t),
      '-i',
      file,
      '-frames:v',
      '1',
      '-f',
      'rawvideo',
      '-pix_fmt',
      pixFmt,
      '-',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
}

/** ffmpeg's stderr (its measurement filters report there). */
export function ffmpegReport(args: string[]): string {
  const r = spawnSync(FFMPEG, ['-hide_banner', '-nostats', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  return r.stderr;
}

/** RMS level (dBFS) of a file's soundtrack between two times (the whole file without them), optionally only around `band` Hz; -120 for digital silence. */
export function levelDb(file: string, from?: number, to?: number, band?: number): number {
  const bp = band ? `bandpass=f=${band}:width_type=h:w=10,bandpass=f=${band}:width_type=h:w=10,` : '';
  const span = from === undefined || to === undefined ? [] : ['-ss', String(from), '-t', String(to - from)];
  const err = ffmpegReport([
    ...span,
    '-i',
    file,
    '-vn',
    '-af',
    `${bp}astats=measure_perchannel=none:measure_overall=RMS_level`,
    '-f',
    'null',
    '-',
  ]);
  const m = /RMS level dB:\s*(-?[\d.]+|-inf)/.exec(err);
  return !m || m[1] === '-inf' ? -120 : Number(m[1]);
}

/** Decoded video frames and duration (ffprobe). */
export function probeFrames(file: string): { frames: number; durationS: number } {
  const out = JSON.parse(
    execFileSync(
      'ffprobe',
      [
        '-v',
        'error',
        '-count_frames',
        '-select_streams',
        'v:0',
        '-show_entries',
        'stream=nb_read_frames:format=duration',
        '-of',
        'json',
        file,
      ],
      { encoding: 'utf8' },
    ),
  ) as { streams: { nb_read_frames: string }[]; format: { duration: string } };
  return { frames: Number(out.streams[0]?.nb_read_frames), durationS: Number(out.format.duration) };
}
