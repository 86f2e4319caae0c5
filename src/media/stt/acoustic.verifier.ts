import { analyse } from '../audio/wav.js';
import { type Verification, type Verifier, VERIFIER_CHECKS, type VerifyRequest } from './verifier.js';

export interface AcousticOptions {
  /** Plausible speaking rates, syllables per second (default 2..12). */
  minSyllablesPerS: number;
  maxSyllablesPerS: number;
  /** Longest pause allowed inside the narration, seconds (default 2). */
  maxInternalSilenceS: number;
  /** Below this RMS level the audio counts as silent, dBFS (default -45). */
  silentBelowDbfs: number;
  /** Fraction of full-scale samples that counts as clipped (default 0.001). */
  maxClippedRatio: number;
}

export const DEFAULT_ACOUSTIC: AcousticOptions = {
  minSyllablesPerS: 2,
  maxSyllablesPerS: 12,
  maxInternalSilenceS: 2,
  silentBelowDbfs: -45,
  maxClippedRatio: 0.001,
};

/** Spoken syllables, roughly: one per Hangul/CJK character, one per Latin vowel group. */
export function countSyllables(text: string): number {
  const cjk =
    text.match(/[\p{Script=Hangul}\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/gu)?.length ?? 0;
  const latin = text.match(/[aeiouy]+/gi)?.length ?? 0;
  const digits = text.match(/\d/g)?.length ?? 0;
  return cjk + latin + digits;
}

/**
 * Local verifier used when no speech-to-text is configured: it cannot hear
 * words, so it checks that the audio is speech-like for the text: duration
 * plausible for the syllable count, no long internal silence (dropouts), not
 * clipped, not silent. Its score is 1 when every check passes, 0 for silence,
 * and drops by 0.25 per failed check otherwise; it measures no word
 * similarity (null), and says so.
 */
export class AcousticVerifier implements Verifier {
  readonly name = 'acoustic';
  readonly checks = VERIFIER_CHECKS.acoustic;
  constructor(private readonly opts: AcousticOptions = DEFAULT_ACOUSTIC) {}

  async verify(req: VerifyRequest): Promise<Verification> {
    const a = analyse(req.audio);
    const issues: string[] = [];
    if (!(a.rmsDbfs > this.opts.silentBelowDbfs))
      return {
        score: 0,
        similarity: null,
        mismatches: [],
        issues: [`silent: level ${a.rmsDbfs.toFixed(1)} dBFS`],
      };
    const syllables = countSyllables(req.expectedText);
    const speechS = Math.max(0.001, a.durationS - a.leadingSilenceS - a.trailingSilenceS);
    const rate = syllables / speechS;
    if (syllables > 0 && rate < this.opts.minSyllablesPerS)
      issues.push(`too long for the text: ${rate.toFixed(2)} syllables/s over ${speechS.toFixed(2)} s`);
    if (syllables > 0 && rate > this.opts.maxSyllablesPerS)
      issues.push(`too short for the text: ${rate.toFixed(2)} syllables/s over ${speechS.toFixed(2)} s`);
    if (a.longestInternalSilenceS > this.opts.maxInternalSilenceS)
      issues.push(`dropout: ${a.longestInternalSilenceS.toFixed(2)} s of silence inside the narration`);
    if (a.clippedRatio > this.opts.maxClippedRatio)
      issues.push(`clipped: ${(a.clippedRatio * 100).toFixed(2)} % of samples at full scale`);
    return { score: Math.max(0, 1 - 0.25 * issues.length), similarity: null, mismatches: [], issues };
  }
}
