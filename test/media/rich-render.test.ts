/**
 * Renders with uploaded assets, made here with ffmpeg: an image and a clip as
 * block backgrounds, a logo, music ducked under real eSpeak narration, title
 * and end cards, captions inside TikTok's safe area, SRT/VTT beside the MP4,
 * and the mix's loudness on target. Checked with ffprobe, ebur128 and frame
 * pixels; over the local store and S3 (an S3-compatible server, see test/support/s3.ts).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/db/database.js';
import type { Asset } from '../../src/media/assets/assets.repo.js';
import type { MediaServices } from '../../src/media/media-services.js';
import { RENDER_PRESETS } from '../../src/media/render/presets.js';
import { TITLE_CARD_S } from '../../src/media/render/render-options.js';
import { SAFE_AREAS, safeRect } from '../../src/media/render/safe-areas.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { ffmpegReport, levelDb, makeClip, makeImage, makeTone, videoFrame } from './asset-fixtures.js';
import { espeakGeneration, seedContent, storedFile } from './media-fixtures.js';
import { openStoredMedia, type StoredMedia, uploadAsset } from './stored-media.js';

const { width: W, height: H } = RENDER_PRESETS.tiktok;

const frame = (file: string, t: number) => videoFrame(file, t, 'rgb24');
const px = (f: Buffer, x: number, y: number) => {
  const i = (y * W + x) * 3;
  return [f[i] ?? 0, f[i + 1] ?? 0, f[i + 2] ?? 0] as const;
};
const dominant = (rgb: readonly number[]) => ['red', 'green', 'blue'][rgb.indexOf(Math.max(...rgb))];
/** Near-white pixels (caption text) in a rectangle. */
function whites(f: Buffer, x0: number, y0: number, x1: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y += 2)
    for (let x = x0; x < x1; x += 2) {
      const [r, g, b] = px(f, x, y);
      if (r > 235 && g > 235 && b > 235) n++;
    }
  return n;
}

/** Integrated loudness (LUFS) and true peak (dBTP) by ffmpeg's EBU R128 meter. */
function loudness(file: string): { i: number; tp: number } {
  const err = ffmpegReport(['-i', file, '-vn', '-af', 'ebur128=peak=true', '-f', 'null', '-']);
  const summary = err.slice(err.lastIndexOf('Summary:'));
  return {
    i: Number(/I:\s*(-?[\d.]+) LUFS/.exec(summary)?.[1]),
    tp: Number(/Peak:\s*(-?[\d.]+) dBFS/.exec(summary)?.[1]),
  };
}

let s3: S3TestTarget;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

describe.each(['local', 's3'] as const)('rich render (%s storage)', (storageKind) => {
  let stored: StoredMedia;
  let handle: DatabaseHandle;
  let media: MediaServices;

  beforeAll(async () => {
    stored = await openStoredMedia(storageKind === 's3' ? s3.env : {}, { NARRATION_BLOCK_PAUSE_MS: '1500' });
    ({ handle, media } = stored);
    expect(media.storage.kind).toBe(storageKind);
  });
  afterAll(async () => {
    await stored?.close();
  });

  const upload = (clientId: number, file: string, kind?: Asset['kind']) =>
    uploadAsset(media, clientId, file, kind);

  it('backgrounds, logo, cards, ducked music, safe captions, caption files and loudness', async () => {
    const seeded = await seedContent(
      handle.db,
      ['봄이 왔습니다. 새 메뉴를 소개합니다.', '벚꽃 라떼를 만나보세요.', '오늘커피에서 기다립니다.'],
      {
        brandColor: '#0000C8',
        platform: 'tiktok',
      },
    );
    const image = await upload(seeded.clientId, makeImage({ w: 640, h: 480, color: '0xE01010' }));
    const clip = await upload(seeded.clientId, makeClip({ seconds: 1, w: 320, h: 240, color: '0x10E010' }));
    const logo = await upload(
      seeded.clientId,
      makeImage({ w: 200, h: 100, color: '0xFFFF00', alpha: true }),
      'logo',
    );
    const music = await upload(seeded.clientId, makeTone({ seconds: 4, hz: 60, ext: 'wav' }));
    const blocks = await handle.db
      .selectFrom('script_blocks')
      .select(['id', 'sequence'])
      .where('content_id', '=', seeded.contentId)
      .orderBy('sequence')
      .execute();
    await handle.db
      .updateTable('script_blocks')
      .set({ background: `asset:${image.id}` })
      .where('id', '=', blocks[0]?.id ?? 0)
      .execute();
    await handle.db
      .updateTable('script_blocks')
      .set({ background: `asset:${clip.id}` })
      .where('id', '=', blocks[1]?.id ?? 0)
      .execute();
    await media.assets.choose('client', seeded.clientId, 'logo', logo.id);
    await media.assets.choose('campaign', seeded.campaignId, 'music', music.id);

    const gen = await espeakGeneration(media.repo, seeded.contentId);
    expect((await media.narration.narrate({ generationId: gen.id })).status).toBe('succeeded');
    const manifest = await media.narration.manifest(gen.id);
    const t = (manifest?.timings ?? []).map((x) => ({
      start: x.start_s + TITLE_CARD_S,
      end: x.end_s + TITLE_CARD_S,
    }));
    expect(t).toHaveLength(3);

    const row = await media.repo.createRender({
      content_id: seeded.contentId,
      preset: 'tiktok',
      width: W,
      height: H,
      fps: 30,
    });
    await media.repo.updateRender(row.id, {
      options: JSON.stringify({
        titleCard: true,
        endCard: '지금 주문하세요',
        zoom: false,
        music: true,
        logo: true,
      }),
    });
    const out = await media.renders.render({ renderId: row.id, quality: 'low' });
    const file = await storedFile(media.storage, out.outputPath);
    const total = TITLE_CARD_S + (manifest?.duration_s ?? 0) + 2.5;
    expect(out.durationS).toBeCloseTo(total, 2);
    const probe = JSON.parse(
      execFileSync(
        'ffprobe',
        [
          '-v',
          'error',
          '-show_entries',
          'format=duration:stream=codec_type,width,height',
          '-of',
          'json',
          file,
        ],
        { encoding: 'utf8' },
      ),
    ) as { format: { duration: string }; streams: { codec_type: string; width?: number }[] };
    expect(Math.abs(Number(probe.format.duration) - total)).toBeLessThan(0.1);

    const safe = safeRect(SAFE_AREAS.tiktok, W, H);
    const mid = (i: number) => ((t[i]?.start ?? 0) + (t[i]?.end ?? 0)) / 2;
    // Backgrounds: the image (red), the clip (green), the brand colour (blue); sampled left of centre, above the captions.
    const probeAt = (f: Buffer) => dominant(px(f, Math.round(W * 0.3), Math.round(H * 0.3)));
    const f0 = frame(file, mid(0));
    const f1 = frame(file, mid(1));
    const f2 = frame(file, mid(2));
    expect(probeAt(f0)).toBe('red');
    expect(probeAt(f1)).toBe('green');
    expect(probeAt(f2)).toBe('blue');
    // The logo (yellow) sits in the top-right corner of the safe area on every frame; outside it, the background.
    const logoW = Math.round(Math.min(W, H) / 6);
    const margin = Math.round(Math.min(W, H) * 0.02);
    const logoX = safe.x + safe.w - margin - Math.round(logoW / 2);
    const logoY = safe.y + margin + Math.round(logoW / 4);
    for (const f of [f0, f1, f2]) {
      const [r, g, b] = px(f, logoX, logoY);
      // Yellow at half opacity over any of the three backgrounds: red and green both up, blue down.
      expect(r > 100 && g > 100 && b < 120, `logo pixel ${[r, g, b]}`).toBe(true);
    }
    expect(dominant(px(f2, W - 20, 20))).toBe('blue'); // the corner itself is outside the safe area
    // Captions: white text inside the safe area's lower part, none in the bottom or right strips TikTok covers.
    for (const f of [f0, f1, f2]) {
      expect(
        whites(f, safe.x, safe.y + Math.round(safe.h * 0.5), safe.x + safe.w, safe.y + safe.h),
      ).toBeGreaterThan(200);
      expect(whites(f, 0, safe.y + safe.h, W, H)).toBe(0);
      expect(whites(f, safe.x + safe.w, 0, W, H)).toBe(0);
    }
    // Title card (brand colour, the title drawn large in the middle) and end card.
    const title = frame(file, 1);
    expect(probeAt(title)).toBe('blue');
    expect(whites(title, safe.x, Math.round(H * 0.4), safe.x + safe.w, Math.round(H * 0.6))).toBeGreaterThan(
      300,
    );
    const end = frame(file, total - 1);
    expect(whites(end, safe.x, Math.round(H * 0.4), safe.x + safe.w, Math.round(H * 0.6))).toBeGreaterThan(
      300,
    );

    // Music (a 60 Hz tone) ducked: under narration it is at least 12 dB below the narration and
    // at least 10 dB below its own level between blocks (the 1.5 s pauses) and under the title card.
    const between = levelDb(file, (t[0]?.end ?? 0) + 0.4, (t[1]?.start ?? 0) - 0.4, 60);
    const title60 = levelDb(file, 0.4, TITLE_CARD_S - 0.4, 60);
    for (const i of [0, 1, 2]) {
      const from = (t[i]?.start ?? 0) + 0.3;
      const to = (t[i]?.end ?? 0) - 0.3;
      const music60 = levelDb(file, from, to, 60);
      const narration = levelDb(file, from, to);
      expect(
        narration - music60,
        `block ${i}: narration ${narration} dB, music ${music60} dB`,
      ).toBeGreaterThanOrEqual(12);
      expect(between - music60).toBeGreaterThanOrEqual(10);
      expect(title60 - music60).toBeGreaterThanOrEqual(10);
    }
    // Loudness of the final mix on target: -14 LUFS integrated (±1), true peak at most -1 dBTP.
    const l = loudness(file);
    expect(Math.abs(l.i + 14), `integrated ${l.i} LUFS`).toBeLessThanOrEqual(1);
    expect(l.tp, `true peak ${l.tp} dBTP`).toBeLessThanOrEqual(-1);

    // Caption files: one cue per block at the burned-in times (after the title card).
    const saved = await media.repo.render(row.id);
    const srt = (await media.storage.read(saved?.captions_srt_path ?? ''))?.toString('utf8') ?? '';
    const vtt = (await media.storage.read(saved?.captions_vtt_path ?? ''))?.toString('utf8') ?? '';
    expect(srt.match(/-->/g)).toHaveLength(3);
    expect(srt).toContain('벚꽃 라떼를 만나보세요.');
    const first = /^(\d\d):(\d\d):(\d\d),(\d{3}) -->/m.exec(srt);
    expect(Number(first?.[3]) + Number(first?.[4]) / 1000).toBeCloseTo(t[0]?.start ?? 0, 2);
    expect(vtt.startsWith('WEBVTT\n\n')).toBe(true);
    expect(vtt).toMatch(/\d\d:\d\d:\d\d\.\d{3} --> /);
  }, 240_000);
});
