/** Real media files made with ffmpeg for asset and render tests (no fixtures checked in). */
import { execFileSync } from 'node:child_process';
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
