/**
 * Media pipeline benchmark: local TTS real-time factor on a 60-second Korean
 * script, render wall time of that script per preset at medium quality, and
 * throughput of 20 short renders on 2 slots. `--quick` (< 1 min): TikTok only
 * and 6 short renders.
 *
 *   npm run bench:media [-- --quick]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { concat, durationS, encodeWav, type PcmAudio, silence } from '../src/media/audio/wav.js';
import { locateFfmpeg } from '../src/media/ffmpeg.js';
import { RENDER_PRESETS } from '../src/media/render/presets.js';
import { defaultFontFile, renderVideo, type TimelineBlock } from '../src/media/render/renderer.js';
import { normalizeNarration } from '../src/media/text/normalize.js';
import { EspeakProvider } from '../src/media/tts/espeak.provider.js';
import { emit, isQuick, percentile, printTable } from './lib/report.js';

const quick = isQuick();
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

try {
  const { audio, timeline } = await ttsBench();
  const audioFile = path.join(dir, 'narration.wav');
  fs.writeFileSync(audioFile, encodeWav(audio));
  await renderBench(audioFile, durationS(audio), timeline);
  await throughputBench();
  printTable();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
