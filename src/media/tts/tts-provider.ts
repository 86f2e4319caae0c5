import type { PcmAudio } from '../audio/wav.js';

/** One billable (or local) call to a speech vendor, recorded in ai_api_usage. */
export interface VendorUsage {
  provider: string;
  model: string | null;
  operation: 'tts' | 'stt';
  units: number;
  unit: 'char' | 'second';
}

export interface TtsRequest {
  /** Text already normalised for speech. */
  text: string;
  /** BCP 47-ish language (`ko`, `en`, `en-US`). */
  language: string;
  /** Provider voice; the provider's default for the language when absent. */
  voice?: string;
  /** 1 for the first narration attempt; providers may vary their delivery on retries. */
  attempt?: number;
  signal?: AbortSignal;
}

export interface TtsResult {
  audio: PcmAudio;
  usage: VendorUsage;
}

/** A text-to-speech engine. Implementations: espeak (local), openai, elevenlabs. */
export interface TtsProvider {
  readonly name: string;
  /** The model name recorded with usage and prices (`espeak-ng`, `tts-1`, `eleven_multilingual_v2`). */
  readonly model: string;
  /** Longest text one call accepts, characters. */
  readonly maxCharsPerCall: number;
  defaultVoice(language: string): string;
  /** Whether `voice` can be used (checked at the API, before any work is queued). */
  isKnownVoice(voice: string): boolean;
  synthesize(req: TtsRequest): Promise<TtsResult>;
  /** Releases warm resources (worker threads). */
  close(): Promise<void>;
}
