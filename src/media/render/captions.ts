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

/**
 * Font size from the frame (about 1/18 of the shorter side, times `scale`),
 * wrapped to `boxWidth` pixels (default 86 % of the width), at most `maxLines` lines.
 */
export function layoutCaption(
  text: string,
  width: number,
  height: number,
  opts: { maxLines?: number; boxWidth?: number; scale?: number } = {},
): CaptionLayout {
  const maxLines = opts.maxLines ?? 4;
  const boxWidth = opts.boxWidth ?? width * 0.86;
  let fontSize = Math.round((Math.min(width, height) / 18) * (opts.scale ?? 1));
  for (;;) {
    const lines = wrapCaption(text, boxWidth / fontSize);
    if (lines.length <= maxLines || fontSize <= 18) return { fontSize, lines };
    fontSize = Math.round(fontSize * 0.85);
  }
}

/** One caption cue: what is shown from `start_s` to `end_s`. */
export interface CaptionCue {
  start_s: number;
  end_s: number;
  text: string;
}

const stamp = (s: number, sep: ',' | '.') => {
  const ms = Math.max(0, Math.round(s * 1000));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${sep}${pad(ms % 1000, 3)}`;
};

/** Cue text on one line per wrapped line; a blank line would end the cue, so none is left in. */
const cueText = (t: string) =>
  t
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .join('\n');

/** SubRip (.srt): numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`. */
export function toSrt(cues: CaptionCue[]): string {
  return cues
    .filter((c) => c.text.trim())
    .map((c, i) => `${i + 1}\n${stamp(c.start_s, ',')} --> ${stamp(c.end_s, ',')}\n${cueText(c.text)}\n`)
    .join('\n');
}

/** WebVTT (.vtt): `WEBVTT` header, `HH:MM:SS.mmm` times; `<`, `>` and `&` escaped. */
export function toVtt(cues: CaptionCue[]): string {
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const body = cues
    .filter((c) => c.text.trim())
    .map((c) => `${stamp(c.start_s, '.')} --> ${stamp(c.end_s, '.')}\n${esc(cueText(c.text))}\n`)
    .join('\n');
  return `WEBVTT\n\n${body}`;
}
