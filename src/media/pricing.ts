import type { VendorUsage } from './tts/tts-provider.js';

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

export function priceOf(table: PriceTable, provider: string, model: string | null): Price | undefined {
  return table[`${provider}:${model ?? '*'}`] ?? table[`${provider}:*`];
}

/** Cost of one call in USD; unknown prices cost 0 and are reported by `known: false`. */
export function costOf(table: PriceTable, usage: VendorUsage): { usd: number; known: boolean } {
  const price = priceOf(table, usage.provider, usage.model);
  if (!price || price.unit !== usage.unit) return { usd: 0, known: false };
  return { usd: Math.round(usage.units * price.usdPerUnit * 1e8) / 1e8, known: true };
}

export interface NarrationEstimate {
  tts_provider: string;
  tts_model: string;
  stt_provider: string | null;
  stt_model: string | null;
  chars: number;
  /** Expected narration length at ~4.5 syllables per second, seconds. */
  estimated_audio_s: number;
  /** One attempt. */
  tts_usd: number;
  stt_usd: number;
  total_usd: number;
  /** If every allowed attempt runs. */
  max_attempts: number;
  max_total_usd: number;
  /** False when a price is missing from the table (counted as 0). */
  prices_known: boolean;
}

/** What narrating `chars` characters (about `audioS` seconds) costs, per attempt and at most. */
export function estimateNarration(
  table: PriceTable,
  o: {
    ttsProvider: string;
    ttsModel: string;
    sttProvider: string | null;
    sttModel: string | null;
    chars: number;
    audioS: number;
    maxAttempts: number;
  },
): NarrationEstimate {
  const tts = costOf(table, {
    provider: o.ttsProvider,
    model: o.ttsModel,
    operation: 'tts',
    units: o.chars,
    unit: 'char',
  });
  const stt = o.sttProvider
    ? costOf(table, {
        provider: o.sttProvider,
        model: o.sttModel,
        operation: 'stt',
        units: o.audioS,
        unit: 'second',
      })
    : { usd: 0, known: true };
  const once = tts.usd + stt.usd;
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    tts_provider: o.ttsProvider,
    tts_model: o.ttsModel,
    stt_provider: o.sttProvider,
    stt_model: o.sttModel,
    chars: o.chars,
    estimated_audio_s: Math.round(o.audioS * 10) / 10,
    tts_usd: r(tts.usd),
    stt_usd: r(stt.usd),
    total_usd: r(once),
    max_attempts: o.maxAttempts,
    max_total_usd: r(once * o.maxAttempts),
    prices_known: tts.known && stt.known,
  };
}
