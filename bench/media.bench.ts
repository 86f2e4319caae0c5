/**
 * Media pipeline benchmark: local TTS real-time factor on a 60-second Korean
 * script, render wall time of that script per preset at medium quality, and
 * throughput of 20 short renders on 2 slots. `--quick` (< 1 min): TikTok only
 * and 6 short renders. Issue 14's cases:
 * - rich_tiktok_60s: the same script on TikTok with an image background on
 *   every block, one clip background, the logo, ducked music and captions,
 *   beside the plain render of the same script in the same run (target 20 s);
 * - upload_200mb_clip: a 200 MB clip (40 MB with --quick) streamed to
 *   `omnivibe serve` (the built CLI: `npm run build` first) storing media
 *   locally, then in S3; the API process's RSS growth (target < 50 MB);
 * - storage_s3_vs_local: one full render (RenderService: inputs fetched,
 *   outputs uploaded) on the local store and on S3 (an S3-compatible server
 *   in this process), the figure and the ratio.
 * `--case=<name>` runs one case (presets, rich_tiktok_60s, short_renders,
 * upload_200mb_clip, storage_s3_vs_local) and what it needs.
 *
 *   npm run bench:media [-- --quick] [-- --case=rich_tiktok_60s]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { ChangeFeed } from '../src/domain/changes.js';
import { loadMediaConfig } from '../src/config/media.js';
import { createMediaServices } from '../src/media/media-services.js';
import { SAFE_AREAS } from '../src/media/render/safe-areas.js';
import { espeakGeneration, seedContent } from '../test/media/media-fixtures.js';
import { startS3 } from '../test/support/s3.js';
import { ProductStack } from './lib/omnivibe-process.js';
import { concat, durationS, encodeWav, type PcmAudio, silence } from '../src/media/audio/wav.js';
import { locateFfmpeg } from '../src/media/ffmpeg.js';
import { RENDER_PRESETS } from '../src/media/render/presets.js';
import { defaultFontFile, renderVideo, type TimelineBlock } from '../src/media/render/renderer.js';
import { normalizeNarration } from '../src/media/text/normalize.js';
import { EspeakProvider } from '../src/media/tts/espeak.provider.js';
import { emit, isQuick, percentile, printTable } from './lib/report.js';

const quick = isQuick();
const only = process.argv.find((a) => a.startsWith('--case='))?.slice('--case='.length);
const runs = (name: string) => only === undefined || only === name;
const bench = 'media';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-media-'));
const ffmpeg = locateFfmpeg(process.env.FFMPEG_PATH).path;
const fontFile = defaultFontFile();

// About 60 seconds of Korean narration at eSpeak's default rate: a short-form ad script.
const SENTENCES = [
  '안녕하세요, 오늘커피입니다.',
  '봄을 맞아 벚꽃 라떼와 딸기 크림 라떼, 두 가지 신메뉴가 출시되었습니다.',
  '3월 15일부터 4월 30일까지 전국 120개 매장에서 만나보실 수 있습니다.',
  '벚꽃 라떼는 은은한 꽃향과 부드러운 우유 거품이 어우러져 봄의 설렘을 그대로 담았습니다.',
  '딸기 크림 라떼는 국내산 딸기를 듬뿍 넣어 새콤달콤한 맛이 특징입니다.',
  '출시 기념으로 첫 주에는 모든 음료를 20% 할인된 가격에 드립니다.',
  '앱으로 주문하시면 스탬프를 두 배로 적립해 드리고, 10잔을 모으면 한 잔이 무료입니다.',
  '매장 방문이 어려우신 분들은 배달 주문도 가능합니다.',
  '문의는 1588-1234로 연락 주세요.',
  '따뜻한 봄날, 오늘커피와 함께 특별한 하루를 보내세요.',
  '지금 바로 가까운 매장을 찾아보세요!',
  '감사합니다.',
];

async function ttsBench(): Promise<{ audio: PcmAudio; timeline: TimelineBlock[] }> {
  const espeak = new EspeakProvider({ speedWpm: 175, timeoutMs: 60_000 });
  // Warm-up: compile the WebAssembly module once, as a long-running worker would have.
  await espeak.synthesize({ text: '준비', language: 'ko' });
  const t0 = performance.now();
  const parts: PcmAudio[] = [];
  const timeline: TimelineBlock[] = [];
  let at = 0;
  for (const [i, text] of SENTENCES.entries()) {
    const r = await espeak.synthesize({ text: normalizeNarration(text, 'ko').text, language: 'ko' });
    if (i > 0) {
      parts.push(silence(r.audio.sampleRate, 0.3));
      at += 0.3;
    }
    parts.push(r.audio);
    const d = durationS(r.audio);
    timeline.push({
      start_s: at,
      end_s: at + d,
      caption: text,
      background: { kind: 'color', color: i % 2 ? '#1E3A8A' : '#7C2D12' },
    });
    at += d;
  }
  const wallS = (performance.now() - t0) / 1000;
  const audio = concat(parts);
  await espeak.close();
  const audioS = durationS(audio);
  emit({
    bench,
    case: 'espeak_ko_60s',
    backend: 'wasm',
    metric: 'tts_realtime_factor',
    value: audioS / wallS,
    unit: 'x',
    audio_s: audioS,
    wall_s: wallS,
    blocks: SENTENCES.length,
    target: 20,
  });
  return { audio, timeline };
}

async function renderBench(audioFile: string, audioS: number, timeline: TimelineBlock[]) {
  const presets = quick ? (['tiktok'] as const) : (['youtube', 'instagram', 'tiktok', 'facebook'] as const);
  for (const preset of presets) {
    const t0 = performance.now();
    const r = await renderVideo(
      {
        preset: RENDER_PRESETS[preset],
        quality: 'medium',
        blocks: timeline,
        durationS: audioS,
        audioFile,
        fontFile,
        outputFile: path.join(dir, `${preset}.mp4`),
        thumbnailFile: path.join(dir, `${preset}.png`),
        workDir: path.join(dir, `${preset}-work`),
      },
      { ffmpeg, timeoutMs: 300_000 },
    );
    const wallS = (performance.now() - t0) / 1000;
    emit({
      bench,
      case: preset,
      backend: 'ffmpeg',
      metric: 'render_wall_s',
      value: wallS,
      unit: 's',
      video_s: audioS,
      realtime_x: audioS / wallS,
      size_mb: r.sizeBytes / 1e6,
      quality: 'medium',
      ...(preset === 'tiktok' ? { target: 20 } : {}),
    });
  }
}

async function throughputBench() {
  const n = quick ? 6 : 20;
  const slots = 2;
  const walls: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const slot = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const s = performance.now();
      await renderVideo(
        {
          preset: RENDER_PRESETS.tiktok,
          quality: 'medium',
          blocks: [
            {
              start_s: 0,
              end_s: 2.5,
              caption: `짧은 영상 ${i + 1}번`,
              background: { kind: 'color', color: '#0F766E' },
            },
            {
              start_s: 2.5,
              end_s: 5,
              caption: '지금 확인하세요!',
              background: { kind: 'color', color: '#7C2D12' },
            },
          ],
          durationS: 5,
          fontFile,
          outputFile: path.join(dir, `short-${i}.mp4`),
          thumbnailFile: path.join(dir, `short-${i}.png`),
          workDir: path.join(dir, `short-${i}-work`),
        },
        { ffmpeg, timeoutMs: 120_000 },
      );
      walls.push((performance.now() - s) / 1000);
    }
  };
  await Promise.all(Array.from({ length: slots }, slot));
  const totalS = (performance.now() - t0) / 1000;
  walls.sort((a, b) => a - b);
  emit({
    bench,
    case: `${n}_short_renders_2_slots`,
    backend: 'ffmpeg',
    metric: 'renders_per_min',
    value: (n / totalS) * 60,
    unit: 'renders/min',
    renders: n,
    slots,
    total_s: totalS,
    p50_s: percentile(walls, 50),
    p95_s: percentile(walls, 95),
    video_s_each: 5,
  });
}

const ff = (args: string[]) => execFileSync(ffmpeg, ['-v', 'error', '-y', ...args]);

/** Pictures (1920x1080 test patterns in several hues), a clip, a logo and a music bed, made with ffmpeg. */
function richInputs(audioS: number) {
  const images = [0, 60, 120, 180].map((hue) => {
    const f = path.join(dir, `photo-${hue}.jpg`);
    ff([
      '-f',
      'lavfi',
      '-i',
      'testsrc2=s=1920x1080',
      '-frames:v',
      '1',
      '-vf',
      `hue=h=${hue}`,
      '-q:v',
      '3',
      f,
    ]);
    return f;
  });
  const clip = path.join(dir, 'clip.mp4');
  ff([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=s=1280x720:r=30:d=4',
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-pix_fmt',
    'yuv420p',
    clip,
  ]);
  const logo = path.join(dir, 'logo.png');
  ff(['-f', 'lavfi', '-i', 'color=c=0xE11D48@0.9:s=400x160,format=rgba', '-frames:v', '1', logo]);
  const music = path.join(dir, 'music.m4a');
  ff([
    '-f',
    'lavfi',
    '-i',
    `aevalsrc=0.2*sin(2*PI*220*t)+0.15*sin(2*PI*277*t)+0.1*sin(2*PI*330*t):s=48000:d=${Math.ceil(audioS)}`,
    '-c:a',
    'aac',
    music,
  ]);
  return { images, clip, logo, music };
}

async function richBench(audioFile: string, audioS: number, timeline: TimelineBlock[]) {
  const inputs = richInputs(audioS);
  const rich: TimelineBlock[] = timeline.map((b, i) => ({
    ...b,
    background:
      i === 2 ? { kind: 'clip', path: inputs.clip } : { kind: 'image', path: inputs.images[i % 4] as string },
  }));
  const render = async (
    name: string,
    blocks: TimelineBlock[],
    extra: Partial<Parameters<typeof renderVideo>[0]>,
  ) => {
    const t0 = performance.now();
    const r = await renderVideo(
      {
        preset: RENDER_PRESETS.tiktok,
        quality: 'medium',
        blocks,
        durationS: audioS,
        audioFile,
        fontFile,
        safeArea: SAFE_AREAS.tiktok,
        outputFile: path.join(dir, `${name}.mp4`),
        thumbnailFile: path.join(dir, `${name}.png`),
        workDir: path.join(dir, `${name}-work`),
        ...extra,
      },
      { ffmpeg, timeoutMs: 600_000 },
    );
    return { wallS: (performance.now() - t0) / 1000, sizeMb: r.sizeBytes / 1e6 };
  };
  const plain = await render('plain-tiktok', timeline, {});
  const full = await render('rich-tiktok', rich, {
    logoFile: inputs.logo,
    music: { file: inputs.music, speech: timeline.map((b) => ({ start_s: b.start_s, end_s: b.end_s })) },
  });
  emit({
    bench,
    case: 'rich_tiktok_60s',
    backend: 'ffmpeg',
    metric: 'render_wall_s',
    value: full.wallS,
    unit: 's',
    baseline: plain.wallS,
    note: 'baseline: the plain render of the same script',
    video_s: audioS,
    blocks: rich.length,
    image_blocks: rich.length - 1,
    clip_blocks: 1,
    size_mb: full.sizeMb,
    quality: 'medium',
    target: 20,
  });
}

/** VmRSS of a process, MB (Linux /proc). */
const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

/**
 * A clip of about `mb` MB: lossless H.264 of moving noise (noise does not compress), so it is
 * quick to make; frames of 1280x720 at 30 fps, about 1.7 MB each.
 */
function bigClip(mb: number): string {
  const clip = path.join(dir, `big-${mb}.mp4`);
  const frames = Math.ceil((mb * 1e6) / 1.7e6);
  ff([
    '-f',
    'lavfi',
    '-i',
    'color=c=gray:s=1280x720:r=30',
    '-vf',
    'noise=alls=100:allf=t+u',
    '-frames:v',
    String(frames),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-qp',
    '0',
    '-pix_fmt',
    'yuv420p',
    clip,
  ]);
  return clip;
}

/**
 * One upload of `clip` over HTTP to a separate `omnivibe serve` (the built CLI) storing media
 * locally or in S3 (the S3-compatible server in this process): the API process's RSS before
 * and its peak while the upload streams through it.
 */
async function uploadOnce(clip: string, storage: 'local' | 's3', s3Env: Record<string, string>) {
  const size = fs.statSync(clip).size;
  const stack = new ProductStack({ dir: fs.mkdtempSync(path.join(dir, 'stack-')) });
  Object.assign(stack.env, storage === 's3' ? s3Env : {}, { ASSET_MAX_MB: '1024', LOG_LEVEL: 'warn' });
  try {
    await stack.startServer('serve');
    const client = await stack.api.request<{ id: number }>('POST', '/clients', { name: 'bench' });
    const before = rssMb(stack.server.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(stack.server.pid))), 50);
    const boundary = 'ov-bench-boundary';
    const head = Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.mp4"\r\ncontent-type: video/mp4\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    async function* body() {
      yield head;
      for await (const chunk of fs.createReadStream(clip, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
      yield tail;
    }
    const t0 = performance.now();
    const res = await fetch(`${stack.api.baseUrl}/api/v1/clients/${client.id}/assets`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.key}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(head.length + size + tail.length),
      },
      body: Readable.toWeb(Readable.from(body())) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    const wallS = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    peak = Math.max(peak, rssMb(stack.server.pid));
    if (res.status !== 201) throw new Error(`upload: ${res.status} ${text.slice(0, 300)}`);
    emit({
      bench,
      case: 'upload_200mb_clip',
      backend: storage,
      metric: 'api_rss_growth_mb',
      value: peak - before,
      unit: 'MB',
      note: `${(size / 1e6).toFixed(0)} MB file, ${(size / 1e6 / wallS).toFixed(0)} MB/s`,
      file_mb: size / 1e6,
      rss_before_mb: before,
      rss_peak_mb: peak,
      wall_s: wallS,
      mb_per_s: size / 1e6 / wallS,
      target: 50,
    });
  } finally {
    await stack.stop();
  }
}

async function uploadBench() {
  // --quick: 40 MB, enough to show whether memory follows the file; the case itself is 200 MB.
  const clip = bigClip(quick ? 40 : 200);
  const s3 = await startS3();
  try {
    for (const storage of ['local', 's3'] as const) await uploadOnce(clip, storage, s3.env);
  } finally {
    await s3.stop();
  }
}

async function storageBench() {
  const s3 = await startS3();
  const images = richInputs(10).images;
  const wall: Record<string, number> = {};
  try {
    for (const kind of ['local', 's3'] as const) {
      const config = loadMediaConfig({
        MEDIA_DIR: path.join(dir, `store-${kind}`),
        MEDIA_SCRATCH_DIR: path.join(dir, `scratch-${kind}`),
        ...(kind === 's3' ? s3.env : {}),
      });
      const handle = openDatabase({ dialect: 'sqlite', file: ':memory:', busyTimeoutMs: 5000 });
      await migrateToLatest(handle.db, { dialect: 'sqlite', file: ':memory:', busyTimeoutMs: 5000 });
      const media = createMediaServices(config, handle.db, handle.dialect, pino({ level: 'silent' }), {
        changes: new ChangeFeed(pino({ level: 'silent' })),
      });
      try {
        const { clientId, contentId } = await seedContent(handle.db, SENTENCES.slice(0, 6), {
          platform: 'tiktok',
        });
        const blocks = await handle.db
          .selectFrom('script_blocks')
          .select('id')
          .where('content_id', '=', contentId)
          .orderBy('sequence')
          .execute();
        for (const [i, b] of blocks.entries()) {
          const { asset } = await media.assets.upload(clientId, {
            stream: fs.createReadStream(images[i % images.length] as string),
            filename: undefined,
            declaredKind: undefined,
            truncated: () => false,
          });
          await handle.db
            .updateTable('script_blocks')
            .set({ background: `asset:${asset.id}` })
            .where('id', '=', b.id)
            .execute();
        }
        const gen = await espeakGeneration(media.repo, contentId);
        await media.narration.narrate({ generationId: gen.id });
        const row = await media.repo.createRender({
          content_id: contentId,
          preset: 'tiktok',
          width: 1080,
          height: 1920,
          fps: 30,
        });
        const t0 = performance.now();
        await media.renders.render({ renderId: row.id, quality: 'medium' });
        wall[kind] = (performance.now() - t0) / 1000;
      } finally {
        await media.close();
        await handle.close();
      }
    }
  } finally {
    await s3.stop();
  }
  emit({
    bench,
    case: 'storage_s3_vs_local',
    backend: 's3rver',
    metric: 'render_wall_s',
    value: wall.s3 ?? 0,
    unit: 's',
    baseline: wall.local,
    note: 'baseline: the same render on local storage',
  });
}

try {
  const needsScript = runs('espeak_ko_60s') || runs('presets') || runs('rich_tiktok_60s');
  if (needsScript) {
    const { audio, timeline } = await ttsBench();
    const audioFile = path.join(dir, 'narration.wav');
    fs.writeFileSync(audioFile, encodeWav(audio));
    if (runs('presets')) await renderBench(audioFile, durationS(audio), timeline);
    if (runs('rich_tiktok_60s')) await richBench(audioFile, durationS(audio), timeline);
  }
  if (runs('short_renders')) await throughputBench();
  if (runs('upload_200mb_clip')) await uploadBench();
  if (runs('storage_s3_vs_local')) await storageBench();
  printTable();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
