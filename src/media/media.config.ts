import path from 'node:path';
import { z } from 'zod';
import { ConfigError, intVar, parseEnv } from '../config/env.js';
import { DEFAULT_PRICES, type Price, type PriceTable } from './pricing.js';
import type { RetryPolicy } from './vendor-http.js';

export type TtsProviderName = 'espeak' | 'openai' | 'elevenlabs';
export const TTS_PROVIDERS: readonly TtsProviderName[] = ['espeak', 'openai', 'elevenlabs'];

/** Media pipeline settings (narration, verification, rendering, storage, prices). Every variable is in `.env.example`. */
export interface MediaConfig {
  /** Root of stored audio and video, default `$DATA_DIR/media`. */
  storageDir: string;
  /** TTS provider used when a request names none. */
  defaultTtsProvider: TtsProviderName;
  espeak: { speedWpm: number; timeoutMs: number };
  openai: { baseUrl: string; apiKey: string | undefined; ttsModel: string; ttsVoice: string };
  elevenlabs: { baseUrl: string; apiKey: string | undefined; model: string; voiceId: string };
  /** `openai` (speech-to-text, also self-hosted Whisper servers) or `acoustic` (local checks). */
  verifier: 'openai' | 'acoustic';
  stt: { baseUrl: string; apiKey: string | undefined; model: string };
  vendorPolicy: RetryPolicy;
  narration: {
    /** Similarity needed to accept an attempt, 0..1 (default 0.95). */
    threshold: number;
    /** Attempts before settling for the best (default 5). */
    maxAttempts: number;
    /** Longest script accepted, characters (default 5000). */
    maxChars: number;
    /** Pause inserted between blocks, ms (default 300). */
    blockPauseMs: number;
  };
  render: {
    /** Explicit ffmpeg binary; else `ffmpeg` on PATH; else @ffmpeg-installer/ffmpeg. */
    ffmpegPath: string | undefined;
    /** A render is killed after this long, ms (default 600 000). */
    timeoutMs: number;
    /** Caption font file; default Pretendard from the `pretendard` npm package. */
    fontPath: string | undefined;
  };
  prices: PriceTable;
}

const url = (def: string) =>
  z
    .string()
    .trim()
    .regex(/^https?:\/\/\S+$/, 'an http(s) URL')
    .optional()
    .default(def);
const floatVar = (min: number, max: number, def: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, `a number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().min(min, `a number from ${min} to ${max}`).max(max, `a number from ${min} to ${max}`))
    .optional()
    .transform((v) => v ?? def);

const schema = z.object({
  DATA_DIR: z.string().trim().optional().default('./data'),
  MEDIA_DIR: z.string().trim().optional(),
  TTS_PROVIDER: z.enum(['espeak', 'openai', 'elevenlabs']).optional().default('espeak'),
  ESPEAK_SPEED_WPM: intVar(80, 450, 175),
  ESPEAK_TIMEOUT_MS: intVar(1000, 600_000, 30_000),
  OPENAI_API_KEY: z.string().trim().optional(),
  OPENAI_BASE_URL: url('https://api.openai.com/v1'),
  OPENAI_TTS_MODEL: z.string().trim().optional().default('tts-1'),
  OPENAI_TTS_VOICE: z.string().trim().optional().default('alloy'),
  ELEVENLABS_API_KEY: z.string().trim().optional(),
  ELEVENLABS_BASE_URL: url('https://api.elevenlabs.io'),
  ELEVENLABS_MODEL: z.string().trim().optional().default('eleven_multilingual_v2'),
  ELEVENLABS_VOICE_ID: z.string().trim().optional().default('21m00Tcm4TlvDq8ikWAM'),
  NARRATION_VERIFIER: z.enum(['openai', 'acoustic']).optional(),
  STT_BASE_URL: z
    .string()
    .trim()
    .regex(/^https?:\/\/\S+$/, 'an http(s) URL')
    .optional(),
  STT_API_KEY: z.string().trim().optional(),
  STT_MODEL: z.string().trim().optional().default('whisper-1'),
  VENDOR_TIMEOUT_MS: intVar(100, 600_000, 60_000),
  VENDOR_MAX_RETRIES: intVar(0, 10, 3),
  VENDOR_RETRY_BASE_MS: intVar(1, 60_000, 500),
  VENDOR_RETRY_MAX_MS: intVar(1, 600_000, 30_000),
  NARRATION_THRESHOLD: floatVar(0, 1, 0.95),
  NARRATION_MAX_ATTEMPTS: intVar(1, 20, 5),
  NARRATION_MAX_CHARS: intVar(1, 100_000, 5000),
  NARRATION_BLOCK_PAUSE_MS: intVar(0, 5000, 300),
  FFMPEG_PATH: z.string().trim().optional(),
  RENDER_TIMEOUT_MS: intVar(1000, 86_400_000, 600_000),
  RENDER_FONT_PATH: z.string().trim().optional(),
  MEDIA_PRICES_JSON: z.string().trim().optional(),
});

const priceSchema = z.record(
  z.string().regex(/^[a-z0-9-]+:[\w.*-]+$/, 'provider:model'),
  z.object({ usdPerUnit: z.number().min(0), unit: z.enum(['char', 'second']) }),
);

function parsePrices(json: string | undefined): PriceTable {
  if (!json) return DEFAULT_PRICES;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new ConfigError([`MEDIA_PRICES_JSON is invalid: expected JSON (${(err as Error).message})`]);
  }
  const r = priceSchema.safeParse(parsed);
  if (!r.success)
    throw new ConfigError([
      `MEDIA_PRICES_JSON is invalid: expected {"provider:model": {"usdPerUnit": number, "unit": "char"|"second"}}`,
    ]);
  return Object.freeze({ ...DEFAULT_PRICES, ...(r.data as Record<string, Price>) });
}

export function loadMediaConfig(env: NodeJS.ProcessEnv): MediaConfig {
  const e = parseEnv(schema, env);
  const sttBase = e.STT_BASE_URL ?? e.OPENAI_BASE_URL;
  const sttKey = e.STT_API_KEY ?? e.OPENAI_API_KEY;
  // Speech-to-text is used when it is configured (a key, or a self-hosted server's URL).
  const verifier = e.NARRATION_VERIFIER ?? (sttKey || e.STT_BASE_URL ? 'openai' : 'acoustic');
  if (e.VENDOR_RETRY_BASE_MS > e.VENDOR_RETRY_MAX_MS)
    throw new ConfigError(['VENDOR_RETRY_BASE_MS must not exceed VENDOR_RETRY_MAX_MS']);
  return {
    storageDir: path.resolve(e.MEDIA_DIR ?? path.join(e.DATA_DIR, 'media')),
    defaultTtsProvider: e.TTS_PROVIDER,
    espeak: { speedWpm: e.ESPEAK_SPEED_WPM, timeoutMs: e.ESPEAK_TIMEOUT_MS },
    openai: {
      baseUrl: e.OPENAI_BASE_URL,
      apiKey: e.OPENAI_API_KEY,
      ttsModel: e.OPENAI_TTS_MODEL,
      ttsVoice: e.OPENAI_TTS_VOICE,
    },
    elevenlabs: {
      baseUrl: e.ELEVENLABS_BASE_URL,
      apiKey: e.ELEVENLABS_API_KEY,
      model: e.ELEVENLABS_MODEL,
      voiceId: e.ELEVENLABS_VOICE_ID,
    },
    verifier,
    stt: { baseUrl: sttBase, apiKey: sttKey, model: e.STT_MODEL },
    vendorPolicy: {
      timeoutMs: e.VENDOR_TIMEOUT_MS,
      maxRetries: e.VENDOR_MAX_RETRIES,
      baseDelayMs: e.VENDOR_RETRY_BASE_MS,
      maxDelayMs: e.VENDOR_RETRY_MAX_MS,
    },
    narration: {
      threshold: e.NARRATION_THRESHOLD,
      maxAttempts: e.NARRATION_MAX_ATTEMPTS,
      maxChars: e.NARRATION_MAX_CHARS,
      blockPauseMs: e.NARRATION_BLOCK_PAUSE_MS,
    },
    render: { ffmpegPath: e.FFMPEG_PATH, timeoutMs: e.RENDER_TIMEOUT_MS, fontPath: e.RENDER_FONT_PATH },
    prices: parsePrices(e.MEDIA_PRICES_JSON),
  };
}
