import path from 'node:path';
import { z } from 'zod';
import { ConfigError, intVar, parseEnv } from './env.js';

/** Price of one unit of a provider/model, USD. Keys are `provider:model` or `provider:*`. */
export interface Price {
  usdPerUnit: number;
  unit: 'char' | 'second';
}

export type PriceTable = Readonly<Record<string, Price>>;

/**
 * Default list prices, as published on 2025-06-01 (see docs/media.md; override
 * with MEDIA_PRICES_JSON). Local engines cost nothing.
 */
export const DEFAULT_PRICES: PriceTable = {
  'espeak:*': { usdPerUnit: 0, unit: 'char' },
  // OpenAI TTS: tts-1 $15 / 1M characters, tts-1-hd $30 / 1M characters.
  'openai:tts-1': { usdPerUnit: 15 / 1_000_000, unit: 'char' },
  'openai:tts-1-hd': { usdPerUnit: 30 / 1_000_000, unit: 'char' },
  // gpt-4o-mini-tts is billed by tokens; ~$0.015 per minute of audio, about $12 / 1M characters of Korean.
  'openai:gpt-4o-mini-tts': { usdPerUnit: 12 / 1_000_000, unit: 'char' },
  // OpenAI transcription: whisper-1 and gpt-4o-transcribe $0.006 / minute, gpt-4o-mini-transcribe $0.003 / minute.
  'openai:whisper-1': { usdPerUnit: 0.006 / 60, unit: 'second' },
  'openai:gpt-4o-transcribe': { usdPerUnit: 0.006 / 60, unit: 'second' },
  'openai:gpt-4o-mini-transcribe': { usdPerUnit: 0.003 / 60, unit: 'second' },
  // ElevenLabs: Creator plan overage, $0.30 / 1K characters for multilingual v2.
  'elevenlabs:*': { usdPerUnit: 0.3 / 1000, unit: 'char' },
};

export interface RetryPolicy {
  /** Timeout of one attempt, ms (default 60 000). */
  timeoutMs: number;
  /** Retries after the first attempt (default 3). */
  maxRetries: number;
  /** First backoff delay, ms, doubled each retry, with ±25 % jitter (default 500). */
  baseDelayMs: number;
  /** Longest wait between attempts, ms; a longer Retry-After gives up with a retryable error (default 30 000). */
  maxDelayMs: number;
}

/** S3 settings from `MEDIA_STORAGE_URL=s3://bucket/prefix` and the MEDIA_S3_* variables. */
export interface S3StorageConfig {
  bucket: string;
  /** Key prefix without leading or trailing slash ('' for the bucket root). */
  prefix: string;
  /** An S3-compatible endpoint (MinIO, R2, a test server); AWS when unset. */
  endpoint: string | undefined;
  region: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle: boolean;
  /** Multipart part size, bytes (at least 5 MiB, S3's minimum). */
  partSizeBytes: number;
  /** Lifetime of presigned download URLs, seconds; 0 streams downloads through the API instead. */
  presignTtlS: number;
}

/** Where media lives: `MEDIA_DIR` on local disk (default) or an S3-compatible bucket (`MEDIA_STORAGE_URL`). */
export type MediaStorageConfig = { kind: 'local'; dir: string } | ({ kind: 's3' } & S3StorageConfig);

export type TtsProviderName = 'espeak' | 'openai' | 'elevenlabs';
export const TTS_PROVIDERS: readonly TtsProviderName[] = ['espeak', 'openai', 'elevenlabs'];

/** Media pipeline settings (narration, verification, rendering, storage, prices). Every variable is in `.env.example`. */
export interface MediaConfig {
  /** Where media files live: local `MEDIA_DIR` (default `$DATA_DIR/media`) or S3 (`MEDIA_STORAGE_URL`). */
  storage: MediaStorageConfig;
  /** Local working files of this process (downloads of inputs, ffmpeg output before upload), default `$DATA_DIR/scratch`. */
  scratchDir: string;
  /** Limits on uploaded assets. */
  assets: {
    /** Largest upload, bytes (default 500 MiB). */
    maxBytes: number;
    /** Largest image, width × height (default 40 megapixels). */
    maxPixels: number;
    /** Longest clip or audio file, seconds (default 600). */
    maxDurationS: number;
    /** ffprobe is killed after this long, ms (default 10 000). */
    probeTimeoutMs: number;
  };
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

const optionalUrl = () =>
  z
    .string()
    .trim()
    .regex(/^https?:\/\/\S+$/, 'an http(s) URL')
    .optional();
const url = (def: string) => optionalUrl().default(def);
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
  MEDIA_STORAGE_URL: z
    .string()
    .trim()
    .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/, 's3://bucket or s3://bucket/prefix')
    .optional(),
  MEDIA_S3_ENDPOINT: optionalUrl(),
  MEDIA_S3_REGION: z.string().trim().optional(),
  AWS_REGION: z.string().trim().optional(),
  MEDIA_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).optional(),
  MEDIA_S3_PART_SIZE_MB: intVar(5, 5120, 8),
  MEDIA_PRESIGN_TTL_S: intVar(0, 604_800, 0),
  MEDIA_SCRATCH_DIR: z.string().trim().optional(),
  ASSET_MAX_MB: intVar(1, 10_240, 500),
  ASSET_MAX_MEGAPIXELS: intVar(1, 1000, 40),
  ASSET_MAX_DURATION_S: intVar(1, 86_400, 600),
  ASSET_PROBE_TIMEOUT_MS: intVar(100, 600_000, 10_000),
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
  STT_BASE_URL: optionalUrl(),
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

function storageConfig(e: z.infer<typeof schema>): MediaStorageConfig {
  if (!e.MEDIA_STORAGE_URL) {
    if (e.MEDIA_S3_ENDPOINT)
      throw new ConfigError([
        'MEDIA_S3_ENDPOINT is set but MEDIA_STORAGE_URL is not: set MEDIA_STORAGE_URL=s3://bucket/prefix',
      ]);
    // A local directory has no URLs of its own: downloads stream through the API.
    if (e.MEDIA_PRESIGN_TTL_S > 0)
      throw new ConfigError([
        'MEDIA_PRESIGN_TTL_S is set but MEDIA_STORAGE_URL is not: presigned downloads need S3 storage (MEDIA_STORAGE_URL=s3://bucket/prefix)',
      ]);
    return { kind: 'local', dir: path.resolve(e.MEDIA_DIR ?? path.join(e.DATA_DIR, 'media')) };
  }
  const [bucket = '', ...rest] = e.MEDIA_STORAGE_URL.slice('s3://'.length).split('/');
  return {
    kind: 's3',
    bucket,
    prefix: rest.filter(Boolean).join('/'),
    endpoint: e.MEDIA_S3_ENDPOINT,
    region: e.MEDIA_S3_REGION ?? e.AWS_REGION ?? 'us-east-1',
    // S3-compatible servers mostly need path-style addressing; AWS itself prefers virtual hosts.
    forcePathStyle: e.MEDIA_S3_FORCE_PATH_STYLE
      ? e.MEDIA_S3_FORCE_PATH_STYLE === 'true'
      : e.MEDIA_S3_ENDPOINT !== undefined,
    partSizeBytes: e.MEDIA_S3_PART_SIZE_MB * 1024 * 1024,
    presignTtlS: e.MEDIA_PRESIGN_TTL_S,
  };
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
    storage: storageConfig(e),
    scratchDir: path.resolve(e.MEDIA_SCRATCH_DIR ?? path.join(e.DATA_DIR, 'scratch')),
    assets: {
      maxBytes: e.ASSET_MAX_MB * 1024 * 1024,
      maxPixels: e.ASSET_MAX_MEGAPIXELS * 1_000_000,
      maxDurationS: e.ASSET_MAX_DURATION_S,
      probeTimeoutMs: e.ASSET_PROBE_TIMEOUT_MS,
    },
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
