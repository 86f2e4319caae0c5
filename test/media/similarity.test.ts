import { describe, expect, it } from 'vitest';
import { comparisonForm, similarity } from '../../src/media/text/similarity.js';

describe('comparisonForm', () => {
  it.each([
    ['안녕하세요!', '안녕하세요'],
    ['  여러분,   반갑습니다.  ', '여러분 반갑습니다'],
    ['Hello, World', 'hello world'],
    ['ＡＢＣ　１２３', 'abc 123'],
    ['“특가” 세일…', '특가 세일'],
    // Decomposed jamo (NFD) compose to the same syllables
    ['\u1112\u1161\u11ab\u1100\u1173\u11af', '한글'],
  ])('%j → %j', (input, out) => {
    expect(comparisonForm(input)).toBe(out);
  });
});

describe('similarity', () => {
  it('is 1 for identical text and ignores punctuation, case and spacing', () => {
    expect(similarity('오늘 날씨가 좋네요.', '오늘날씨가 좋네요').ratio).toBe(1);
    expect(similarity('Hello World!', 'hello, world', { language: 'en' }).ratio).toBe(1);
    expect(similarity('', '').ratio).toBe(1);
  });

  it('treats digits and their spoken form as the same', () => {
    expect(similarity('3개 남았습니다', '세 개 남았습니다').ratio).toBe(1);
    expect(similarity('50% 할인', '오십 퍼센트 할인').ratio).toBe(1);
  });

  it('is a character-level ratio', () => {
    // 10 letters, one substituted → 0.9
    const r = similarity('가나다라마바사아자차', '가나다라마바사아자카');
    expect(r.ratio).toBeCloseTo(0.9, 5);
    expect(similarity('가나다라', '').ratio).toBe(0);
    expect(similarity('가나다라', '마바사아').ratio).toBe(0);
  });

  it('reports the first differing words in script order', () => {
    const r = similarity('오늘 우리는 새로운 제품을 소개합니다', '오늘 우리는 새로운 상품을 소개했습니다');
    // Adjacent differing words merge into one run.
    expect(r.mismatches).toEqual([{ index: 3, expected: '제품을 소개합니다', heard: '상품을 소개했습니다' }]);
    expect(r.ratio).toBeCloseTo(1 - 3 / 17, 5);
    expect(r.ratio).toBeLessThan(1);
    expect(r.ratio).toBeGreaterThan(0.7);
  });

  it('reports missing and extra words', () => {
    const missing = similarity('하나 둘 셋 넷', '하나 셋 넷');
    expect(missing.mismatches).toEqual([{ index: 1, expected: '둘', heard: '' }]);
    const extra = similarity('하나 둘', '하나 둘 셋');
    expect(extra.mismatches).toEqual([{ index: 2, expected: '', heard: '셋' }]);
  });

  it('limits the number of mismatches reported', () => {
    const r = similarity('가 나 다 라 마 바 사', '하 하 하 하 하 하 하 하', { maxMismatches: 1 });
    expect(r.mismatches).toHaveLength(1);
  });

  it('is fast enough for a long script', () => {
    const text = '오늘 소개할 제품은 정말 놀라운 기능을 가지고 있습니다. '.repeat(100);
    const t0 = performance.now();
    const r = similarity(text, text.replace(/놀라운/g, '평범한'));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.ratio).toBeGreaterThan(0.8);
    expect(r.ratio).toBeLessThan(1);
  });
});
