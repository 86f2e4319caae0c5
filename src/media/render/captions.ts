/**
 * Caption layout for drawtext: ffmpeg 5 cannot wrap or centre lines itself, so
 * lines are wrapped here by estimated glyph widths and each line is drawn centred.
 */

/** Estimated advance of a character in ems (Hangul and CJK are full width). */
function charEm(ch: string): number {
  if (/[\p{Script=Hangul}\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u.test(ch)) return 0.95;
  if (/[A-Z]/.test(ch)) return 0.68;
  if (ch === ' ') return 0.28;
  return 0.55;
}

export function textEm(text: string): number {
  let w = 0;
  for (const ch of text) w += charEm(ch);
  return w;
}

/** Greedy word wrap to `maxEm` per line; words longer than a line are split by character. */
export function wrapCaption(text: string, maxEm: number): string[] {
  const words = text.replace(/\s+/g, ' ').trim().split(' ').filter(Boolean);
  const lines: string[] = [];
  let line = '';
  const push = () => {
    if (line) lines.push(line);
    line = '';
  };
  for (const word of words) {
    const candidate = line ? `${line} ${word}` : word;
    if (textEm(candidate) <= maxEm) {
      line = candidate;
      continue;
    }
    push();
    if (textEm(word) <= maxEm) {
      line = word;
      continue;
    }
    for (const ch of word) {
      if (textEm(line + ch) > maxEm) push();
      line += ch;
    }
  }
  push();
  return lines;
}

export interface CaptionLayout {
  fontSize: number;
  lines: string[];
}

/** Font size from the frame (about 1/18 of the shorter side), wrapped to 86 % of the width, at most `maxLines` lines. */
export function layoutCaption(text: string, width: number, height: number, maxLines = 4): CaptionLayout {
  let fontSize = Math.round(Math.min(width, height) / 18);
  for (;;) {
    const lines = wrapCaption(text, (width * 0.86) / fontSize);
    if (lines.length <= maxLines || fontSize <= 18) return { fontSize, lines };
    fontSize = Math.round(fontSize * 0.85);
  }
}
