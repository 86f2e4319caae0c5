import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { concat, durationS, encodeWav, type PcmAudio, silence } from './audio/wav.js';
import { FfmpegError, runFfmpeg } from './ffmpeg.js';
import type { MediaRepo } from './media.repo.js';
import type { MediaObserver, MediaSpans, VendorCall } from './media-observer.js';
import type { PriceTable } from '../config/media.js';
import { costOf } from './pricing.js';
import { type MediaStore, mediaKeys } from './storage/media-store.js';
import type { Verification, Verifier } from './stt/verifier.js';
import { normalizeNarration, type Replacement } from './text/normalize.js';
import type { WordMismatch } from './text/similarity.js';
import type { TtsProvider, VendorUsage } from './tts/tts-provider.js';
import { VendorError } from './vendor-http.js';

/** Where each block is in the final audio (captions are timed from these). */
export interface BlockTiming {
  block_id: number;
  sequence: number;
  start_s: number;
  end_s: number;
  /** The script text of the block (what a caption shows unless it has subtitle_text). */
  text: string;
  subtitle_text: string | null;
  /** The text as spoken. */
  spoken: string;
}

export interface AttemptReport {
  attempt: number;
  /** The verifier's verdict 0..1 (see Verification.score). */
  score: number;
  /** Measured word similarity; null when the verifier cannot hear words (acoustic). */
  similarity: number | null;
  transcript?: string;
  mismatches: WordMismatch[];
  issues: string[];
  duration_s: number;
}

/** Written next to the audio as narration.json. */
export interface NarrationManifest {
  generation_id: number;
  content_id: number;
  provider: string;
  voice: string;
  language: string;
  verifier: string;
  /** What the verifier checked, in words. */
  verifier_checks: string;
  threshold: number;
  outcome: 'succeeded' | 'partial' | 'failed';
  best_attempt: number;
  duration_s: number;
  sample_rate: number;
  wav: string;
  compressed: string | null;
  timings: BlockTiming[];
  attempts: AttemptReport[];
  replacements: { block_id: number; replacements: Replacement[] }[];
}

export type NarrationStage = 'prepare' | 'tts' | 'verify' | 'store' | 'done';

export interface NarrationProgress {
  stage: NarrationStage;
  attempt: number;
  maxAttempts: number;
  /** Blocks synthesised in this attempt. */
  block?: number;
  blocks?: number;
  /** The verifier's verdict of the attempt, 0..1. */
  score?: number;
  /** 0..100 overall. */
  percent: number;
}

export interface NarrationRequest {
  generationId: number;
  /** Similarity needed, 0..1 (default from config, 0.95). */
  threshold?: number;
  /** Attempts before settling for the best (default from config, 5). */
  maxAttempts?: number;
  taskId?: string | null;
  signal?: AbortSignal;
  onProgress?: (p: NarrationProgress) => void | Promise<void>;
}

export interface NarrationOutcome {
  generationId: number;
  status: 'succeeded' | 'partial' | 'failed';
  attempts: number;
  /** Which verifier ran: `openai` (speech-to-text) or `acoustic` (no words heard). */
  verifier: string;
  /** The verifier's verdict of the best attempt, 0..1. */
  score: number | null;
  /** Measured word similarity of the best attempt; null when none was measured. */
  similarity: number | null;
  durationS: number | null;
  audioPath: string | null;
  costUsd: number;
  error: string | null;
  /** True when the first attempt was so far off (< 0.6) that retrying was pointless. */
  structuralMismatch: boolean;
}

/** The narration cannot be produced from its input (no blocks, too long...): retrying will not help. */
export class NarrationInputError extends Error {
  override name = 'NarrationInputError';
}

export interface NarrationServiceDeps {
  repo: MediaRepo;
  storage: MediaStore;
  /** Local working directory (the compressed copy is encoded here before upload). */
  scratchDir: string;
  /** TTS providers by name. */
  tts: ReadonlyMap<string, TtsProvider>;
  verifier: Verifier;
  prices: PriceTable;
  /** ffmpeg for the compressed copy; none skips it. */
  ffmpegPath: string | undefined;
  logger: Logger;
  defaults: { threshold: number; maxAttempts: number; maxChars: number; blockPauseMs: number };
  /** Told of every vendor call and of each narration's end (metrics). */
  observer?: MediaObserver;
  /** Spans for each attempt and vendor call (tracing on). */
  spans?: MediaSpans;
}

/** Below this, a first attempt is structurally wrong (a different text, a broken voice): stop early. */
export const STRUCTURAL_MISMATCH = 0.6;

export function scriptHash(
  blocks: { text: string }[],
  provider: string,
  voice: string,
  language: string,
): string {
  const h = createHash('sha256');
  h.update(`${provider}\0${voice}\0${language}\0`);
  for (const b of blocks) h.update(`${b.text}\0`);
  return h.digest('hex');
}

interface Attempt {
  audio: PcmAudio;
  timings: BlockTiming[];
  verification: Verification;
}

/**
 * The Zero-Fault narration loop for one audio_generations row: blocks →
 * normalise → TTS block by block (timings known per block) → verify →
 * similarity; retry below the threshold up to the attempt limit, stop early on
 * a structural mismatch, keep the best attempt, store WAV + compressed copy and
 * a manifest, record every vendor call with its cost, and update the rows.
 */
export class NarrationService {
  constructor(private readonly deps: NarrationServiceDeps) {}

  async narrate(req: NarrationRequest): Promise<NarrationOutcome> {
    const { repo, storage, logger } = this.deps;
    const gen = await repo.audioGeneration(req.generationId);
    if (!gen) throw new NarrationInputError(`audio generation ${req.generationId} does not exist`);
    const ctx = await repo.contentContext(gen.content_id);
    if (!ctx) throw new NarrationInputError(`content ${gen.content_id} does not exist`);
    const provider = this.deps.tts.get(gen.provider);
    const threshold = req.threshold ?? this.deps.defaults.threshold;
    const maxAttempts = req.maxAttempts ?? this.deps.defaults.maxAttempts;
    let costUsd = 0;
    const emit = async (p: Omit<NarrationProgress, 'maxAttempts'>) => {
      await req.onProgress?.({ ...p, maxAttempts });
    };
    const fail = async (error: string, attempts = 0): Promise<NarrationOutcome> => {
      await repo.updateAudioGeneration(gen.id, {
        status: 'failed',
        error,
        attempts,
        cost_usd: costUsd,
        finished_at: new Date().toISOString(),
      });
      await emit({ stage: 'done', attempt: attempts, percent: 100 });
      this.deps.observer?.narrationFinished(gen.provider, 'failed', attempts, null);
      return {
        generationId: gen.id,
        status: 'failed',
        attempts,
        verifier: this.deps.verifier.name,
        score: null,
        similarity: null,
        durationS: null,
        audioPath: null,
        costUsd,
        error,
        structuralMismatch: false,
      };
    };

    await repo.updateAudioGeneration(gen.id, {
      status: 'running',
      error: null,
      task_id: req.taskId ?? gen.task_id,
      verifier: this.deps.verifier.name,
    });
    await emit({ stage: 'prepare', attempt: 0, percent: 0 });
    if (!provider) return fail(`unknown TTS provider ${gen.provider}`);
    const voice = gen.voice ?? provider.defaultVoice(gen.language);
    const blocks = ctx.blocks
      .map((b) => ({ block: b, norm: normalizeNarration(b.text, gen.language) }))
      .filter((b) => b.norm.text.trim() !== '');
    if (blocks.length === 0) return fail('the content has no script text to narrate');
    const chars = blocks.reduce((n, b) => n + [...b.block.text].length, 0);
    if (chars > this.deps.defaults.maxChars)
      return fail(`the script has ${chars} characters; at most ${this.deps.defaults.maxChars} are narrated`);
    const tooLong = blocks.find((b) => [...b.norm.text].length > provider.maxCharsPerCall);
    if (tooLong)
      return fail(
        `block ${tooLong.block.sequence} is longer than ${provider.maxCharsPerCall} characters (${provider.name})`,
      );
    const expected = blocks.map((b) => b.norm.text).join(' ');
    const pauseS = this.deps.defaults.blockPauseMs / 1000;

    const { observer, spans } = this.deps;
    const vendorCall = (call: VendorCall) => {
      observer?.vendorCall(call);
      spans?.vendorCall(call);
    };
    /** Times one vendor call; a failed one is reported (no usage is recorded for it) and rethrown. */
    const timed = async <T>(
      what: { provider: string; model: string | null; operation: 'tts' | 'stt'; unit: 'char' | 'second' },
      call: () => Promise<T>,
    ): Promise<{ value: T; latencyS: number; startedAt: number }> => {
      const startedAt = Date.now();
      const t0 = performance.now();
      try {
        return { value: await call(), latencyS: (performance.now() - t0) / 1000, startedAt };
      } catch (err) {
        vendorCall({
          ...what,
          outcome: 'error',
          latencyS: (performance.now() - t0) / 1000,
          units: 0,
          costUsd: 0,
          startedAt,
        });
        throw err;
      }
    };
    const record = async (usage: VendorUsage, latencyS: number, startedAt: number) => {
      const cost = costOf(this.deps.prices, usage);
      if (!cost.known)
        logger.warn(
          { provider: usage.provider, model: usage.model },
          'no price for this vendor model; cost recorded as 0',
        );
      costUsd += cost.usd;
      await repo.recordUsage({
        ...usage,
        cost_usd: cost.usd,
        campaign_id: ctx.campaign_id,
        content_id: ctx.content_id,
        task_id: req.taskId ?? null,
      });
      vendorCall({
        ...usage,
        outcome: 'ok',
        latencyS,
        costUsd: cost.usd,
        campaignId: ctx.campaign_id,
        startedAt,
      });
    };

    let best: (Attempt & { attempt: number }) | undefined;
    const reports: AttemptReport[] = [];
    let structural = false;
    let attempt = 0;
    try {
      for (attempt = 1; attempt <= maxAttempts; attempt++) {
        const base = ((attempt - 1) / maxAttempts) * 90;
        const span = 90 / maxAttempts;
        /** One attempt: every block through TTS, then the verifier over the whole. */
        const synthesizeAndVerify = async (): Promise<Attempt> => {
          const parts: PcmAudio[] = [];
          const timings: BlockTiming[] = [];
          let at = 0;
          for (const [i, { block, norm }] of blocks.entries()) {
            req.signal?.throwIfAborted();
            const {
              value: r,
              latencyS,
              startedAt,
            } = await timed(
              { provider: provider.name, model: provider.model, operation: 'tts', unit: 'char' },
              () =>
                provider.synthesize({
                  text: norm.text,
                  language: gen.language,
                  voice,
                  attempt,
                  signal: req.signal,
                }),
            );
            await record(r.usage, latencyS, startedAt);
            if (i > 0) {
              const gap = silence(r.audio.sampleRate, pauseS);
              parts.push(gap);
              at += durationS(gap);
            }
            parts.push(r.audio);
            const d = durationS(r.audio);
            timings.push({
              block_id: block.id,
              sequence: block.sequence,
              start_s: round3(at),
              end_s: round3(at + d),
              text: block.text,
              subtitle_text: block.subtitle_text,
              spoken: norm.text,
            });
            at += d;
            await emit({
              stage: 'tts',
              attempt,
              block: i + 1,
              blocks: blocks.length,
              percent: base + span * 0.7 * ((i + 1) / blocks.length),
            });
          }
          const audio = concat(parts);
          await emit({ stage: 'verify', attempt, percent: base + span * 0.8 });
          const verified = await timed(
            { provider: this.deps.verifier.name, model: null, operation: 'stt', unit: 'second' },
            () =>
              this.deps.verifier.verify({
                audio,
                wav: encodeWav(audio),
                expectedText: expected,
                language: gen.language,
                signal: req.signal,
              }),
          );
          const verification = verified.value;
          if (verification.usage) await record(verification.usage, verified.latencyS, verified.startedAt);
          return { audio, timings, verification };
        };
        const { audio, timings, verification } = spans
          ? await spans.narrationAttempt(
              { generationId: gen.id, provider: provider.name, attempt, maxAttempts },
              async (verdict) => {
                const a = await synthesizeAndVerify();
                verdict(a.verification);
                return a;
              },
            )
          : await synthesizeAndVerify();
        reports.push({
          attempt,
          score: round4(verification.score),
          similarity: verification.similarity === null ? null : round4(verification.similarity),
          transcript: verification.transcript,
          mismatches: verification.mismatches,
          issues: verification.issues,
          duration_s: round3(durationS(audio)),
        });
        if (!best || verification.score > best.verification.score)
          best = { audio, timings, verification, attempt };
        await repo.updateAudioGeneration(gen.id, {
          attempts: attempt,
          score: best.verification.score,
          similarity: best.verification.similarity,
          cost_usd: costUsd,
        });
        await emit({ stage: 'verify', attempt, score: verification.score, percent: base + span });
        logger.info(
          {
            generation: gen.id,
            attempt,
            verifier: this.deps.verifier.name,
            score: verification.score,
            similarity: verification.similarity,
            issues: verification.issues,
          },
          'narration attempt verified',
        );
        if (verification.score >= threshold) break;
        if (attempt === 1 && verification.score < STRUCTURAL_MISMATCH) {
          structural = true;
          break;
        }
      }
    } catch (err) {
      attempt = Math.min(attempt, maxAttempts);
      if (err instanceof VendorError && !err.retryable) return fail(`${err.vendor}: ${err.message}`, attempt);
      // Transient (vendor down, timeout, abort): record and let the job system retry the task.
      await repo.updateAudioGeneration(gen.id, {
        error: `retrying: ${(err as Error).message}`,
        attempts: attempt,
        cost_usd: costUsd,
      });
      throw err;
    }
    if (!best) return fail('no attempt completed', attempt);

    const attemptsMade = Math.min(attempt, maxAttempts);
    const sim = best.verification.score;
    const measured = best.verification.similarity;
    const status = sim >= threshold ? 'succeeded' : sim >= STRUCTURAL_MISMATCH ? 'partial' : 'failed';
    await emit({ stage: 'store', attempt: attemptsMade, percent: 92 });
    const dir = mediaKeys.audioDir(gen.id);
    const wavBytes = encodeWav(best.audio);
    const wavRel = `${dir}/narration.wav`;
    await storage.put(wavRel, wavBytes, { contentType: 'audio/wav' });
    const compressed = await this.compress(wavBytes, `${dir}/narration.m4a`);
    const manifest: NarrationManifest = {
      generation_id: gen.id,
      content_id: ctx.content_id,
      provider: provider.name,
      voice,
      language: gen.language,
      verifier: this.deps.verifier.name,
      verifier_checks: this.deps.verifier.checks,
      threshold,
      outcome: status,
      best_attempt: best.attempt,
      duration_s: round3(durationS(best.audio)),
      sample_rate: best.audio.sampleRate,
      wav: wavRel,
      compressed,
      timings: best.timings,
      attempts: reports,
      replacements: blocks.map((b) => ({ block_id: b.block.id, replacements: b.norm.replacements })),
    };
    // The manifest is written last: a narration is found (manifest()) only once all its files are stored.
    await storage.put(`${dir}/narration.json`, JSON.stringify(manifest, null, 2), {
      contentType: 'application/json',
    });
    const error =
      status === 'succeeded'
        ? null
        : structural
          ? `structural mismatch: ${this.deps.verifier.name} score ${round4(sim)} on the first attempt (below ${STRUCTURAL_MISMATCH})`
          : `best ${this.deps.verifier.name} score ${round4(sim)} after ${attemptsMade} attempts is below the threshold ${threshold}`;
    await repo.updateAudioGeneration(gen.id, {
      status,
      audio_path: wavRel,
      duration_s: manifest.duration_s,
      score: round4(sim),
      similarity: measured === null ? null : round4(measured),
      attempts: attemptsMade,
      cost_usd: costUsd,
      text_hash: scriptHash(ctx.blocks, provider.name, voice, gen.language),
      voice,
      error,
      finished_at: new Date().toISOString(),
    });
    if (status === 'succeeded') await repo.advanceContentStatus(ctx.content_id, 'audio_ready');
    await emit({ stage: 'done', attempt: attemptsMade, score: sim, percent: 100 });
    observer?.narrationFinished(
      provider.name,
      status,
      attemptsMade,
      measured === null ? null : round4(measured),
    );
    return {
      generationId: gen.id,
      status,
      attempts: attemptsMade,
      verifier: this.deps.verifier.name,
      score: round4(sim),
      similarity: measured === null ? null : round4(measured),
      durationS: manifest.duration_s,
      audioPath: wavRel,
      costUsd,
      error,
      structuralMismatch: structural,
    };
  }

  /** The manifest of a stored narration (timings for captions), or undefined when none is stored. */
  async manifest(generationId: number): Promise<NarrationManifest | undefined> {
    const bytes = await this.deps.storage.read(`${mediaKeys.audioDir(generationId)}/narration.json`);
    return bytes ? (JSON.parse(bytes.toString('utf8')) as NarrationManifest) : undefined;
  }

  /** Encodes the AAC copy in the scratch directory and stores it; null when ffmpeg is missing or fails. */
  private async compress(wav: Uint8Array, outKey: string): Promise<string | null> {
    if (!this.deps.ffmpegPath) return null;
    const work = path.join(this.deps.scratchDir, `narration-${randomUUID()}`);
    await fs.mkdir(work, { recursive: true });
    try {
      const wavFile = path.join(work, 'narration.wav');
      const m4aFile = path.join(work, 'narration.m4a');
      await fs.writeFile(wavFile, wav);
      await runFfmpeg({
        ffmpeg: this.deps.ffmpegPath,
        args: ['-i', wavFile, '-c:a', 'aac', '-b:a', '96k', '-movflags', '+faststart', m4aFile],
        timeoutMs: 120_000,
      });
      await this.deps.storage.putFile(outKey, m4aFile, { contentType: 'audio/mp4' });
      return outKey;
    } catch (err) {
      // The WAV is the narration; a missing compressed copy is logged, not fatal.
      if (!(err instanceof FfmpegError)) throw err;
      this.deps.logger.warn({ err }, 'could not write the compressed narration copy');
      return null;
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  }
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
const round4 = (v: number) => Math.round(v * 10000) / 10000;
