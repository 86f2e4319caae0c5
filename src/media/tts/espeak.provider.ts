import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { parseWav } from '../audio/wav.js';
import type { TtsProvider, TtsRequest, TtsResult } from './tts-provider.js';

/**
 * eSpeak NG compiled to WebAssembly (npm `espeak-ng`), offline. The package
 * only exports its CLI's `main`, which runs once per instance; so a worker
 * thread keeps the compiled WebAssembly module warm and creates a fresh,
 * cheap instance per call (no state leaks between calls), off the event loop.
 */

export interface EspeakOptions {
  /** Words per minute (espeak `-s`, default 175). */
  speedWpm: number;
  /** Longest time one synthesis may take, ms (default 30 000). */
  timeoutMs: number;
}

/** Voices of the bundled espeak-ng data that narration supports, by language. */
const VOICES: Record<string, string> = {
  ko: 'ko',
  en: 'en-us',
  'en-us': 'en-us',
  'en-gb': 'en-gb',
  ja: 'ja',
  zh: 'cmn',
  cmn: 'cmn',
  es: 'es',
  fr: 'fr',
  de: 'de',
};

// Plain JavaScript run in the worker thread (works the same under tsx, vitest and compiled dist).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const modulePromise = WebAssembly.compile(fs.readFileSync(workerData.wasmPath));
const factoryPromise = import(workerData.jsUrl).then((m) => m.default);
parentPort.on('message', async (msg) => {
  try {
    const [module, factory] = await Promise.all([modulePromise, factoryPromise]);
    const errors = [];
    const es = await factory({
      arguments: ['-b', '1', '-v', msg.voice, '-s', String(msg.speed), '-w', '/out.wav', '-f', '/in.txt'],
      preRun: [(m) => m.FS.writeFile('/in.txt', msg.text)],
      print: () => {},
      printErr: (line) => errors.push(line),
      instantiateWasm: (imports, done) => {
        WebAssembly.instantiate(module, imports).then((instance) => done(instance, module), (err) => errors.push(String(err)));
        return {};
      },
    });
    let wav;
    try { wav = es.FS.readFile('/out.wav'); } catch (err) { throw new Error('espeak produced no audio: ' + errors.join('; ')); }
    parentPort.postMessage({ id: msg.id, wav }, [wav.buffer]);
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String(err && err.message ? err.message : err) });
  }
});
`;

interface Pending {
  resolve: (wav: Uint8Array) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class EspeakProvider implements TtsProvider {
  readonly name = 'espeak';
  readonly model = 'espeak-ng';
  readonly maxCharsPerCall = 20_000;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly opts: EspeakOptions) {}

  defaultVoice(language: string): string {
    const lang = language.toLowerCase();
    return VOICES[lang] ?? VOICES[lang.split(/[-_]/)[0] ?? ''] ?? 'en-us';
  }

  isKnownVoice(voice: string): boolean {
    return Object.values(VOICES).includes(voice) || voice in VOICES;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const require = createRequire(import.meta.url);
    const jsPath = require.resolve('espeak-ng');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { wasmPath: jsPath.replace(/\.js$/, '.wasm'), jsUrl: new URL(`file://${jsPath}`).href },
    });
    worker.unref();
    worker.on('message', (msg: { id: number; wav?: Uint8Array; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.wav) p.resolve(msg.wav);
      else p.reject(new Error(`espeak failed: ${msg.error ?? 'unknown error'}`));
    });
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) => {
      this.worker = undefined;
      this.failAll(new Error(`espeak worker exited with code ${code}`));
    });
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }

  async synthesize(req: TtsRequest): Promise<TtsResult> {
    const voice = req.voice ?? this.defaultVoice(req.language);
    if (!this.isKnownVoice(voice)) throw new Error(`unknown espeak voice ${voice}`);
    const worker = this.ensureWorker();
    const id = this.nextId++;
    const wav = await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // A stuck synthesis poisons the worker: replace it.
        void worker.terminate();
        reject(new Error(`espeak did not finish within ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      // eSpeak is deterministic: a retry only differs if delivered differently, so each
      // retry speaks 8 % slower (clearer), down to 60 % of the configured rate.
      const speed = Math.round(this.opts.speedWpm * Math.max(0.6, 1 - 0.08 * ((req.attempt ?? 1) - 1)));
      worker.postMessage({
        id,
        text: req.text,
        voice: this.isKnownVoice(voice) ? (VOICES[voice] ?? voice) : voice,
        speed,
      });
    });
    return {
      audio: parseWav(wav),
      usage: {
        provider: this.name,
        model: this.model,
        operation: 'tts',
        units: [...req.text].length,
        unit: 'char',
      },
    };
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
