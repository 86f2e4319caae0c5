/**
 * The frames in docs/media.md: one render per platform preset by the
 * project's own renderer (an image background, the logo, a caption inside
 * the safe area), its middle frame saved small as docs/media/<preset>.jpg.
 *
 *   npm run docs:media-frames
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { locateFfmpeg } from '../src/media/ffmpeg.js';
import { RENDER_PRESETS } from '../src/media/render/presets.js';
import { defaultFontFile, renderVideo } from '../src/media/render/renderer.js';
import { SAFE_AREAS } from '../src/media/render/safe-areas.js';

const ffmpeg = locateFfmpeg(process.env.FFMPEG_PATH).path;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-docs-frames-'));
const out = path.resolve('docs/media');
fs.mkdirSync(out, { recursive: true });
const ff = (args: string[]) => execFileSync(ffmpeg, ['-v', 'error', '-y', ...args]);

try {
  // A "photo" (ffmpeg's test pattern with a gradient) and a logo with transparency.
  const photo = path.join(dir, 'photo.png');
  ff(['-f', 'lavfi', '-i', 'testsrc2=s=1600x1200', '-frames:v', '1', '-vf', 'hue=s=0.6', photo]);
  const logo = path.join(dir, 'logo.png');
  ff([
    '-f',
    'lavfi',
    '-i',
    'color=c=white@0.9:s=300x120,format=rgba,drawbox=x=10:y=10:w=280:h=100:color=0xE11D48@0.9:t=fill',
    '-frames:v',
    '1',
    logo,
  ]);
  for (const [preset, size] of Object.entries(RENDER_PRESETS)) {
    const file = path.join(dir, `${preset}.mp4`);
    await renderVideo(
      {
        preset: size,
        quality: 'high',
        blocks: [
          {
            start_s: 0,
            end_s: 2,
            caption: '봄 한정 벚꽃 라떼, 오늘커피에서 만나보세요!',
            background: { kind: 'image', path: photo },
          },
        ],
        durationS: 2,
        logoFile: logo,
        safeArea: SAFE_AREAS[preset as keyof typeof SAFE_AREAS],
        fontFile: defaultFontFile(),
        outputFile: file,
        thumbnailFile: path.join(dir, `${preset}.png`),
        workDir: path.join(dir, `${preset}-work`),
      },
      { ffmpeg, timeoutMs: 120_000 },
    );
    ff([
      '-ss',
      '1',
      '-i',
      file,
      '-frames:v',
      '1',
      '-vf',
      'scale=360:-2',
      '-q:v',
      '4',
      path.join(out, `${preset}.jpg`),
    ]);
    process.stdout.write(`docs/media/${preset}.jpg\n`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
