/**
 * Numbers as words: Sino-Korean (한자어 수사), native Korean (고유어 수사) and English.
 * Pure functions over non-negative integers; callers handle signs and decimals.
 */

const SINO_DIGITS = ['영', '일', '이', '삼', '사', '오', '육', '칠', '팔', '구'] as const;
const SINO_SMALL_UNITS = ['', '십', '백', '천'] as const;
const SINO_BIG_UNITS = ['', '만', '억', '조', '경'] as const;

/** Largest integer read as words; beyond it digits are read one by one. */
export const MAX_SPOKEN_INTEGER = 10n ** 20n - 1n;

function sinoUnder10000(n: number): string {
  let out = '';
  for (let place = 3; place >= 0; place--) {
    const d = Math.floor(n / 10 ** place) % 10;
    if (d === 0) continue;
    // 일 is dropped before 십/백/천: 100 is 백, not 일백.
    out += (d === 1 && place > 0 ? '' : (SINO_DIGITS[d] ?? '')) + (SINO_SMALL_UNITS[place] ?? '');
  }
  return out;
}

/** 123 → 백이십삼; 12345 → 만 이천삼백사십오 (a space after each 만/억/조 group). */
export function sinoKorean(value: number | bigint): string {
  let n = BigInt(value);
  if (n < 0n) throw new RangeError('sinoKorean takes a non-negative integer');
  if (n === 0n) return '영';
  if (n > MAX_SPOKEN_INTEGER) return sinoDigits(n.toString());
  const groups: string[] = [];
  let big = 0;
  while (n > 0n) {
    const g = Number(n % 10000n);
    n /= 10000n;
    if (g > 0) {
      // 10000 is 만, not 일만 (but 억, 조 keep 일: 일억).
      const words = g === 1 && big === 1 ? '' : sinoUnder10000(g);
      groups.unshift(words + SINO_BIG_UNITS[big]);
    }
    big++;
  }
  return groups.join(' ');
}

/** Reads digits one by one: "0101" → 영일영일, or with `zero: '공'` (phone numbers) 공일공일. */
export function sinoDigits(digits: string, zero: '영' | '공' = '영'): string {
  return [...digits].map((c) => (c === '0' ? zero : (SINO_DIGITS[Number(c)] ?? c))).join('');
}

const NATIVE_UNITS = ['', '하나', '둘', '셋', '넷', '다섯', '여섯', '일곱', '여덟', '아홉'] as const;
const NATIVE_UNITS_ATTR = ['', '한', '두', '세', '네', '다섯', '여섯', '일곱', '여덟', '아홉'] as const;
const NATIVE_TENS = ['', '열', '스물', '서른', '마흔', '쉰', '예순', '일흔', '여든', '아흔'] as const;

/**
 * Native Korean numeral for 1..99; `attributive` gives the form used before a
 * counter (한, 두, 세, 네, 스무): 3개 → 세 개, 20살 → 스무 살. Returns undefined outside 1..99.
 */
export function nativeKorean(n: number, attributive = false): string | undefined {
  if (!Number.isInteger(n) || n < 1 || n > 99) return undefined;
  const tens = Math.floor(n / 10);
  const units = n % 10;
  if (units === 0) return attributive && tens === 2 ? '스무' : NATIVE_TENS[tens];
  return (NATIVE_TENS[tens] ?? '') + (attributive ? NATIVE_UNITS_ATTR[units] : NATIVE_UNITS[units]);
}

const EN_ONES = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
] as const;
const EN_TENS = [
  '',
  '',
  'twenty',
  'thirty',
  'forty',
  'fifty',
  'sixty',
  'seventy',
  'eighty',
  'ninety',
] as const;
const EN_SCALES = ['', 'thousand', 'million', 'billion', 'trillion', 'quadrillion', 'quintillion'] as const;

function englishUnder1000(n: number): string {
  const parts: string[] = [];
  const hundreds = Math.floor(n / 100);
  const rest = n % 100;
  if (hundreds > 0) parts.push(`${EN_ONES[hundreds]} hundred`);
  if (rest > 0) {
    if (rest < 20) parts.push(EN_ONES[rest] ?? '');
    else {
      const t = EN_TENS[Math.floor(rest / 10)] ?? '';
      parts.push(rest % 10 === 0 ? t : `${t}-${EN_ONES[rest % 10]}`);
    }
  }
  return parts.join(' ');
}

/** 123 → one hundred twenty-three; 1000000 → one million. */
export function englishCardinal(value: number | bigint): string {
  let n = BigInt(value);
  if (n < 0n) throw new RangeError('englishCardinal takes a non-negative integer');
  if (n === 0n) return 'zero';
  if (n > MAX_SPOKEN_INTEGER) return englishDigits(n.toString());
  const groups: string[] = [];
  let scale = 0;
  while (n > 0n) {
    const g = Number(n % 1000n);
    n /= 1000n;
    if (g > 0) groups.unshift(englishUnder1000(g) + (scale > 0 ? ` ${EN_SCALES[scale]}` : ''));
    scale++;
  }
  return groups.join(' ');
}

/** Digits one by one: "042" → zero four two. */
export function englishDigits(digits: string): string {
  return [...digits].map((c) => EN_ONES[Number(c)] ?? c).join(' ');
}

const EN_ORDINAL_IRREGULAR: Record<string, string> = {
  one: 'first',
  two: 'second',
  three: 'third',
  five: 'fifth',
  eight: 'eighth',
  nine: 'ninth',
  twelve: 'twelfth',
};

/** 1 → first, 22 → twenty-second, 100 → one hundredth. */
export function englishOrdinal(value: number | bigint): string {
  const words = englishCardinal(value);
  const m = /([a-z]+)$/.exec(words);
  if (!m || m[1] === undefined) return words;
  const last = m[1];
  let ord: string;
  if (EN_ORDINAL_IRREGULAR[last]) ord = EN_ORDINAL_IRREGULAR[last];
  else if (last.endsWith('y')) ord = `${last.slice(0, -1)}ieth`;
  else ord = `${last}th`;
  return words.slice(0, words.length - last.length) + ord;
}

/** Years as usually spoken: 1999 → nineteen ninety-nine, 2005 → two thousand five, 2024 → twenty twenty-four. */
export function englishYear(year: number): string {
  if (year >= 2000 && year <= 2009) return englishCardinal(year);
  if (year % 100 === 0 && year % 1000 !== 0) return `${englishCardinal(year / 100)} hundred`;
  if (year < 1100 || year > 2099) return englishCardinal(year);
  const hi = Math.floor(year / 100);
  const lo = year % 100;
  return `${englishCardinal(hi)} ${lo < 10 ? `oh ${englishCardinal(lo)}` : englishCardinal(lo)}`;
}
