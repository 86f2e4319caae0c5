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
  /**
   * 0..1: the verifier's verdict, compared with the narration threshold. For
   * speech-to-text it is the word similarity; for the acoustic verifier, the
   * share of its checks that passed.
   */
  score: number;
  /** 0..1 word similarity of what was heard to the script; null when the verifier cannot hear words. */
  similarity: number | null;
  /** What a speech-to-text verifier heard. */
  transcript?: string;
  mismatches: WordMismatch[];
  /** Human-readable findings (acoustic checks that failed). */
  issues: string[];
  usage?: VendorUsage;
}

export type VerifierName = 'openai' | 'acoustic';

/** What each verifier checks, in words, for responses, logs and docs. */
export const VERIFIER_CHECKS: Readonly<Record<VerifierName, string>> = {
  openai: 'speech-to-text transcript compared with the script (word similarity measured)',
  acoustic:
    'duration for the text, silence and clipping only; no speech-to-text, so no word similarity is measured',
};

/** Judges whether narration audio says its script. Implementations: openai (speech-to-text), acoustic (local). */
export interface Verifier {
  readonly name: VerifierName;
  /** What it checks, in words (VERIFIER_CHECKS[name]). */
  readonly checks: string;
  verify(req: VerifyRequest): Promise<Verification>;
}
