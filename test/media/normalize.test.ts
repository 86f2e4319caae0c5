import { describe, expect, it } from 'vitest';
import { normalizeNarration } from '../../src/media/text/normalize.js';
import {
  englishCardinal,
  englishOrdinal,
  nativeKorean,
  sinoKorean,
} from '../../src/media/text/number-words.js';

const KO: [string, string][] = [
  // Sino-Korean integers
  ['0', '영'],
  ['1', '일'],
  ['7', '칠'],
  ['10', '십'],
  ['11', '십일'],
  ['20', '이십'],
  ['99', '구십구'],
  ['100', '백'],
  ['101', '백일'],
  ['110', '백십'],
  ['123', '백이십삼'],
  ['1000', '천'],
  ['1001', '천일'],
  ['2024', '이천이십사'],
  ['9999', '구천구백구십구'],
  ['10000', '만'],
  ['10001', '만 일'],
  ['12345', '만 이천삼백사십오'],
  ['100000', '십만'],
  ['1000000', '백만'],
  ['10000000', '천만'],
  ['100000000', '일억'],
  ['123456789', '일억 이천삼백사십오만 육천칠백팔십구'],
  ['1000000000000', '일조'],
  ['1,234', '천이백삼십사'],
  ['1,000,000', '백만'],
  // decimals
  ['3.5', '삼 점 오'],
  ['0.5', '영 점 오'],
  ['3.14', '삼 점 일사'],
  ['12.05', '십이 점 영오'],
  ['-5', '마이너스 오'],
  ['기온 -3도', '기온 마이너스 삼 도'],
  // native numerals before counters
  ['1개', '한 개'],
  ['2개', '두 개'],
  ['3개', '세 개'],
  ['4개', '네 개'],
  ['5개', '다섯 개'],
  ['10개', '열 개'],
  ['11개', '열한 개'],
  ['20개', '스무 개'],
  ['21개', '스물한 개'],
  ['35개', '서른다섯 개'],
  ['99개', '아흔아홉 개'],
  ['100개', '백 개'],
  ['3 개', '세 개'],
  ['1시', '한 시'],
  ['2시', '두 시'],
  ['12시', '열두 시'],
  ['3시간', '세 시간'],
  ['24시간', '스물네 시간'],
  ['5명', '다섯 명'],
  ['2명이 왔다', '두 명이 왔다'],
  ['40명', '마흔 명'],
  ['150명', '백오십 명'],
  ['20살', '스무 살'],
  ['25살', '스물다섯 살'],
  ['3마리', '세 마리'],
  ['1번', '한 번'],
  ['3번', '세 번'],
  ['1번째', '첫 번째'],
  ['2번째', '두 번째'],
  ['2잔', '두 잔'],
  ['4권', '네 권'],
  ['6장', '여섯 장'],
  ['3병', '세 병'],
  ['2대', '두 대'],
  ['20대 여성', '이십 대 여성'],
  ['7가지', '일곱 가지'],
  ['2배', '두 배'],
  ['50곳', '쉰 곳'],
  ['60마리', '예순 마리'],
  ['70명', '일흔 명'],
  ['80개', '여든 개'],
  ['90개', '아흔 개'],
  ['3~5개', '세에서 다섯 개'],
  // Sino before Sino counters
  ['3개월', '삼 개월'],
  ['3개국', '삼 개국'],
  ['25세', '이십오 세'],
  ['30분', '삼십 분'],
  ['15초', '십오 초'],
  ['3층', '삼 층'],
  ['2주', '이 주'],
  ['5회', '오 회'],
  ['제3회', '제삼 회'],
  ['1위', '일 위'],
  ['2인분', '이 인분'],
  ['3학년', '삼 학년'],
  ['10주년', '십 주년'],
  ['2단계', '이 단계'],
  // percentages
  ['50%', '오십 퍼센트'],
  ['3.5%', '삼 점 오 퍼센트'],
  ['100%', '백 퍼센트'],
  ['2%p', '이 퍼센트포인트'],
  ['10~20%', '십에서 이십 퍼센트'],
  ['할인율 30% 적용', '할인율 삼십 퍼센트 적용'],
  // dates
  ['2024-03-15', '이천이십사 년 삼월 십오 일'],
  ['2024.3.1', '이천이십사 년 삼월 일 일'],
  ['2024/12/25', '이천이십사 년 십이월 이십오 일'],
  ['2024년 6월 15일', '이천이십사 년 유월 십오 일'],
  ['10월 9일', '시월 구 일'],
  ['2023년', '이천이십삼 년'],
  ['5월', '오월'],
  // times
  ['14:30', '열네 시 삼십 분'],
  ['9:00', '아홉 시'],
  ['2:05', '두 시 오 분'],
  ['오후 3:15', '오후 세 시 십오 분'],
  ['10:20:30', '열 시 이십 분 삼십 초'],
  ['0:10', '영 시 십 분'],
  ['3시 30분', '세 시 삼십 분'],
  // phone numbers, digit by digit
  ['010-1234-5678', '공일공 일이삼사 오육칠팔'],
  ['02-123-4567', '공이 일이삼 사오육칠'],
  ['031-987-6543', '공삼일 구팔칠 육오사삼'],
  ['1588-1234', '일오팔팔 일이삼사'],
  ['01012345678', '공일공 일이삼사 오육칠팔'],
  ['문의: 010-0000-1111', '문의: 공일공 공공공공 일일일일'],
  // currency
  ['5000원', '오천 원'],
  ['5,000원', '오천 원'],
  ['₩5000', '오천 원'],
  ['₩ 12,000', '만 이천 원'],
  ['1만원', '만 원'],
  ['3만 원', '삼만 원'],
  ['2억 5천만 원', '이억 오천만 원'],
  ['1.5만 원', '만 오천 원'],
  ['$20', '이십 달러'],
  ['$3.99', '삼 달러 구십구 센트'],
  ['$1,000', '천 달러'],
  ['€50', '오십 유로'],
  ['¥1000', '천 엔'],
  ['$2M', '이 백만 달러'],
  ['20달러', '이십 달러'],
  ['10K 팔로워', '만 팔로워'],
  // units
  ['5kg', '오 킬로그램'],
  ['1.5L', '일 점 오 리터'],
  ['100m', '백 미터'],
  ['42.195km', '사십이 점 일구오 킬로미터'],
  ['25℃', '이십오 도'],
  ['256GB', '이백오십육 기가바이트'],
  // left alone
  ['안녕하세요', '안녕하세요'],
  ['A4 용지', 'A4 용지'],
  ['mp3 파일', 'mp3 파일'],
  ['COVID-19', 'COVID-19'],
  ['iPhone 15', 'iPhone 십오'],
  // sentences
  ['오늘 3개월 동안 5명이 참여했습니다.', '오늘 삼 개월 동안 다섯 명이 참여했습니다.'],
  ['지금 주문하면 30% 할인, 단 3일!', '지금 주문하면 삼십 퍼센트 할인, 단 삼 일!'],
  ['매일 2잔의 커피와 1시간 운동', '매일 두 잔의 커피와 한 시간 운동'],
];

const EN: [string, string][] = [
  ['0', 'zero'],
  ['7', 'seven'],
  ['13', 'thirteen'],
  ['20', 'twenty'],
  ['42', 'forty-two'],
  ['100', 'one hundred'],
  ['123', 'one hundred twenty-three'],
  ['1,000', 'one thousand'],
  ['1,000,000', 'one million'],
  ['3.5', 'three point five'],
  ['0.25', 'zero point two five'],
  ['-4', 'minus four'],
  ['1st', 'first'],
  ['2nd', 'second'],
  ['3rd', 'third'],
  ['22nd', 'twenty-second'],
  ['100th', 'one hundredth'],
  ['50%', 'fifty percent'],
  ['3.5 %', 'three point five percent'],
  ['$1', 'one dollar'],
  ['$20', 'twenty dollars'],
  ['$3.99', 'three dollars and ninety-nine cents'],
  ['$2.5M', 'two point five million dollars'],
  ['€10', 'ten euros'],
  ['1999', 'nineteen ninety-nine'],
  ['2005', 'two thousand five'],
  ['2024', 'twenty twenty-four'],
  ['3:30', 'three thirty'],
  ['7:05 pm', 'seven oh five p m'],
  ['9:00', "nine o'clock"],
  ['555-123-4567', 'five five five, one two three, four five six seven'],
  ['Buy 3 get 1 free', 'Buy three get one free'],
  ['mp3 files', 'mp3 files'],
];

describe('normalizeNarration (ko)', () => {
  it.each(KO)('%s → %s', (input, spoken) => {
    expect(normalizeNarration(input, 'ko').text).toBe(spoken);
  });

  it('has at least 100 Korean cases', () => {
    expect(KO.length).toBeGreaterThanOrEqual(100);
  });

  it('lists each replacement with its offset in the input', () => {
    const r = normalizeNarration('가격 5,000원, 010-1234-5678로 3개 주문', 'ko');
    expect(r.replacements).toEqual([
      { from: '5,000원', to: '오천 원', kind: 'counter', offset: 3 },
      { from: '010-1234-5678', to: '공일공 일이삼사 오육칠팔', kind: 'phone', offset: 11 },
      { from: '3개', to: '세 개', kind: 'counter', offset: 26 },
    ]);
  });

  it('returns text without digits unchanged and with no replacements', () => {
    const r = normalizeNarration('새로운 캠페인을 소개합니다.', 'ko');
    expect(r).toEqual({ text: '새로운 캠페인을 소개합니다.', replacements: [] });
  });

  it('accepts region suffixes and passes unknown languages through', () => {
    expect(normalizeNarration('3개', 'ko-KR').text).toBe('세 개');
    expect(normalizeNarration('3 gatos', 'es').text).toBe('3 gatos');
  });

  it('reads numbers too long to say digit by digit instead of failing', () => {
    expect(normalizeNarration('123456789012345678901234', 'ko').text).toBe(
      '일이삼사오육칠팔구영일이삼사오육칠팔구영일이삼사',
    );
  });
});

describe('normalizeNarration (en)', () => {
  it.each(EN)('%s → %s', (input, spoken) => {
    expect(normalizeNarration(input, 'en').text).toBe(spoken);
  });
});

describe('number words', () => {
  it('agrees with a digit-by-digit reconstruction for many integers', () => {
    const digit = ['', '일', '이', '삼', '사', '오', '육', '칠', '팔', '구'];
    for (let n = 1; n < 10000; n += 37) {
      const s = sinoKorean(n);
      let back = 0;
      let cur = 0;
      for (const ch of s) {
        const d = digit.indexOf(ch);
        if (d > 0) cur = d;
        else if (ch === '십' || ch === '백' || ch === '천') {
          back += (cur || 1) * { 십: 10, 백: 100, 천: 1000 }[ch];
          cur = 0;
        }
      }
      expect(back + cur, `${n} → ${s}`).toBe(n);
    }
  });

  it('native numerals exist only for 1..99', () => {
    expect(nativeKorean(0)).toBeUndefined();
    expect(nativeKorean(100)).toBeUndefined();
    expect(nativeKorean(1)).toBe('하나');
    expect(nativeKorean(1, true)).toBe('한');
    expect(nativeKorean(20)).toBe('스물');
  });

  it('English cardinals and ordinals', () => {
    expect(englishCardinal(1_234_567)).toBe(
      'one million two hundred thirty-four thousand five hundred sixty-seven',
    );
    expect(englishOrdinal(12)).toBe('twelfth');
    expect(englishOrdinal(40)).toBe('fortieth');
    expect(() => sinoKorean(-1)).toThrow(RangeError);
  });
});
