import type { PcmAudio } from '../audio/wav.js';
import type { WordMismatch } from '../text/similarity.js';
import type { VendorUsage } from '../tts/tts-provider.js';

export interface VerifyRequest {
  audio: PcmAudio;
  /** The WAV file of `audio`, for verifiers that upload it. */
  wav: Uint8Array;
  /** The text that should have been spoken (already normalised). */
  expectedText: string;
  language: string;
  signal?: AbortSignal;
}

export interface Verification {
  /** 0..1: how closely the audio says the text. */
  similarity: number;
  /** What a speech-to-text verifier heard. */
  transcript?: string;
  mismatches: WordMismatch[];
  /** Human-readable findings (acoustic checks that failed). */
  issues: string[];
  usage?: VendorUsage;
}

/** Judges whether narration audio says its script. Implementations: openai (speech-to-text), acoustic (local). */
export interface Verifier {
  readonly name: string;
  verify(req: VerifyRequest): Promise<Verification>;
}
