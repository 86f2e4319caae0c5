/**
 * `audio.generate` (high_priority): the Zero-Fault narration of one
 * audio_generations row (see src/media/narration.service.ts). Enqueued by
 * POST /api/v1/contents/{id}/audio with the idempotency key `audio:<generation id>`.
 */
import { Type } from '@sinclair/typebox';
import { PermanentError, RetryAfterError } from '../jobs/errors.js';
import { defineTask, type TaskContext } from '../jobs/registry.js';
import { NarrationInputError, type NarrationOutcome } from '../media/narration.service.js';
import { VendorError } from '../media/vendor-http.js';
import type { TaskDeps } from './deps.js';

export const GenerateAudioPayload = Type.Object(
  {
    generation_id: Type.Integer({ minimum: 1 }),
    /** Similarity needed, 0..1 (default NARRATION_THRESHOLD, 0.95). */
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** Attempts before settling for the best (default NARRATION_MAX_ATTEMPTS, 5). */
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
  },
  { additionalProperties: false },
);

/** Maps a narration error to what the job system should do next; marks the row failed when no attempt is left. */
export async function narrationError(
  err: unknown,
  generationId: number,
  ctx: TaskContext<TaskDeps>,
): Promise<never> {
  const media = ctx.deps.media();
  const final = ctx.attempt >= ctx.maxAttempts;
  if (err instanceof NarrationInputError || final) {
    await media.repo.updateAudioGeneration(generationId, {
      status: 'failed',
      error: (err as Error).message,
      finished_at: new Date().toISOString(),
    });
    throw new PermanentError((err as Error).message, { cause: err });
  }
  if (err instanceof VendorError && err.retryAfterMs !== undefined)
    throw new RetryAfterError(err.message, err.retryAfterMs, { cause: err });
  throw err;
}

export const generateAudioTask = defineTask({
  name: 'audio.generate',
  queue: 'high_priority',
  payload: GenerateAudioPayload,
  retry: { attempts: 3, backoff: { baseMs: 5000 } },
  softTimeoutMs: 10 * 60_000,
  hardTimeoutMs: 11 * 60_000,
  description: 'Zero-Fault narration: normalise, TTS per block, verify, retry below the threshold, store',
  async handler(p, ctx: TaskContext<TaskDeps>): Promise<NarrationOutcome> {
    const media = ctx.deps.media();
    try {
      return await media.narration.narrate({
        generationId: p.generation_id,
        threshold: p.threshold,
        maxAttempts: p.max_attempts,
        taskId: ctx.jobId,
        signal: ctx.signal,
        onProgress: (e) => ctx.progress(Math.round(e.percent)),
      });
    } catch (err) {
      return narrationError(err, p.generation_id, ctx);
    }
  },
});
