import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/env.js';
import { loadMediaConfig } from '../../src/config/media.js';
import { createTtsProviders } from '../../src/media/media-services.js';
import { DEFAULT_PRICES } from '../../src/config/media.js';

describe('media config', () => {
  it('defaults: local TTS, acoustic verification, storage under DATA_DIR, dated prices', () => {
    const c = loadMediaConfig({ DATA_DIR: '/tmp/ov-data' });
    expect(c).toMatchObject({
      storage: { kind: 'local', dir: path.resolve('/tmp/ov-data/media') },
      scratchDir: path.resolve('/tmp/ov-data/scratch'),
      assets: { maxBytes: 500 * 1024 * 1024, maxPixels: 40_000_000, maxDurationS: 600 },
      defaultTtsProvider: 'espeak',
      verifier: 'acoustic',
      narration: { threshold: 0.95, maxAttempts: 5, maxChars: 5000, blockPauseMs: 300 },
      render: { ffmpegPath: undefined, timeoutMs: 600_000 },
    });
    expect(c.prices).toBe(DEFAULT_PRICES);
    expect([...createTtsProviders(c).keys()]).toEqual(['espeak']);
  });

  it('S3 storage from MEDIA_STORAGE_URL, with path-style addressing for a custom endpoint', () => {
    const c = loadMediaConfig({
      MEDIA_STORAGE_URL: 's3://ov-media/prod/media',
      MEDIA_S3_ENDPOINT: 'http://127.0.0.1:9000',
      AWS_REGION: 'eu-west-1',
    });
    expect(c.storage).toEqual({
      kind: 's3',
      bucket: 'ov-media',
      prefix: 'prod/media',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      forcePathStyle: true,
      partSizeBytes: 8 * 1024 * 1024,
      presignTtlS: 0,
    });
    expect(loadMediaConfig({ MEDIA_STORAGE_URL: 's3://ov-media' }).storage).toMatchObject({
      prefix: '',
      endpoint: undefined,
      region: 'us-east-1',
      forcePathStyle: false,
    });
    expect(() => loadMediaConfig({ MEDIA_STORAGE_URL: 'https://bucket' })).toThrow(/MEDIA_STORAGE_URL/);
    expect(() => loadMediaConfig({ MEDIA_S3_ENDPOINT: 'http://127.0.0.1:9000' })).toThrow(
      /MEDIA_S3_ENDPOINT is set but MEDIA_STORAGE_URL is not/,
    );
    expect(() => loadMediaConfig({ MEDIA_PRESIGN_TTL_S: '300' })).toThrow(
      /MEDIA_PRESIGN_TTL_S is set but MEDIA_STORAGE_URL is not/,
    );
    expect(loadMediaConfig({ MEDIA_PRESIGN_TTL_S: '0' }).storage.kind).toBe('local');
    expect(() => loadMediaConfig({ MEDIA_S3_PART_SIZE_MB: '1' })).toThrow(/MEDIA_S3_PART_SIZE_MB/);
  });

  it('uses speech-to-text when a key or a self-hosted server is configured', () => {
    expect(loadMediaConfig({ OPENAI_API_KEY: 'sk-x' }).verifier).toBe('openai');
    const selfHosted = loadMediaConfig({ STT_BASE_URL: 'http://127.0.0.1:9000/v1' });
    expect(selfHosted).toMatchObject({
      verifier: 'openai',
      stt: { baseUrl: 'http://127.0.0.1:9000/v1', apiKey: undefined },
    });
    expect(loadMediaConfig({ OPENAI_API_KEY: 'sk-x', NARRATION_VERIFIER: 'acoustic' }).verifier).toBe(
      'acoustic',
    );
    const providers = createTtsProviders(
      loadMediaConfig({ OPENAI_API_KEY: 'sk-x', ELEVENLABS_API_KEY: 'xi' }),
    );
    expect([...providers.keys()]).toEqual(['espeak', 'openai', 'elevenlabs']);
  });

  it.each([
    ['NARRATION_THRESHOLD', '1.5'],
    ['NARRATION_MAX_ATTEMPTS', '0'],
    ['TTS_PROVIDER', 'festival'],
    ['OPENAI_BASE_URL', 'ftp://x'],
    ['MEDIA_PRICES_JSON', '{not json'],
    ['MEDIA_PRICES_JSON', '{"openai:tts-1":{"usdPerUnit":-1,"unit":"char"}}'],
  ])('%s=%s stops start-up naming the variable', (name, value) => {
    let err: unknown;
    try {
      loadMediaConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(name);
  });

  it('merges price overrides over the defaults', () => {
    const c = loadMediaConfig({
      MEDIA_PRICES_JSON:
        '{"openai:tts-1":{"usdPerUnit":0.00002,"unit":"char"},"local:piper":{"usdPerUnit":0,"unit":"char"}}',
    });
    expect(c.prices['openai:tts-1']?.usdPerUnit).toBe(0.00002);
    expect(c.prices['openai:whisper-1']).toEqual(DEFAULT_PRICES['openai:whisper-1']);
    expect(c.prices['local:piper']).toBeDefined();
  });
});
