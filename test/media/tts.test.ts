import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyse, durationS } from '../../src/media/audio/wav.js';
import { ElevenLabsProvider } from '../../src/media/tts/elevenlabs.provider.js';
import { EspeakProvider } from '../../src/media/tts/espeak.provider.js';
import { OPENAI_VOICES, OpenAiTtsProvider } from '../../src/media/tts/openai.provider.js';
import type { RetryPolicy } from '../../src/config/media.js';
import { parseRetryAfter, VendorError } from '../../src/media/vendor-http.js';
import { apiError, FakeVendors } from './fake-vendors.js';

const policy: RetryPolicy = { timeoutMs: 2000, maxRetries: 3, baseDelayMs: 10, maxDelayMs: 2000 };

describe('espeak (real eSpeak NG WASM)', () => {
  const espeak = new EspeakProvider({ speedWpm: 175, timeoutMs: 30_000 });
  afterAll(() => espeak.close());

  it('speaks Korean: non-silent audio of plausible duration', async () => {
    const text = '안녕하세요. 오늘은 새로운 캠페인을 소개합니다.';
    const r = await espeak.synthesize({ text, language: 'ko' });
    const a = analyse(r.audio);
    expect(a.rmsDbfs).toBeGreaterThan(-35);
    // 20 syllables at 2..10 syllables per second
    expect(a.durationS).toBeGreaterThan(2);
    expect(a.durationS).toBeLessThan(10);
    expect(r.usage).toEqual({
      provider: 'espeak',
      model: 'espeak-ng',
      operation: 'tts',
      units: [...text].length,
      unit: 'char',
    });
  });

  it('speaks English: non-silent audio of plausible duration', async () => {
    const r = await espeak.synthesize({
      text: 'Hello, this is a short test of the narration engine.',
      language: 'en',
    });
    const a = analyse(r.audio);
    expect(a.rmsDbfs).toBeGreaterThan(-35);
    expect(a.durationS).toBeGreaterThan(1.5);
    expect(a.durationS).toBeLessThan(8);
  });

  it('stays warm: later calls are fast and longer text gives longer audio', async () => {
    const t0 = performance.now();
    const short = await espeak.synthesize({ text: '하나 둘 셋', language: 'ko' });
    const long = await espeak.synthesize({
      text: '하나 둘 셋 넷 다섯 여섯 일곱 여덟 아홉 열',
      language: 'ko',
    });
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(durationS(long.audio)).toBeGreaterThan(durationS(short.audio) * 1.5);
  });

  it('reads text that looks like options literally and rejects unknown voices', async () => {
    const r = await espeak.synthesize({ text: '-v --help', language: 'en' });
    expect(durationS(r.audio)).toBeGreaterThan(0.3);
    await expect(espeak.synthesize({ text: 'x', language: 'ko', voice: 'klingon' })).rejects.toThrow(
      /unknown espeak voice/,
    );
    expect(espeak.isKnownVoice('ko')).toBe(true);
    expect(espeak.defaultVoice('en-US')).toBe('en-us');
  });

  it('serves concurrent calls', async () => {
    const results = await Promise.all(
      ['하나', '둘', '셋', '넷'].map((text) => espeak.synthesize({ text, language: 'ko' })),
    );
    for (const r of results) expect(analyse(r.audio).rmsDbfs).toBeGreaterThan(-35);
  });
});

describe('openai speech (fake server, real wire format)', () => {
  const fake = new FakeVendors();
  let tts: OpenAiTtsProvider;
  beforeAll(async () => {
    await fake.start();
    tts = new OpenAiTtsProvider({
      baseUrl: `${fake.url}/v1/`,
      apiKey: 'sk-test',
      model: 'tts-1',
      defaultVoice: 'alloy',
      voices: OPENAI_VOICES,
      policy,
    });
  });
  afterAll(() => fake.close());

  it('posts JSON with the bearer key and parses the streamed WAV', async () => {
    const r = await tts.synthesize({ text: '안녕하세요 여러분', language: 'ko', voice: 'nova' });
    const call = fake.calls.at(-1);
    expect(call?.path).toBe('/v1/audio/speech');
    expect(call?.headers.authorization).toBe('Bearer sk-test');
    expect(call?.json).toEqual({
      model: 'tts-1',
      input: '안녕하세요 여러분',
      voice: 'nova',
      response_format: 'wav',
    });
    expect(r.audio.sampleRate).toBe(24_000);
    expect(durationS(r.audio)).toBeCloseTo(0.06 * 9, 2);
    expect(r.usage).toMatchObject({ provider: 'openai', model: 'tts-1', units: 9, unit: 'char' });
  });

  it('retries 429 honouring Retry-After, then succeeds', async () => {
    const before = fake.calls.length;
    fake.queue.push(() => apiError(429, 'Rate limit reached', { 'retry-after': '0.3' }));
    const t0 = performance.now();
    await tts.synthesize({ text: '재시도', language: 'ko' });
    expect(fake.calls.length - before).toBe(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('retries 5xx with backoff and gives up after maxRetries with a retryable error', async () => {
    const before = fake.calls.length;
    for (let i = 0; i < 4; i++) fake.queue.push(() => apiError(503, 'overloaded'));
    const err = await tts.synthesize({ text: '실패', language: 'ko' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VendorError);
    expect(err).toMatchObject({ kind: 'unavailable', status: 503, retryable: true });
    expect(fake.calls.length - before).toBe(4);
  });

  it.each([
    [401, 'auth'],
    [403, 'auth'],
    [400, 'rejected'],
    [422, 'rejected'],
  ])('%i is permanent (%s): one call, no retry', async (status, kind) => {
    const before = fake.calls.length;
    fake.queue.push(() => apiError(status, 'no'));
    const err = await tts.synthesize({ text: '권한', language: 'ko' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind, status, retryable: false });
    expect(fake.calls.length - before).toBe(1);
  });

  it('times out a silent server and retries', async () => {
    const slow = new OpenAiTtsProvider({
      baseUrl: `${fake.url}/v1`,
      apiKey: undefined,
      model: 'tts-1',
      defaultVoice: 'alloy',
      voices: OPENAI_VOICES,
      policy: { ...policy, timeoutMs: 150, maxRetries: 1 },
    });
    const before = fake.calls.length;
    fake.queue.push(
      () => ({ status: 200, delayMs: 600, body: 'late' }),
      () => ({ status: 200, delayMs: 600, body: 'late' }),
    );
    const err = await slow.synthesize({ text: '느림', language: 'ko' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'timeout', retryable: true });
    expect(fake.calls.length - before).toBe(2);
  });

  it('reports audio it cannot read as a bad response, not a crash', async () => {
    fake.queue.push(() => ({ status: 200, headers: { 'content-type': 'audio/mpeg' }, body: 'ID3garbage' }));
    await expect(tts.synthesize({ text: '엠피쓰리', language: 'ko' })).rejects.toMatchObject({
      kind: 'bad_response',
      retryable: false,
    });
  });

  it('gives up at once when Retry-After is longer than the longest wait held', async () => {
    const before = fake.calls.length;
    fake.queue.push(() => apiError(429, 'slow down', { 'retry-after': '120' }));
    await expect(tts.synthesize({ text: '대기', language: 'ko' })).rejects.toMatchObject({
      kind: 'rate_limited',
      retryAfterMs: 120_000,
      retryable: true,
    });
    expect(fake.calls.length - before).toBe(1);
  });

  it('reports an unreachable server as a retryable network error', async () => {
    const down = new OpenAiTtsProvider({
      baseUrl: 'http://127.0.0.1:9/v1',
      apiKey: undefined,
      model: 'tts-1',
      defaultVoice: 'alloy',
      voices: OPENAI_VOICES,
      policy: { ...policy, maxRetries: 0 },
    });
    await expect(down.synthesize({ text: 'x', language: 'en' })).rejects.toMatchObject({
      kind: 'network',
      retryable: true,
    });
  });
});

describe('elevenlabs (fake server, real wire format)', () => {
  const fake = new FakeVendors();
  let tts: ElevenLabsProvider;
  beforeAll(async () => {
    await fake.start();
    tts = new ElevenLabsProvider({
      baseUrl: fake.url,
      apiKey: 'xi-test',
      model: 'eleven_multilingual_v2',
      defaultVoiceId: '21m00Tcm4TlvDq8ikWAM',
      policy,
    });
  });
  afterAll(() => fake.close());

  it('posts to /v1/text-to-speech/{voice_id} with xi-api-key and reads raw PCM', async () => {
    const r = await tts.synthesize({ text: '반갑습니다', language: 'ko-KR' });
    const call = fake.calls.at(-1);
    expect(call?.path).toBe('/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM');
    expect(call?.query.get('output_format')).toBe('pcm_24000');
    expect(call?.headers['xi-api-key']).toBe('xi-test');
    expect(call?.json).toEqual({
      text: '반갑습니다',
      model_id: 'eleven_multilingual_v2',
      language_code: 'ko',
    });
    expect(durationS(r.audio)).toBeCloseTo(0.3, 2);
    expect(r.usage).toMatchObject({ provider: 'elevenlabs', units: 5, unit: 'char' });
  });

  it('401 is permanent; 429 is retried', async () => {
    fake.queue.push(() => ({
      status: 401,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ detail: { status: 'invalid_api_key', message: 'Invalid API key' } }),
    }));
    await expect(tts.synthesize({ text: '키', language: 'ko' })).rejects.toMatchObject({
      kind: 'auth',
      retryable: false,
    });
    const before = fake.calls.length;
    fake.queue.push(() => ({
      status: 429,
      headers: { 'retry-after': '0' },
      body: JSON.stringify({ detail: { status: 'too_many_concurrent_requests' } }),
    }));
    await tts.synthesize({ text: '다시', language: 'ko' });
    expect(fake.calls.length - before).toBe(2);
  });

  it('accepts voice ids only in their shape', () => {
    expect(tts.isKnownVoice('21m00Tcm4TlvDq8ikWAM')).toBe(true);
    expect(tts.isKnownVoice('../etc/passwd')).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('0.5')).toBe(500);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
  });
});
