import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/db/database.js';
import { FfmpegError, locateFfmpeg, runFfmpeg } from '../../src/media/ffmpeg.js';
import { ChangeFeed } from '../../src/domain/changes.js';
import { createMediaServices, type MediaServices } from '../../src/media/media-services.js';
import { RENDER_PRESETS } from '../../src/media/render/presets.js';
import { RenderInputError, RenderService } from '../../src/media/render/render.service.js';
import { defaultFontFile, renderVideo, type TimelineBlock } from '../../src/media/render/renderer.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { probeFrames, videoFrame } from './asset-fixtures.js';
import {
  mediaConfig,
  openMigrated,
  seedContent,
  silentLogger,
  storedFile,
  tempDir,
  espeakGeneration,
} from './media-fixtures.js';

const FFMPEG = locateFfmpeg(undefined).path;

interface Probe {
  streams: {
    codec_type: string;
    codec_name: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    r_frame_rate?: string;
  }[];
  format: { duration: string };
}
function probe(file: string): Probe {
  return JSON.parse(
    execFileSync(
      'ffprobe',
      [
        '-v',
        'error',
        '-show_entries',
        'stream=codec_type,codec_name,width,height,pix_fmt,r_frame_rate:format=duration',
        '-of',
        'json',
        file,
      ],
      { encoding: 'utf8' },
    ),
  ) as Probe;
}

/** One video frame at `t` seconds as 8-bit grey pixels. */
const frameAt = (file: string, t: number) => videoFrame(file, t, 'gray');

function differingPixels(a: Buffer, b: Buffer, tolerance = 24): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (Math.abs((a[i] ?? 0) - (b[i] ?? 0)) > tolerance) n++;
  return n;
}

const SCRIPT = ['봄이 왔습니다.', '오늘커피의 벚꽃 라떼를 만나보세요.'];

describe.each(dbBackends())('video rendering (%s)', (backend) => {
  let handle: DatabaseHandle;
  let media: MediaServices;
  let contentId: number;
  let narrationS: number;

  beforeAll(async () => {
    handle = await openMigrated(await freshDatabaseConfig(backend));
    media = createMediaServices(mediaConfig(), handle.db, handle.dialect, silentLogger, {
      changes: new ChangeFeed(silentLogger),
    });
    ({ contentId } = await seedContent(handle.db, SCRIPT, { brandColor: '#7C2D12' }));
    const gen = await espeakGeneration(media.repo, contentId);
    const out = await media.narration.narrate({ generationId: gen.id });
    expect(out.status).toBe('succeeded');
    narrationS = out.durationS ?? 0;
  });
  afterAll(async () => {
    await media?.close();
    await handle?.close();
  });

  it.each(Object.entries(RENDER_PRESETS))(
    '%s: H.264 yuv420p + AAC at the preset size, duration of the narration',
    async (preset, size) => {
      const row = await media.repo.createRender({
        content_id: contentId,
        preset: preset as keyof typeof RENDER_PRESETS,
        width: size.width,
        height: size.height,
        fps: size.fps,
      });
      const progress: number[] = [];
      const out = await media.renders.render({
        renderId: row.id,
        quality: 'low',
        onProgress: (p) => progress.push(p),
      });
      const file = await storedFile(media.storage, out.outputPath);
      const p = probe(file);
      const video = p.streams.find((s) => s.codec_type === 'video');
      const audio = p.streams.find((s) => s.codec_type === 'audio');
      expect(video).toMatchObject({
        codec_name: 'h264',
        width: size.width,
        height: size.height,
        pix_fmt: 'yuv420p',
        r_frame_rate: '30/1',
      });
      expect(audio?.codec_name).toBe('aac');
      expect(Math.abs(Number(p.format.duration) - narrationS)).toBeLessThan(0.1);
      // faststart: the index (moov) precedes the media data (mdat)
      const head = fs
        .readFileSync(file)
        .subarray(0, 64 * 1024)
        .toString('latin1');
      expect(head.indexOf('moov')).toBeGreaterThan(0);
      expect(head.indexOf('moov')).toBeLessThan(
        head.indexOf('mdat') === -1 ? Infinity : head.indexOf('mdat'),
      );
      const thumb = fs.readFileSync(await storedFile(media.storage, out.thumbnailPath));
      expect(thumb.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect(progress.at(-1)).toBe(100);
      const saved = await media.repo.render(row.id);
      expect(saved).toMatchObject({
        status: 'succeeded',
        size_bytes: fs.statSync(file).size,
        output_path: out.outputPath,
      });
      expect(saved?.duration_s).toBeCloseTo(narrationS, 2);
      const content = await handle.db
        .selectFrom('contents')
        .select('status')
        .where('id', '=', contentId)
        .executeTakeFirst();
      expect(content?.status).toBe('rendered');
    },
  );

  it('silent render: timed by block durations, with a silent audio track', async () => {
    const seeded = await seedContent(handle.db, [
      { text: '첫 장면', duration_s: 1.5, background: '#0F766E' },
      { text: '둘째 장면', duration_s: 2 },
    ]);
    const row = await media.repo.createRender({
      content_id: seeded.contentId,
      preset: 'facebook',
      width: 1280,
      height: 720,
      fps: 30,
    });
    const out = await media.renders.render({ renderId: row.id, quality: 'low', silent: true });
    const p = probe(await storedFile(media.storage, out.outputPath));
    expect(Math.abs(Number(p.format.duration) - 3.5)).toBeLessThan(0.1);
    expect(p.streams.some((s) => s.codec_type === 'audio')).toBe(true);
  });

  it('per-block backgrounds: the brand colour, a block colour, and an image from storage', async () => {
    const img = path.join(tempDir(), 'red.png');
    execFileSync(FFMPEG, [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'color=c=0xFF0000:s=64x64',
      '-frames:v',
      '1',
      img,
    ]);
    await media.storage.putFile('uploads/red.png', img);
    const seeded = await seedContent(
      handle.db,
      [
        { text: '', duration_s: 1 },
        { text: '', duration_s: 1, background: '#00FF00' },
        { text: '', duration_s: 1, background: 'uploads/red.png' },
        { text: '', duration_s: 1, background: '../../etc/passwd' },
      ],
      { brandColor: '#0000FF' },
    );
    const row = await media.repo.createRender({
      content_id: seeded.contentId,
      preset: 'facebook',
      width: 1280,
      height: 720,
      fps: 30,
    });
    const out = await media.renders.render({ renderId: row.id, quality: 'high', silent: true });
    const file = await storedFile(media.storage, out.outputPath);
    const rgbAt = (t: number) => {
      const i = (100 * 1280 + 100) * 3;
      const px = videoFrame(file, t, 'rgb24');
      return [px[i] ?? 0, px[i + 1] ?? 0, px[i + 2] ?? 0];
    };
    const dominant = (rgb: number[]) => ['red', 'green', 'blue'][rgb.indexOf(Math.max(...rgb))];
    expect(dominant(rgbAt(0.5))).toBe('blue'); // brand colour
    expect(dominant(rgbAt(1.5))).toBe('green'); // block colour
    expect(dominant(rgbAt(2.5))).toBe('red'); // stored image
    expect(dominant(rgbAt(3.5))).toBe('blue'); // a path outside storage falls back to the brand colour
  });

  it('refuses a render without narration unless silent, and without ffmpeg with a clear error', async () => {
    const seeded = await seedContent(handle.db, ['내레이션 없음']);
    const row = await media.repo.createRender({
      content_id: seeded.contentId,
      preset: 'tiktok',
      width: 1080,
      height: 1920,
      fps: 30,
    });
    await expect(media.renders.render({ renderId: row.id, quality: 'low' })).rejects.toThrow(
      RenderInputError,
    );
    const noFfmpeg = new RenderService({
      repo: media.repo,
      assets: media.assetsRepo,
      storage: media.storage,
      scratchDir: tempDir(),
      narration: media.narration,
      ffmpegPath: undefined,
      ffmpegError: 'ffmpeg not found: set FFMPEG_PATH',
      fontFile: defaultFontFile(),
      timeoutMs: 10_000,
      logger: silentLogger,
    });
    await expect(noFfmpeg.render({ renderId: row.id, quality: 'low', silent: true })).rejects.toThrow(
      /ffmpeg not found/,
    );
  });
});

describe('renderer: captions and faults', () => {
  const dir = tempDir('ov-render-');
  const preset = RENDER_PRESETS.facebook;
  const blocks = (caption: string): TimelineBlock[] => [
    { start_s: 0, end_s: 2, caption, background: { kind: 'color', color: '#1E3A8A' } },
  ];
  async function render(name: string, caption: string, opts: { captions?: boolean; fontFile?: string } = {}) {
    const out = path.join(dir, `${name}.mp4`);
    await renderVideo(
      {
        preset,
        quality: 'low',
        blocks: blocks(caption),
        durationS: 2,
        captions: opts.captions,
        fontFile: opts.fontFile ?? defaultFontFile(),
        outputFile: out,
        thumbnailFile: path.join(dir, `${name}.png`),
        workDir: path.join(dir, `${name}-work`),
      },
      { ffmpeg: FFMPEG, timeoutMs: 60_000 },
    );
    return out;
  }

  it('holds each still for exactly its frames: a render of uneven blocks has every frame of its length', async () => {
    const lengths = [2.87, 3.13, 2.5, 3.3, 1.9, 2.77];
    let at = 0;
    const timeline: TimelineBlock[] = lengths.map((d, i) => {
      const b = {
        start_s: at,
        end_s: at + d,
        caption: '',
        background: { kind: 'color', color: i % 2 ? '#1E3A8A' : '#7C2D12' },
      } as const;
      at += d;
      return b;
    });
    const out = path.join(dir, 'uneven.mp4');
    await renderVideo(
      {
        preset,
        quality: 'low',
        blocks: timeline,
        durationS: at,
        fontFile: defaultFontFile(),
        outputFile: out,
        thumbnailFile: path.join(dir, 'uneven.png'),
        workDir: path.join(dir, 'uneven-work'),
      },
      { ffmpeg: FFMPEG, timeoutMs: 60_000 },
    );
    expect(probeFrames(out).frames).toBe(Math.round(at * 30));
  });

  it('draws the caption: a mid-block frame differs from the same frame without captions', async () => {
    const withCaption = await render('with', '벚꽃 라떼 출시');
    const without = await render('without', '벚꽃 라떼 출시', { captions: false });
    expect(differingPixels(frameAt(withCaption, 1), frameAt(without, 1))).toBeGreaterThan(2000);
  });

  it('renders Hangul as glyphs, not boxes: different words give different pixels (and a font without Hangul does not)', async () => {
    const a = frameAt(await render('ga', '가나다라마'), 1);
    const b = frameAt(await render('ba', '바사아자차'), 1);
    expect(differingPixels(a, b)).toBeGreaterThan(1000);
    // Control: DejaVu Sans has no Hangul, so both strings become the same row of boxes.
    const dejavu = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';
    if (fs.existsSync(dejavu)) {
      const ta = frameAt(await render('tofu-a', '가나다라마', { fontFile: dejavu }), 1);
      const tb = frameAt(await render('tofu-b', '바사아자차', { fontFile: dejavu }), 1);
      expect(differingPixels(ta, tb)).toBeLessThan(50);
    }
  });

  it('puts caption text in files: quotes, colons and percent signs are drawn, not parsed', async () => {
    const out = await render('special', "50% 할인: 'today' \\ only");
    expect(probe(out).streams.some((s) => s.codec_type === 'video')).toBe(true);
  });

  it('ffmpeg missing: a clear error', async () => {
    expect(() => locateFfmpeg('/nonexistent/ffmpeg')).toThrow(
      /FFMPEG_PATH=\/nonexistent\/ffmpeg is not an executable/,
    );
    expect(() => locateFfmpeg(undefined, '/nonexistent-dir')).not.toThrow(); // falls back to the npm binary
    await expect(
      runFfmpeg({ ffmpeg: '/nonexistent/ffmpeg', args: ['-version'], timeoutMs: 5000 }),
    ).rejects.toMatchObject({ kind: 'not_found' });
  });

  it('ffmpeg killed mid-render: an error with the tail of its stderr', async () => {
    let spawns = 0;
    let encodePid: number | undefined;
    let killed = false;
    const err = await renderVideo(
      {
        preset: RENDER_PRESETS.tiktok,
        quality: 'high',
        blocks: [
          {
            start_s: 0,
            end_s: 120,
            caption: '오래 걸리는 렌더',
            background: { kind: 'color', color: '#000000' },
          },
        ],
        durationS: 120,
        fontFile: defaultFontFile(),
        outputFile: path.join(dir, 'killed.mp4'),
        thumbnailFile: path.join(dir, 'killed.png'),
        workDir: path.join(dir, 'killed-work'),
      },
      {
        ffmpeg: FFMPEG,
        timeoutMs: 60_000,
        onSpawn: (pid) => {
          // The second process is the encode (no audio to mix here).
          if (++spawns === 2) encodePid = pid;
        },
        onProgress: (p) => {
          // Killed once the encode reports progress, so it has started writing (and logging).
          if (p > 12 && encodePid !== undefined && !killed) {
            killed = true;
            process.kill(encodePid, 'SIGKILL');
          }
        },
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    expect(err).toMatchObject({ kind: 'killed' });
    expect((err as FfmpegError).stderrTail).toMatch(/libx264|Stream|Output/);
    expect((err as FfmpegError).message).toContain('ffmpeg stderr (tail)');
  });

  it('kills ffmpeg at the hard timeout', async () => {
    const err = await runFfmpeg({
      ffmpeg: FFMPEG,
      args: ['-f', 'lavfi', '-re', '-i', 'color=s=64x64:d=30', '-f', 'null', '-'],
      timeoutMs: 400,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'timeout' });
  });
});
