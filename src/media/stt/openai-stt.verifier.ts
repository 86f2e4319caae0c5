import { similarity } from '../text/similarity.js';
import { durationS } from '../audio/wav.js';
import type { RetryPolicy } from '../../config/media.js';
import { readBody, VendorError, vendorFetch } from '../vendor-http.js';
import { type Verification, type Verifier, VERIFIER_CHECKS, type VerifyRequest } from './verifier.js';

export interface OpenAiSttOptions {
  /** API root: https://api.openai.com/v1, or a self-hosted Whisper server's. */
  baseUrl: string;
  apiKey: string | undefined;
  /** `whisper-1`, `gpt-4o-transcribe`, or the self-hosted model name. */
  model: string;
  policy: RetryPolicy;
}

/**
 * Speech-to-text through OpenAI-compatible `POST {base}/audio/transcriptions`
 * (multipart: file, model, language, response_format=json → `{"text"}`),
 * then similarity of the transcript to the script.
 */
export class OpenAiSttVerifier implements Verifier {
  readonly name = 'openai';
  readonly checks = VERIFIER_CHECKS.openai;
  constructor(private readonly opts: OpenAiSttOptions) {}

  async verify(req: VerifyRequest): Promise<Verification> {
    const language = req.language.toLowerCase().split(/[-_]/)[0] ?? 'ko';
    const res = await vendorFetch({
      vendor: 'openai-stt',
      url: `${this.opts.baseUrl.replace(/\/+$/, '')}/audio/transcriptions`,
      headers: this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {},
      body: () => {
        const form = new FormData();
        form.append('file', new Blob([req.wav], { type: 'audio/wav' }), 'narration.wav');
        form.append('model', this.opts.model);
        form.append('language', language);
        form.append('response_format', 'json');
        return form;
      },
      policy: this.opts.policy,
      signal: req.signal,
    });
    const body = new TextDecoder().decode(await readBody('openai-stt', res));
    let text: unknown;
    try {
      text = (JSON.parse(body) as { text?: unknown }).text;
    } catch (err) {
      throw new VendorError(
        'openai-stt',
        'bad_response',
        `transcription is not JSON: ${(err as Error).message}`,
      );
    }
    if (typeof text !== 'string')
      throw new VendorError('openai-stt', 'bad_response', 'transcription has no "text"');
    const sim = similarity(req.expectedText, text, { language });
    return {
      score: sim.ratio,
      similarity: sim.ratio,
      transcript: text,
      mismatches: sim.mismatches,
      issues: [],
      usage: {
        provider: 'openai',
        model: this.opts.model,
        operation: 'stt',
        units: Math.round(durationS(req.audio) * 1000) / 1000,
        unit: 'second',
      },
    };
  }
}
