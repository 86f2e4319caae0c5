import { parseWav, WavFormatError } from '../audio/wav.js';
import type { RetryPolicy } from '../../config/media.js';
import { readBody, VendorError, vendorFetch } from '../vendor-http.js';
import type { TtsProvider, TtsRequest, TtsResult } from './tts-provider.js';

export interface OpenAiTtsOptions {
  /** API root, e.g. https://api.openai.com/v1 or a compatible server's. */
  baseUrl: string;
  apiKey: string | undefined;
  /** `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`... */
  model: string;
  defaultVoice: string;
  /** Voices accepted at the API. */
  voices: readonly string[];
  policy: RetryPolicy;
}

/** The documented built-in voices of OpenAI's speech endpoint. */
export const OPENAI_VOICES = [
  'alloy',
  'ash',
  'ballad',
  'coral',
  'echo',
  'fable',
  'nova',
  'onyx',
  'sage',
  'shimmer',
  'verse',
] as const;

/** OpenAI-compatible `POST {base}/audio/speech` with `response_format: "wav"`. */
export class OpenAiTtsProvider implements TtsProvider {
  readonly name = 'openai';
  readonly maxCharsPerCall = 4096;
  constructor(private readonly opts: OpenAiTtsOptions) {}

  get model(): string {
    return this.opts.model;
  }

  defaultVoice(): string {
    return this.opts.defaultVoice;
  }

  isKnownVoice(voice: string): boolean {
    return this.opts.voices.includes(voice);
  }

  async synthesize(req: TtsRequest): Promise<TtsResult> {
    const voice = req.voice ?? this.opts.defaultVoice;
    const res = await vendorFetch({
      vendor: this.name,
      url: `${this.opts.baseUrl.replace(/\/+$/, '')}/audio/speech`,
      headers: {
        'content-type': 'application/json',
        ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
      },
      body: () => JSON.stringify({ model: this.opts.model, input: req.text, voice, response_format: 'wav' }),
      policy: this.opts.policy,
      signal: req.signal,
    });
    const bytes = await readBody(this.name, res);
    try {
      return {
        audio: parseWav(bytes),
        usage: {
          provider: this.name,
          model: this.opts.model,
          operation: 'tts',
          units: [...req.text].length,
          unit: 'char',
        },
      };
    } catch (err) {
      if (err instanceof WavFormatError)
        throw new VendorError(
          this.name,
          'bad_response',
          `openai speech returned unusable audio: ${err.message}`,
        );
      throw err;
    }
  }

  async close(): Promise<void> {}
}
