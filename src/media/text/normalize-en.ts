import {
  englishCardinal,
  englishDigits,
  englishOrdinal,
  englishYear,
  MAX_SPOKEN_INTEGER,
} from './number-words.js';
import type { NormalizedText } from './normalize.js';
import { type RuleHit, scanReplace } from './scan.js';

/** English narration normaliser: numbers, ordinals, years, times, currency, percentages, phone numbers to words. */

const NUM = String.raw`(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?`;
const PHONE_RE = /(?:\+1[- ]?)?\(?\d{3}\)?[- .]\d{3}[- .]\d{4}(?!\d)/y;
const TIME_RE = /(\d{1,2}):(\d{2})(?!\d)(\s?(?:[ap]\.?m\.?|[AP]\.?M\.?))?/y;
const CURRENCY_RE = new RegExp(String.raw`([$€£])(${NUM})(?:\s?(thousand|million|billion|[KMB])\b)?`, 'y');
const ORDINAL_RE = /(\d+)(st|nd|rd|th)\b/y;
const NUMBER_RE = new RegExp(String.raw`(-)?(${NUM})(\s?%)?`, 'y');

const CURRENCY: Record<string, [string, string, string, string]> = {
  $: ['dollar', 'dollars', 'cent', 'cents'],
  '€': ['euro', 'euros', 'cent', 'cents'],
  '£': ['pound', 'pounds', 'penny', 'pence'],
};
const SCALE: Record<string, string> = { K: 'thousand', M: 'million', B: 'billion' };

function decimalWords(raw: string): string {
  const [int = '0', frac] = raw.replace(/,/g, '').split('.');
  const n = BigInt(int);
  const intWords = n > MAX_SPOKEN_INTEGER ? englishDigits(int) : englishCardinal(n);
  return frac ? `${intWords} point ${englishDigits(frac)}` : intWords;
}

type Hit = RuleHit;

function phone(text: string, at: number): Hit | undefined {
  PHONE_RE.lastIndex = at;
  const m = PHONE_RE.exec(text);
  if (!m) return undefined;
  const groups = m[0].match(/\d+/g) ?? [];
  return { end: at + m[0].length, spoken: groups.map((g) => englishDigits(g)).join(', '), kind: 'phone' };
}

function time(text: string, at: number): Hit | undefined {
  TIME_RE.lastIndex = at;
  const m = TIME_RE.exec(text);
  if (!m) return undefined;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 24 || min > 59) return undefined;
  const suffix = m[3] ? ` ${m[3].replace(/[.\s]/g, '').toLowerCase() === 'am' ? 'a m' : 'p m'}` : '';
  const minutes =
    min === 0
      ? suffix
        ? ''
        : " o'clock"
      : min < 10
        ? ` oh ${englishCardinal(min)}`
        : ` ${englishCardinal(min)}`;
  return { end: at + m[0].length, spoken: `${englishCardinal(h)}${minutes}${suffix}`, kind: 'time' };
}

function currency(text: string, at: number): Hit | undefined {
  CURRENCY_RE.lastIndex = at;
  const m = CURRENCY_RE.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  const [one, many, centOne, centMany] = CURRENCY[m[1]] ?? ['', '', '', ''];
  const amount = m[2].replace(/,/g, '');
  const scale = m[3] ? (SCALE[m[3]] ?? m[3]) : undefined;
  if (scale)
    return { end: at + m[0].length, spoken: `${decimalWords(amount)} ${scale} ${many}`, kind: 'currency' };
  const [whole = '0', cents] = amount.split('.');
  const w = BigInt(whole);
  let spoken = `${englishCardinal(w)} ${w === 1n ? one : many}`;
  if (cents !== undefined && cents.length === 2) {
    const c = Number(cents);
    if (c > 0) spoken += ` and ${englishCardinal(c)} ${c === 1 ? centOne : centMany}`;
  } else if (cents !== undefined) spoken = `${decimalWords(amount)} ${many}`;
  return { end: at + m[0].length, spoken, kind: 'currency' };
}

function ordinal(text: string, at: number): Hit | undefined {
  ORDINAL_RE.lastIndex = at;
  const m = ORDINAL_RE.exec(text);
  if (!m || m[1] === undefined) return undefined;
  return { end: at + m[0].length, spoken: englishOrdinal(BigInt(m[1])), kind: 'ordinal' };
}

function numberHit(text: string, at: number): Hit | undefined {
  NUMBER_RE.lastIndex = at;
  const m = NUMBER_RE.exec(text);
  if (!m || m[2] === undefined) return undefined;
  const minus = m[1] !== undefined && (at === 0 || /[\s(]/.test(text[at - 1] ?? ''));
  if (m[1] !== undefined && !minus) return undefined;
  const raw = m[2];
  const sign = minus ? 'minus ' : '';
  if (m[3]) return { end: at + m[0].length, spoken: `${sign}${decimalWords(raw)} percent`, kind: 'percent' };
  // A bare four-digit number between 1100 and 2099 is read as a year.
  if (!minus && /^\d{4}$/.test(raw) && Number(raw) >= 1100 && Number(raw) <= 2099)
    return { end: at + m[0].length, spoken: englishYear(Number(raw)), kind: 'year' };
  return { end: at + m[0].length, spoken: sign + decimalWords(raw), kind: 'number' };
}

const RULES = [phone, time, currency, ordinal, numberHit];

export function normalizeEnglish(input: string): NormalizedText {
  return scanReplace(input, /[\d$€£(+-]/, RULES);
}
