import { execFile } from 'node:child_process';
import type { AssetKind } from '../../db/types.js';

/** What probing an upload found: the kind and MIME type decided from its content. */
export interface ProbedAsset {
  /** image (PNG, JPEG, WebP), clip (MP4, MOV, WebM video), audio (MP3, WAV, AAC/M4A); a logo is a PNG image with alpha. */
  kind: Exclude<AssetKind, 'logo'>;
  mime: string;
  width: number | null;
  height: number | null;
  duration_s: number | null;
  has_alpha: boolean;
}

export type ProbeRefusal = 'unknown_type' | 'unreadable';

/** The content is not a supported asset (unknown_type) or ffprobe could not read it (unreadable). */
export class AssetProbeError extends Error {
  override name = 'AssetProbeError';
  constructor(
    readonly reason: ProbeRefusal,
    message: string,
  ) {
    super(message);
  }
}

interface FfprobeOutput {
  streams?: {
    codec_type?: string;
    codec_name?: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    disposition?: { attached_pic?: number };
  }[];
  format?: { format_name?: string; duration?: string; tags?: { major_brand?: string } };
}

const IMAGE_FORMATS: Record<string, string> = {
  png_pipe: 'image/png',
  jpeg_pipe: 'image/jpeg',
  webp_pipe: 'image/webp',
};
const AUDIO_FORMATS: Record<string, string> = { mp3: 'audio/mpeg', wav: 'audio/wav', aac: 'audio/aac' };
const audioAsset = (mime: string, durationS: number | null): ProbedAsset => ({
  kind: 'audio',
  mime,
  width: null,
  height: null,
  duration_s: durationS,
  has_alpha: false,
});
const WEBM_VIDEO = new Set(['vp8', 'vp9', 'av1']);
const WEBM_AUDIO = new Set(['opus', 'vorbis']);
const ALPHA_PIX = /^(rgba|bgra|argb|abgr|ya8|ya16|rgba64|bgra64|yuva)/;

/** Runs ffprobe on a file; the upload's name and declared type are never passed, so only its bytes count. */
function ffprobe(ffprobePath: string, file: string, timeoutMs: number): Promise<FfprobeOutput> {
  return new Promise((resolve, reject) => {
    execFile(
      ffprobePath,
      ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean };
          if (e.code === 'ENOENT') return reject(new Error(`ffprobe not found at ${ffprobePath}`));
          if (e.killed)
            return reject(
              new AssetProbeError('unreadable', `ffprobe took longer than ${timeoutMs} ms on the file`),
            );
          const why = stderr.trim().split('\n').at(-1) ?? '';
          // No demuxer recognised the bytes at all: not a media type we know, rather than a broken one.
          if (/Invalid data found when processing input/.test(why))
            return reject(
              new AssetProbeError(
                'unknown_type',
                'the content is not a recognised image, video or audio format',
              ),
            );
          return reject(new AssetProbeError('unreadable', `the file cannot be read as media (${why})`));
        }
        try {
          resolve(JSON.parse(stdout) as FfprobeOutput);
        } catch (parseErr) {
          reject(
            new AssetProbeError('unreadable', `ffprobe gave no result (${(parseErr as Error).message})`),
          );
        }
      },
    );
  });
}

/**
 * Decides what an uploaded file is from its content with ffprobe (killed after
 * `timeoutMs`). ffprobe reads headers only, so an image's pixel count is known
 * before anything decodes it (decompression bombs are refused by the caller).
 * Throws AssetProbeError for content that is not a supported image, clip or audio file.
 */
export async function probeAsset(ffprobePath: string, file: string, timeoutMs: number): Promise<ProbedAsset> {
  const out = await ffprobe(ffprobePath, file, timeoutMs);
  const formats = (out.format?.format_name ?? '').split(',');
  const streams = out.streams ?? [];
  const video = streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  const audio = streams.find((s) => s.codec_type === 'audio');
  const duration = Number(out.format?.duration);
  const durationS = Number.isFinite(duration) && duration > 0 ? Math.round(duration * 1000) / 1000 : null;
  const size = { width: video?.width ?? null, height: video?.height ?? null };

  const imageMime = IMAGE_FORMATS[formats[0] ?? ''];
  if (imageMime && video) {
    if (!size.width || !size.height) throw new AssetProbeError('unreadable', 'the image has no dimensions');
    return {
      kind: 'image',
      mime: imageMime,
      ...size,
      duration_s: null,
      has_alpha: ALPHA_PIX.test(video.pix_fmt ?? ''),
    };
  }
  if (formats.includes('mp4') || formats.includes('mov')) {
    const brand = (out.format?.tags?.major_brand ?? '').trim();
    if (video)
      return {
        kind: 'clip',
        mime: brand === 'qt' ? 'video/quicktime' : 'video/mp4',
        ...size,
        duration_s: durationS,
        has_alpha: false,
      };
    if (audio?.codec_name === 'aac') return audioAsset('audio/mp4', durationS);
  }
  if (formats.includes('webm') && video && WEBM_VIDEO.has(video.codec_name ?? ''))
    if (!audio || WEBM_AUDIO.has(audio.codec_name ?? ''))
      return { kind: 'clip', mime: 'video/webm', ...size, duration_s: durationS, has_alpha: false };
  const audioMime = AUDIO_FORMATS[formats[0] ?? ''];
  if (audio && !video && audioMime) return audioAsset(audioMime, durationS);
  throw new AssetProbeError(
    'unknown_type',
    `the content is ${out.format?.format_name ?? 'unknown'} (${streams.map((s) => s.codec_name).join(', ') || 'no streams'}); accepted: PNG, JPEG, WebP images; MP4, MOV, WebM clips; MP3, WAV, AAC/M4A audio`,
  );
}
