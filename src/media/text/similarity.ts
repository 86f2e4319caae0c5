import { normalizeNarration } from './normalize.js';

/** A difference between the script and what was heard, at word level. */
export interface WordMismatch {
  /** Index of the word in the normalised script. */
  index: number;
  /** Script word(s), empty when the transcript has an extra word. */
  expected: string;
  /** Heard word(s), empty when a script word is missing. */
  heard: string;
}

export interface SimilarityResult {
  /** 1 - edit distance / longer length, over characters with spacing and punctuation removed; 0..1. */
  ratio: number;
  /** The first differing words (at most `maxMismatches`), in script order. */
  mismatches: WordMismatch[];
  expectedNormalized: string;
  heardNormalized: string;
}

export interface SimilarityOptions {
  /** Language of both texts; numbers in either are spelled out the same way before comparing (default `ko`). */
  language?: string;
  /** Mismatches to report (default 5). */
  maxMismatches?: number;
}

/**
 * Hangul-aware comparison form: NFKC (full-width forms and compatibility
 * characters folded, syllables composed), lower case, punctuation and symbols
 * removed, whitespace collapsed. Spacing is compared separately from letters
 * because Korean transcripts space words inconsistently.
 */
export function comparisonForm(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function levenshtein<T>(a: ArrayLike<T>, b: ArrayLike<T>): number {
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      const cost = ai === b[j - 1] ? 0 : 1;
      const del = (prev[j] ?? 0) + 1;
      const ins = (cur[j - 1] ?? 0) + 1;
      const sub = (prev[j - 1] ?? 0) + cost;
      cur[j] = del < ins ? (del < sub ? del : sub) : ins < sub ? ins : sub;
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length] ?? 0;
}

/** Word alignment by edit distance, returning the differing runs in order. */
function wordMismatches(expected: string[], heard: string[], max: number): WordMismatch[] {
  const n = expected.length;
  const m = heard.length;
  // Full table: word counts are small (a script is at most a few thousand words).
  const d: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = 0; i <= n; i++) (d[i] as Uint32Array)[0] = i;
  for (let j = 0; j <= m; j++) (d[0] as Uint32Array)[j] = j;
  for (let i = 1; i <= n; i++) {
    const row = d[i] as Uint32Array;
    const up = d[i - 1] as Uint32Array;
    for (let j = 1; j <= m; j++) {
      const cost = expected[i - 1] === heard[j - 1] ? 0 : 1;
      row[j] = Math.min((up[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (up[j - 1] ?? 0) + cost);
    }
  }
  const ops: { i: number; e: string; h: string }[] = [];
  let i = n;
  let j = m;
  while (i > 0 || j > 0) {
    const here = d[i]?.[j] ?? 0;
    if (i > 0 && j > 0 && expected[i - 1] === heard[j - 1] && here === (d[i - 1]?.[j - 1] ?? 0)) {
      i--;
      j--;
    } else if (i > 0 && j > 0 && here === (d[i - 1]?.[j - 1] ?? 0) + 1) {
      ops.push({ i: i - 1, e: expected[i - 1] ?? '', h: heard[j - 1] ?? '' });
      i--;
      j--;
    } else if (i > 0 && here === (d[i - 1]?.[j] ?? 0) + 1) {
      ops.push({ i: i - 1, e: expected[i - 1] ?? '', h: '' });
      i--;
    } else {
      ops.push({ i, e: '', h: heard[j - 1] ?? '' });
      j--;
    }
  }
  ops.reverse();
  // Merge adjacent operations into runs ("세 개" heard as "삼개" is one mismatch).
  const runs: WordMismatch[] = [];
  for (const op of ops) {
    const last = runs[runs.length - 1];
    const lastEnd = last ? last.index + (last.expected ? last.expected.split(' ').length : 0) : -1;
    if (last && (op.i === lastEnd || op.i === last.index)) {
      last.expected = [last.expected, op.e].filter(Boolean).join(' ');
      last.heard = [last.heard, op.h].filter(Boolean).join(' ');
    } else {
      if (runs.length >= max) break;
      runs.push({ index: op.i, expected: op.e, heard: op.h });
    }
  }
  return runs;
}

/**
 * How closely a transcript matches the script. Both are normalised for speech
 * first (so "3개" in one and "세 개" in the other agree), then compared.
 */
export function similarity(expected: string, heard: string, opts: SimilarityOptions = {}): SimilarityResult {
  const language = opts.language ?? 'ko';
  const e = comparisonForm(normalizeNarration(expected, language).text);
  const h = comparisonForm(normalizeNarration(heard, language).text);
  const ec = [...e.replace(/ /g, '')];
  const hc = [...h.replace(/ /g, '')];
  const longer = Math.max(ec.length, hc.length);
  const ratio = longer === 0 ? 1 : 1 - levenshtein(ec, hc) / longer;
  const ew = e ? e.split(' ') : [];
  const hw = h ? h.split(' ') : [];
  return {
    ratio,
    mismatches: ratio === 1 ? [] : wordMismatches(ew, hw, opts.maxMismatches ?? 5),
    expectedNormalized: e,
    heardNormalized: h,
  };
}
