import { nativeKorean, sinoDigits, sinoKorean } from './number-words.js';
import type { NormalizedText } from './normalize.js';
import { type Rule, scanReplace } from './scan.js';

/**
 * Korean narration normaliser: rewrites what a TTS voice would misread (digits,
 * dates, times, phone numbers, currency, percentages, units) as Hangul words.
 * Sino-Korean numbers by default; native numbers (한, 두, 세...) before the
 * counters Korean uses them with (3개 → 세 개, 2시 → 두 시). Text without
 * digits or currency signs is returned unchanged.
 */

/** Counters read with native numbers for 1..99 (100개 is still 백 개). */
const NATIVE_COUNTERS = [
  '개',
  '명',
  '사람',
  '살',
  '마리',
  '번',
  '번째',
  '잔',
  '시간',
  '시',
  '권',
  '장',
  '병',
  '대',
  '송이',
  '그루',
  '켤레',
  '벌',
  '채',
  '곳',
  '군데',
  '가지',
  '달',
  '척',
  '통',
  '자루',
  '줄',
  '그릇',
  '접시',
  '봉지',
  '상자',
  '박스',
  '컵',
  '캔',
  '알',
  '쌍',
  '배',
  '판',
  '방울',
  '걸음',
] as const;

/** Counters read with Sino-Korean numbers, written with a space before them. */
const SINO_COUNTERS = [
  '개월',
  '개국',
  '개사',
  '년',
  '년도',
  '월',
  '일',
  '주',
  '주년',
  '주일',
  '분',
  '초',
  '원',
  '달러',
  '불',
  '유로',
  '엔',
  '위안',
  '층',
  '호',
  '호선',
  '번지',
  '회',
  '위',
  '등',
  '점',
  '세',
  '인분',
  '인',
  '학년',
  '페이지',
  '쪽',
  '도',
  '차',
  '편',
  '화',
  '부',
  '단계',
  '퍼센트',
] as const;

/** Latin unit symbols after a number, and how they are read. */
const UNITS: Record<string, string> = {
  km: '킬로미터',
  cm: '센티미터',
  mm: '밀리미터',
  m: '미터',
  kg: '킬로그램',
  mg: '밀리그램',
  g: '그램',
  ml: '밀리리터',
  mL: '밀리리터',
  L: '리터',
  l: '리터',
  GB: '기가바이트',
  MB: '메가바이트',
  TB: '테라바이트',
  KB: '킬로바이트',
  '°C': '도',
  '℃': '도',
  '°': '도',
};

const NATIVE_SET = new Set<string>(NATIVE_COUNTERS);
/** Longest first, so 개월 wins over 개 and 시간 over 시. */
const COUNTERS = [...NATIVE_COUNTERS, ...SINO_COUNTERS].sort((a, b) => b.length - a.length);
const UNIT_KEYS = Object.keys(UNITS).sort((a, b) => b.length - a.length);

const BIG_UNIT_VALUE: Record<string, bigint> = { 조: 10n ** 12n, 억: 10n ** 8n, 만: 10n ** 4n };
const SMALL_UNIT_VALUE: Record<string, bigint> = { 천: 1000n, 백: 100n, 십: 10n };

const NUM = String.raw`(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?`;
const PHONE_RE = new RegExp(
  String.raw`(?:\+82[- ]?(?:0?\d{1,2})[- .]\d{3,4}[- .]\d{4}|0\d{1,2}[- .]\d{3,4}[- .]\d{4}|1[5-9]\d{2}-\d{4}|01[016789]\d{7,8})(?!\d)`,
  'y',
);
const DATE_RE = /(\d{4})([-./])(\d{1,2})\2(\d{1,2})\.?(?!\d)/y;
const TIME_RE = /(\d{1,2}):(\d{2})(?::(\d{2}))?(?!\d)/y;
const PREFIX_CURRENCY_RE = new RegExp(String.raw`([₩$€¥￥£])\s?(${NUM})(\s?(?:[조억만천]+|[KMB]\b))?`, 'y');
/** A number, optionally with Hangul place units (2억 5천만), optionally a range (3~5). */
const NUMBER_RE = new RegExp(
  String.raw`(-)?(${NUM}(?:[조억만천백]+(?:\s?${NUM}[조억만천백]+)*)?)(?:\s?[~〜]\s?(${NUM}(?:[조억만천백]+)?))?`,
  'y',
);

const CURRENCY_WORD: Record<string, string> = {
  '₩': '원',
  $: '달러',
  '€': '유로',
  '¥': '엔',
  '￥': '엔',
  '£': '파운드',
};

interface ParsedNumber {
  /** Integer value when the number is a whole number (place units applied). */
  integer?: bigint;
  /** Words when the number cannot be an integer (3.5, 1.5만). */
  words: string;
  /** Plain (no place units, no decimals) 1..99, eligible for native numerals. */
  small?: number;
}

/** Reads a decimal like "3.14" as 삼 점 일사. */
function sinoDecimal(raw: string): string {
  const [int = '0', frac = ''] = raw.replace(/,/g, '').split('.');
  const intWords = sinoKorean(BigInt(int));
  return frac ? `${intWords} 점 ${sinoDigits(frac)}` : intWords;
}

/** Parses "2억 5천만", "1,200", "3.5", "1.5만" (→ 만 오천). */
function parseKoreanNumber(raw: string): ParsedNumber {
  const compact = raw.replace(/\s/g, '');
  const plain = compact.replace(/,/g, '');
  if (/^\d+$/.test(plain)) {
    const v = BigInt(plain);
    return { integer: v, words: sinoKorean(v), small: v >= 1n && v <= 99n ? Number(v) : undefined };
  }
  if (/^\d+\.\d+$/.test(plain)) return { words: sinoDecimal(plain) };
  // Numbers with place units: sum groups, each a (number)(small units)*(big unit)?
  const parts = [...compact.matchAll(/([\d,]+(?:\.\d+)?)([천백십]*)([조억만]*)/g)];
  let total = 0;
  let exact = true;
  for (const p of parts) {
    const n = Number((p[1] ?? '0').replace(/,/g, ''));
    let mult = 1n;
    for (const u of p[2] ?? '') mult *= SMALL_UNIT_VALUE[u] ?? 1n;
    for (const u of p[3] ?? '') mult *= BIG_UNIT_VALUE[u] ?? 1n;
    total += n * Number(mult);
    if (!Number.isSafeInteger(n * Number(mult))) exact = false;
  }
  if (exact && Number.isSafeInteger(total)) {
    const v = BigInt(total);
    return { integer: v, words: sinoKorean(v) };
  }
  // Too large or fractional: read each part as written.
  return { words: parts.map((p) => sinoDecimal(p[1] ?? '0') + (p[2] ?? '') + (p[3] ?? '')).join(' ') };
}

function koreanCounterReading(n: ParsedNumber, counter: string): string {
  if (counter === '번째' && n.small === 1) return '첫';
  if (counter === '월' && n.integer !== undefined) {
    if (n.integer === 6n) return '유';
    if (n.integer === 10n) return '시';
  }
  // 20대 (people in their twenties) is Sino; 3대 (three cars) is native.
  if (counter === '대' && n.small !== undefined && n.small % 10 === 0) return n.words;
  if (NATIVE_SET.has(counter) && n.small !== undefined) return nativeKorean(n.small, true) ?? n.words;
  return n.words;
}

function matchCounter(text: string, at: number): string | undefined {
  for (const c of COUNTERS) if (text.startsWith(c, at)) return c;
  return undefined;
}

function matchUnit(text: string, at: number): string | undefined {
  for (const u of UNIT_KEYS) {
    if (!text.startsWith(u, at)) continue;
    const next = text[at + u.length];
    // "5m" is a unit, "5mins" is not.
    if (next !== undefined && /[A-Za-z]/.test(next)) continue;
    return u;
  }
  return undefined;
}

const phoneRule: Rule = (text, at) => {
  PHONE_RE.lastIndex = at;
  const m = PHONE_RE.exec(text);
  if (!m) return undefined;
  const raw = m[0];
  let spoken: string;
  if (/^01[016789]\d{7,8}$/.test(raw)) {
    spoken = [raw.slice(0, 3), raw.slice(3, raw.length - 4), raw.slice(-4)]
      .map((g) => sinoDigits(g, '공'))
      .join(' ');
  } else {
    spoken = raw
      .replace(/^\+/, '플러스 ')
      .split(/[- .]+/)
      .map((g) => (/^\d+$/.test(g) ? sinoDigits(g, '공') : g))
      .join(' ')
      .replace('플러스 ', '플러스 ');
  }
  return { end: at + raw.length, spoken, kind: 'phone' };
};

const dateRule: Rule = (text, at) => {
  DATE_RE.lastIndex = at;
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const month = Number(m[3]);
  const day = Number(m[4]);
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  const monthWord = month === 6 ? '유월' : month === 10 ? '시월' : `${sinoKorean(month)}월`;
  return {
    end: at + m[0].length,
    spoken: `${sinoKorean(Number(m[1]))} 년 ${monthWord} ${sinoKorean(day)} 일`,
    kind: 'date',
  };
};

const timeRule: Rule = (text, at) => {
  TIME_RE.lastIndex = at;
  const m = TIME_RE.exec(text);
  if (!m) return undefined;
  const h = Number(m[1]);
  const min = Number(m[2]);
  const sec = m[3] === undefined ? undefined : Number(m[3]);
  if (h > 24 || min > 59 || (sec !== undefined && sec > 59)) return undefined;
  const parts = [h === 0 ? '영 시' : `${nativeKorean(h, true)} 시`];
  if (min > 0) parts.push(`${sinoKorean(min)} 분`);
  if (sec !== undefined && sec > 0) parts.push(`${sinoKorean(sec)} 초`);
  return { end: at + m[0].length, spoken: parts.join(' '), kind: 'time' };
};

const prefixCurrencyRule: Rule = (text, at) => {
  PREFIX_CURRENCY_RE.lastIndex = at;
  const m = PREFIX_CURRENCY_RE.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  const unitWord = CURRENCY_WORD[m[1]] ?? '';
  const scale = (m[3] ?? '').trim();
  const latinScale: Record<string, string> = { K: '천', M: '백만', B: '십억' };
  const amount = m[2].replace(/,/g, '');
  let spoken: string;
  if (scale && latinScale[scale]) spoken = `${sinoDecimal(amount)} ${latinScale[scale]} ${unitWord}`;
  else if (scale) spoken = `${parseKoreanNumber(amount + scale).words} ${unitWord}`;
  else if (m[1] === '$' || m[1] === '€' || m[1] === '£') {
    // $3.99 → 삼 달러 구십구 센트
    const [whole = '0', cents] = amount.split('.');
    spoken = `${sinoKorean(BigInt(whole))} ${unitWord}`;
    if (cents !== undefined && cents.length === 2 && Number(cents) > 0)
      spoken += ` ${sinoKorean(Number(cents))} ${m[1] === '£' ? '펜스' : '센트'}`;
    else if (cents !== undefined && cents.length !== 2) spoken = `${sinoDecimal(amount)} ${unitWord}`;
  } else spoken = `${sinoDecimal(amount)} ${unitWord}`;
  return { end: at + m[0].length, spoken, kind: 'currency' };
};

const numberRule: Rule = (text, at) => {
  NUMBER_RE.lastIndex = at;
  const m = NUMBER_RE.exec(text);
  if (!m || m[2] === undefined) return undefined;
  // A leading '-' is a minus sign only at the start of a word ("-5도", not "A-5").
  const minus = m[1] !== undefined && (at === 0 || /[\s(]/.test(text[at - 1] ?? ''));
  if (m[1] !== undefined && !minus) return undefined;
  let numText = m[2];
  let end = at + m[0].length;
  const rangeText = m[3];
  const first = parseKoreanNumber(numText);
  // Whitespace between the number and what follows it is absorbed when a counter or unit follows.
  let cursor = end;
  while (text[cursor] === ' ') cursor++;
  const sign = minus ? '마이너스 ' : '';
  const second = rangeText !== undefined ? parseKoreanNumber(rangeText) : undefined;

  if (text.startsWith('%', cursor)) {
    const pointTail = text.startsWith('%p', cursor) || text.startsWith('%포인트', cursor);
    const tailLen = text.startsWith('%포인트', cursor) ? 4 : pointTail ? 2 : 1;
    const word = pointTail ? '퍼센트포인트' : '퍼센트';
    const spoken = second
      ? `${sign}${first.words}에서 ${second.words} ${word}`
      : `${sign}${first.words} ${word}`;
    return { end: cursor + tailLen, spoken, kind: 'percent' };
  }
  const scale = /^[KMB](?![A-Za-z])/.exec(text.slice(end, end + 2))?.[0];
  if (scale && !second) {
    const mult = scale === 'K' ? 1000 : scale === 'M' ? 1_000_000 : 1_000_000_000;
    const value = Number(numText.replace(/,/g, '')) * mult;
    const spoken = Number.isSafeInteger(value) ? sinoKorean(value) : `${first.words} ${scale}`;
    return { end: end + 1, spoken: sign + spoken, kind: 'number' };
  }
  const unit = matchUnit(text, cursor);
  if (unit) {
    const spoken = second
      ? `${sign}${first.words}에서 ${second.words} ${UNITS[unit]}`
      : `${sign}${first.words} ${UNITS[unit]}`;
    return { end: cursor + unit.length, spoken, kind: 'unit' };
  }
  const counter = matchCounter(text, cursor);
  if (counter) {
    const a = koreanCounterReading(first, counter);
    // Month names are one word: 삼월, 유월, 시월.
    if (counter === '월' && !second)
      return { end: cursor + counter.length, spoken: `${a}월`, kind: 'counter' };
    const spoken = second
      ? `${sign}${a}에서 ${koreanCounterReading(second, counter)} ${counter}`
      : `${sign}${a} ${counter}`;
    return { end: cursor + counter.length, spoken, kind: 'counter' };
  }
  numText = second ? `${first.words}에서 ${second.words}` : first.words;
  end = at + m[0].length;
  return { end, spoken: sign + numText, kind: second ? 'range' : 'number' };
};

const RULES: Rule[] = [phoneRule, dateRule, timeRule, prefixCurrencyRule, numberRule];
const TRIGGER = /[\d₩$€¥￥£+-]/;

/** Normalises Korean narration text: spoken form plus each replacement made (offsets into the input). */
export function normalizeKorean(input: string): NormalizedText {
  return scanReplace(input, TRIGGER, RULES);
}
