import type { VendorUsage } from './tts/tts-provider.js';
import type { Price, PriceTable } from '../config/media.js';

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
