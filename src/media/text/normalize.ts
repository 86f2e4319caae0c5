import { normalizeEnglish } from './normalize-en.js';
import { normalizeKorean } from './normalize-ko.js';

export type ReplacementKind =
  | 'number'
  | 'range'
  | 'counter'
  | 'unit'
  | 'percent'
  | 'currency'
  | 'date'
  | 'time'
  | 'phone'
  | 'ordinal'
  | 'year';

/** One rewrite the normaliser made: `from` at `offset` in the input became `to`. */
export interface Replacement {
  from: string;
  to: string;
  kind: ReplacementKind;
  offset: number;
}

export interface NormalizedText {
  /** The text as it should be spoken. */
  text: string;
  replacements: Replacement[];
}

/**
 * Rewrites narration text for speech in the given language (`ko`, `en`; a
 * region suffix such as `en-US` is ignored). Other languages pass through unchanged.
 */
export function normalizeNarration(text: string, language: string): NormalizedText {
  const lang = language.toLowerCase().split(/[-_]/)[0];
  if (lang === 'ko') return normalizeKorean(text);
  if (lang === 'en') return normalizeEnglish(text);
  return { text: text.normalize('NFC'), replacements: [] };
}
