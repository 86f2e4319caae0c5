import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeWav } from '../../src/media/audio/wav.js';

/**
 * A local fake of the OpenAI-compatible speech and transcription APIs and of
 * ElevenLabs' text-to-speech, speaking their wire formats: JSON in, WAV or raw
 * PCM out; multipart in, `{"text"}` out; vendor-style errors with Retry-After.
 */
export interface FakeCall {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  json?: Record<string, unknown>;
  form?: Record<string, string>;
  file?: { name: string; type: string; bytes: Uint8Array };
}

export interface FakeReply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Wait before answering, ms. */
  delayMs?: number;
}

export type Responder = (call: FakeCall) => FakeReply | Promise<FakeReply>;

/** A tone of `seconds` at `rate`, as a vendor would return speech. */
export function toneWav(seconds: number, rate = 24_000, streamed = true): Buffer {
  const samples = new Int16Array(Math.round(seconds * rate));
  for (let i = 0; i < samples.length; i++)
    samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / rate));
  const wav = encodeWav({ sampleRate: rate, samples });
  // OpenAI streams WAV with unknown sizes in the header.
  if (streamed) {
    wav.writeUInt32LE(0xffffffff, 4);
    wav.writeUInt32LE(0xffffffff, 40);
  }
  return wav;
}

export function tonePcm(seconds: number, rate = 24_000): Buffer {
  return toneWav(seconds, rate, false).subarray(44);
}

export const apiError = (
  status: number,
  message: string,
  headers: Record<string, string> = {},
): FakeReply => ({
  status,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify({ error: { message, type: 'invalid_request_error', code: null } }),
});

/** Default behaviour: speech of 60 ms per character; transcription echoing `transcript`. */
export class FakeVendors {
  readonly calls: FakeCall[] = [];
  /** Replies used first, in order, before `responder` (any route). */
  readonly queue: Responder[] = [];
  /** Replies for one route (path containing the key), in order, used before `queue`. */
  private readonly routeQueues = new Map<string, Responder[]>();
  transcript = '';
  private server: http.Server | undefined;
  url = '';

  responder: Responder = (call) => {
    if (call.path.endsWith('/audio/speech')) {
      const input = String(call.json?.input ?? '');
      return {
        status: 200,
        headers: { 'content-type': 'audio/wav' },
        body: toneWav(0.06 * [...input].length),
      };
    }
    if (call.path.endsWith('/audio/transcriptions')) {
      return {
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: this.transcript }),
      };
    }
    if (call.path.startsWith('/v1/text-to-speech/')) {
      const text = String(call.json?.text ?? '');
      const rate = Number((call.query.get('output_format') ?? 'pcm_24000').split('_')[1]);
      return {
        status: 200,
        headers: { 'content-type': 'audio/pcm' },
        body: tonePcm(0.06 * [...text].length, rate),
      };
    }
    return apiError(404, `no route ${call.path}`);
  };

  /** Queues replies for requests whose path contains `route` (e.g. '/audio/transcriptions'). */
  reply(route: string, ...responders: Responder[]): void {
    const q = this.routeQueues.get(route) ?? [];
    q.push(...responders);
    this.routeQueues.set(route, q);
  }

  callsTo(suffix: string): FakeCall[] {
    return this.calls.filter((c) => c.path.endsWith(suffix) || c.path.includes(suffix));
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void this.handle(req, Buffer.concat(chunks)).then(
          async (reply) => {
            if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
            if (res.destroyed) return;
            res.writeHead(reply.status, reply.headers);
            res.end(reply.body);
          },
          (err: unknown) => {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(String(err));
          },
        );
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  private async handle(req: http.IncomingMessage, body: Buffer): Promise<FakeReply> {
    const u = new URL(req.url ?? '/', 'http://fake');
    const call: FakeCall = {
      method: req.method ?? 'GET',
      path: u.pathname,
      query: u.searchParams,
      headers: req.headers,
    };
    const type = String(req.headers['content-type'] ?? '');
    if (type.startsWith('application/json'))
      call.json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    if (type.startsWith('multipart/form-data')) {
      // Parse with the platform's own multipart parser, as a server would.
      const form = await new Request('http://fake/', {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      }).formData();
      call.form = {};
      for (const [k, v] of form.entries()) {
        if (typeof v === 'string') call.form[k] = v;
        else call.file = { name: v.name, type: v.type, bytes: new Uint8Array(await v.arrayBuffer()) };
      }
    }
    this.calls.push(call);
    const route = [...this.routeQueues.entries()].find(([k, q]) => q.length > 0 && call.path.includes(k));
    const next = route ? route[1].shift() : this.queue.shift();
    return (next ?? this.responder)(call);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
