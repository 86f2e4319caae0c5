import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concat, encodeWav, type PcmAudio, parseWav, silence } from '../../src/media/audio/wav.js';
import { AcousticVerifier, countSyllables } from '../../src/media/stt/acoustic.verifier.js';
import { OpenAiSttVerifier } from '../../src/media/stt/openai-stt.verifier.js';
import { FakeVendors } from './fake-vendors.js';

const RATE = 16_000;
function tone(seconds: number, amplitude = 8000): PcmAudio {
  const samples = new Int16Array(Math.round(seconds * RATE));
  for (let i = 0; i < samples.length; i++)
    samples[i] = Math.max(
      -32768,
      Math.min(32767, Math.round(amplitude * Math.sin((2 * Math.PI * 200 * i) / RATE))),
    );
  return { sampleRate: RATE, samples };
}
const req = (audio: PcmAudio, expectedText: string) => ({
  audio,
  wav: encodeWav(audio),
  expectedText,
  language: 'ko',
});

// 20 syllables
const TEXT = '안녕하세요 오늘은 새로운 캠페인을 소개합니다 감사합니다';

describe('acoustic verifier', () => {
  const v = new AcousticVerifier();

  it('counts syllables of Hangul and Latin text', () => {
    expect(countSyllables('안녕하세요')).toBe(5);
    expect(countSyllables('hello world')).toBe(3);
  });

  it('accepts speech-like audio of plausible length', async () => {
    const r = await v.verify(req(tone(4), TEXT));
    // All checks pass (score 1), and no word similarity is claimed: none was measured.
    expect(r).toMatchObject({ score: 1, similarity: null, issues: [] });
    expect(v.name).toBe('acoustic');
    expect(v.checks).toMatch(/no word similarity is measured/);
  });

  it('rejects silence outright', async () => {
    const r = await v.verify(req(silence(RATE, 4), TEXT));
    expect(r).toMatchObject({ score: 0, similarity: null });
    expect(r.issues[0]).toMatch(/silent/);
  });

  it('flags audio too short or too long for the text', async () => {
    expect((await v.verify(req(tone(0.5), TEXT))).issues[0]).toMatch(/too short/);
    expect((await v.verify(req(tone(30), TEXT))).issues[0]).toMatch(/too long/);
  });

  it('flags a dropout inside the narration', async () => {
    const r = await v.verify(req(concat([tone(2), silence(RATE, 3), tone(2)]), TEXT + ' ' + TEXT));
    expect(r.issues.some((i) => /dropout/.test(i))).toBe(true);
    expect(r.score).toBeLessThan(1);
    expect(r.similarity).toBeNull();
  });

  it('flags clipping', async () => {
    const r = await v.verify(req(tone(4, 40_000), TEXT));
    expect(r.issues.some((i) => /clipped/.test(i))).toBe(true);
  });
});

describe('openai speech-to-text verifier (fake server, real wire format)', () => {
  const fake = new FakeVendors();
  beforeAll(() => fake.start());
  afterAll(() => fake.close());

  it('uploads the WAV as multipart with model, language and response_format', async () => {
    fake.transcript = '안녕하세요 오늘은 새로운 캠페인을 소개합니다';
    const v = new OpenAiSttVerifier({
      baseUrl: `${fake.url}/v1`,
      apiKey: 'sk-x',
      model: 'whisper-1',
      policy: { timeoutMs: 2000, maxRetries: 0, baseDelayMs: 1, maxDelayMs: 10 },
    });
    const audio = tone(2);
    const r = await v.verify({
      ...req(audio, '안녕하세요. 오늘은 새로운 캠페인을 소개합니다!'),
      language: 'ko-KR',
    });
    const call = fake.calls.at(-1);
    expect(call?.path).toBe('/v1/audio/transcriptions');
    expect(call?.headers.authorization).toBe('Bearer sk-x');
    expect(call?.form).toEqual({ model: 'whisper-1', language: 'ko', response_format: 'json' });
    expect(call?.file?.name).toBe('narration.wav');
    expect(parseWav(call?.file?.bytes ?? new Uint8Array()).samples.length).toBe(audio.samples.length);
    expect(r).toMatchObject({
      score: 1,
      similarity: 1,
      transcript: fake.transcript,
      usage: { provider: 'openai', model: 'whisper-1', operation: 'stt', units: 2, unit: 'second' },
    });
  });

  it('a transcript without text is a bad response', async () => {
    fake.reply('/audio/transcriptions', () => ({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: '{"segments":[]}',
    }));
    const v = new OpenAiSttVerifier({
      baseUrl: `${fake.url}/v1`,
      apiKey: undefined,
      model: 'whisper-1',
      policy: { timeoutMs: 2000, maxRetries: 0, baseDelayMs: 1, maxDelayMs: 10 },
    });
    await expect(v.verify(req(tone(1), '테스트'))).rejects.toMatchObject({
      kind: 'bad_response',
      retryable: false,
    });
    expect(fake.calls.at(-1)?.headers.authorization).toBeUndefined();
  });
});
