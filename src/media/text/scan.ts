import type { NormalizedText, Replacement, ReplacementKind } from './normalize.js';

/** What a rule matched at a position: where it ends and how it is spoken. */
export interface RuleHit {
  end: number;
  spoken: string;
  kind: ReplacementKind;
}

/** A rule tried at one position of the text; the first rule that matches wins. */
export type Rule = (text: string, at: number) => RuleHit | undefined;

/**
 * Walks the text once, trying the rules (in priority order) wherever a trigger
 * character starts; the replacements' offsets point into the NFC-normalised input.
 * Digits glued to Latin letters (mp3, A4, COVID-19) are names and left alone:
 * the voice spells them.
 */
export function scanReplace(input: string, trigger: RegExp, rules: readonly Rule[]): NormalizedText {
  const text = input.normalize('NFC');
  const replacements: Replacement[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i] ?? '';
    const prev = text[i - 1] ?? '';
    const glued = /[A-Za-z\d.]/.test(prev) || (prev === '-' && /[A-Za-z]/.test(text[i - 2] ?? ''));
    if (trigger.test(ch) && !(/\d/.test(ch) && glued)) {
      let hit: RuleHit | undefined;
      for (const rule of rules) {
        hit = rule(text, i);
        if (hit) break;
      }
      if (hit) {
        replacements.push({ from: text.slice(i, hit.end), to: hit.spoken, kind: hit.kind, offset: i });
        out += hit.spoken;
        i = hit.end;
        continue;
      }
    }
    out += ch;
    i++;
  }
  return { text: out, replacements };
}
