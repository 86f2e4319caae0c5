/**
 * Render options on uploaded backgrounds, checked on the decoded frames: the
 * slow zoom of an image (100 % to 108 % over the block, centred) against the
 * same render without it, and clip backgrounds cut when longer than their
 * block, looped when shorter, and never heard. Over the local store and S3
 * (an S3-compatible server, see test/support/s3.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/db/database.js';
import type { MediaServices } from '../../src/media/media-services.js';
import { RENDER_PRESETS } from '../../src/media/render/presets.js';
import { DEFAULT_RENDER_OPTIONS } from '../../src/media/render/render-options.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { levelDb, makeColourClip, makeFramedImage, probeFrames, videoFrame } from './asset-fixtures.js';
import { seedContent, storedFile } from './media-fixtures.js';
import { openStoredMedia, type StoredMedia, uploadAsset } from './stored-media.js';

type Rgb = readonly [number, number, number];
const GREEN = '0x10E010';
const RED = '0xE01010';
const colour = ([r, g, b]: Rgb) =>
  g > 150 && r < 110 && b < 110 ? 'green' : r > 150 && g < 110 ? 'red' : 'other';

/** The frame at `t` seconds of a `w`-wide video, and its pixel at (x, y). */
function framePixels(file: string, t: number, w: number) {
  const f = videoFrame(file, t, 'rgb24');
  return (x: number, y: number): Rgb => {
    const i = (y * w + x) * 3;
    return [f[i] ?? 0, f[i + 1] ?? 0, f[i + 2] ?? 0];
  };
}

let s3: S3TestTarget;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

describe.each(['local', 's3'] as const)('render options (%s storage)', (storageKind) => {
  let stored: StoredMedia;
  let handle: DatabaseHandle;
  let media: MediaServices;

  beforeAll(async () => {
    stored = await openStoredMedia(storageKind === 's3' ? s3.env : {});
    ({ handle, media } = stored);
    expect(media.storage.kind).toBe(storageKind);
  });
  afterAll(async () => {
    await stored?.close();
  });

  const upload = (clientId: number, file: string) => uploadAsset(media, clientId, file);

  /** A silent render of the content with these options; the MP4 as a local file. */
  async function render(
    contentId: number,
    preset: 'tiktok' | 'facebook',
    options: Partial<typeof DEFAULT_RENDER_OPTIONS> = {},
  ): Promise<string> {
    const { width, height, fps } = RENDER_PRESETS[preset];
    const row = await media.repo.createRender({ content_id: contentId, preset, width, height, fps });
    await media.repo.updateRender(row.id, {
      options: JSON.stringify({ ...DEFAULT_RENDER_OPTIONS, ...options }),
    });
    const out = await media.renders.render({ renderId: row.id, quality: 'low', silent: true });
    return storedFile(media.storage, out.outputPath);
  }

  it('zoom: an image background grows from 100 % to 108 % over its block, centred; without zoom it stays', async () => {
    const { width: W, height: H } = RENDER_PRESETS.tiktok;
    // 9:16 like the frame, so cover-fit crops nothing: the 11-pixel green frame becomes 33 pixels at 1080 wide.
    const image = makeFramedImage({ w: 360, h: 640, border: 11, frame: GREEN, fill: RED });
    const seeded = await seedContent(handle.db, [{ text: '', duration_s: 2 }], { platform: 'tiktok' });
    const asset = await upload(seeded.clientId, image);
    await handle.db
      .updateTable('script_blocks')
      .set({ background: `asset:${asset.id}` })
      .where('content_id', '=', seeded.contentId)
      .execute();
    const zoomed = await render(seeded.contentId, 'tiktok', { zoom: true });
    const still = await render(seeded.contentId, 'tiktok', { zoom: false });

    const y = Math.round(H * 0.3);
    /** Green pixels in from the left and from the right edge on row y. */
    const frameWidths = (file: string, t: number) => {
      const px = framePixels(file, t, W);
      let left = 0;
      while (left < W / 2 && colour(px(left, y)) === 'green') left++;
      let right = 0;
      while (right < W / 2 && colour(px(W - 1 - right, y)) === 'green') right++;
      return { left, right, centre: colour(px(W / 2, y)) };
    };
    // At zoom z the output shows the middle 1/z of the image: the frame is (11/360 - (1 - 1/z)/2) * z * 1080 px.
    const expected = (z: number) => Math.max(0, (11 / 360 - (1 - 1 / z) / 2) * z * W);
    const seen: number[] = [];
    for (const [t, z] of [
      [0.02, 1],
      [1, 1 + (0.08 * 30) / 60],
      [1.95, 1 + (0.08 * 58) / 60],
    ] as const) {
      const w = frameWidths(zoomed, t);
      expect(w.centre).toBe('red');
      expect(
        Math.abs(w.left - expected(z)),
        `left frame ${w.left} px at ${t} s, zoom ${z}`,
      ).toBeLessThanOrEqual(4);
      expect(Math.abs(w.left - w.right), `centred: left ${w.left}, right ${w.right}`).toBeLessThanOrEqual(3);
      seen.push(w.left);
    }
    expect(seen[0]).toBeGreaterThan(28);
    expect(seen[2]).toBeLessThanOrEqual(2);
    // Without zoom the same block keeps its whole frame to the end.
    for (const t of [0.02, 1.95]) expect(frameWidths(still, t).left).toBeGreaterThan(28);
  }, 120_000);

  it('clips: cut when longer than the block, looped when shorter, muted', async () => {
    const { width: W, height: H } = RENDER_PRESETS.facebook;
    // 4 s: green for 1 s, then red. 1 s: green for 0.5 s, then red. Both carry an 880 Hz tone.
    const long = makeColourClip([
      { color: GREEN, seconds: 1 },
      { color: RED, seconds: 3 },
    ]);
    const short = makeColourClip([
      { color: GREEN, seconds: 0.5 },
      { color: RED, seconds: 0.5 },
    ]);
    const seeded = await seedContent(
      handle.db,
      [
        { text: '', duration_s: 1.5 },
        { text: '', duration_s: 3 },
        { text: '', duration_s: 1, background: '#0000FF' },
      ],
      { platform: 'facebook' },
    );
    const [a, b] = [await upload(seeded.clientId, long), await upload(seeded.clientId, short)];
    for (const [sequence, asset] of [
      [1, a],
      [2, b],
    ] as const)
      await handle.db
        .updateTable('script_blocks')
        .set({ background: `asset:${asset?.id}` })
        .where('content_id', '=', seeded.contentId)
        .where('sequence', '=', sequence)
        .execute();
    const file = await render(seeded.contentId, 'facebook');

    const at = (t: number) => {
      const [r, g, bl] = framePixels(file, t, W)(Math.round(W * 0.3), Math.round(H * 0.3));
      return bl > 150 && r < 110 && g < 110 ? 'blue' : colour([r, g, bl]);
    };
    // Block 1 (0–1.5 s) shows the long clip's first 1.5 s, then stops: block 2 starts with its own clip's start.
    expect([0.5, 1.25].map(at)).toEqual(['green', 'red']);
    // Block 2 (1.5–4.5 s): the 1 s clip three times over.
    expect([1.75, 2.25, 2.75, 3.25, 3.75, 4.25].map(at)).toEqual([
      'green',
      'red',
      'green',
      'red',
      'green',
      'red',
    ]);
    // Block 3 (4.5–5.5 s): its colour, on time.
    expect(at(4.75)).toBe('blue');
    expect(at(5.4)).toBe('blue');
    const p = probeFrames(file);
    expect(p.frames).toBe(165);
    expect(Math.abs(p.durationS - 5.5)).toBeLessThan(0.05);
    // The clips' tone is not in the render (a silent render's track is digital silence).
    expect(levelDb(long)).toBeGreaterThan(-30);
    expect(levelDb(file)).toBeLessThan(-90);
  }, 120_000);
});
