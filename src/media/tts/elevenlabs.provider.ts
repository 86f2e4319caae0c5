import { pcmFromS16le } from '../audio/wav.js';
import type { RetryPolicy } from '../../config/media.js';
import { readBody, VendorError, vendorFetch } from '../vendor-http.js';
import type { TtsProvider, TtsRequest, TtsResult } from './tts-provider.js';

export interface ElevenLabsOptions {
  /** API root, default https://api.elevenlabs.io */
  baseUrl: string;
  apiKey: string | undefined;
  /** `eleven_multilingual_v2` speaks Korean. */
  model: string;
  defaultVoiceId: string;
  policy: RetryPolicy;
}

const SAMPLE_RATE = 24_000;

/** ElevenLabs `POST /v1/text-to-speech/{voice_id}?output_format=pcm_24000` (raw 16-bit PCM back). */
export class ElevenLabsProvider implements TtsProvider {
  readonly name = 'elevenlabs';
  readonly maxCharsPerCall = 5000;
  constructor(private readonly opts: ElevenLabsOptions) {}

  get model(): string {
    return this.opts.model;
  }

  defaultVoice(): string {
    return this.opts.defaultVoiceId;
  }

  /** Voice ids are opaque 20-character strings; the vendor has the list. */
  isKnownVoice(voice: string): boolean {
    return /^[A-Za-z0-9]{10,40}$/.test(voice);
  }

  async synthesize(req: TtsRequest): Promise<TtsResult> {
    const voice = req.voice ?? this.opts.defaultVoiceId;
    const languageCode = req.language.toLowerCase().split(/[-_]/)[0];
    const res = await vendorFetch({
      vendor: this.name,
      url: `${this.opts.baseUrl.replace(/\/+$/, '')}/v1/text-to-speech/${encodeURIComponent(voice)}?output_format=pcm_${SAMPLE_RATE}`,
      headers: {
        'content-type': 'application/json',
        accept: 'audio/pcm',
        ...(this.opts.apiKey ? { 'xi-api-key': this.opts.apiKey } : {}),
      },
      body: () => JSON.stringify({ text: req.text, model_id: this.opts.model, language_code: languageCode }),
      policy: this.opts.policy,
      signal: req.signal,
    });
    const bytes = await readBody(this.name, res);
    if (bytes.byteLength < 2 || bytes.byteLength % 2 !== 0)
      throw new VendorError(
        this.name,
        'bad_response',
        `elevenlabs returned ${bytes.byteLength} bytes, not 16-bit PCM`,
      );
    return {
      audio: pcmFromS16le(bytes, SAMPLE_RATE),
      usage: {
        provider: this.name,
        model: this.opts.model,
        operation: 'tts',
        units: [...req.text].length,
        unit: 'char',
      },
    };
  }

  async close(): Promise<void> {}
}
