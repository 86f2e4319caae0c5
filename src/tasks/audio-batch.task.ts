/**
 * `audio.batch` (low_priority): narration for many contents, one after the
 * other, with a summary. Each content gets its own audio_generations row.
 */
import { Type } from '@sinclair/typebox';
import { defineTask, type TaskContext } from '../jobs/registry.js';
import type { TaskDeps } from './deps.js';

export const AudioBatchPayload = Type.Object(
  {
    content_ids: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 500, uniqueItems: true }),
    provider: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    voice: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
  },
  { additionalProperties: false },
);

export interface AudioBatchItem {
  content_id: number;
  generation_id: number | null;
  status: 'succeeded' | 'partial' | 'failed' | 'skipped';
  /** The verifier that ran (null when the content was skipped). */
  verifier: string | null;
  /** Its verdict 0..1 (see the generation's `score`). */
  score: number | null;
  /** Measured word similarity; null when the verifier hears no words or none ran. */
  similarity: number | null;
  error: string | null;
}

export interface AudioBatchSummary {
  total: number;
  succeeded: number;
  partial: number;
  failed: number;
  skipped: number;
  cost_usd: number;
  items: AudioBatchItem[];
}

export const audioBatchTask = defineTask({
  name: 'audio.batch',
  queue: 'low_priority',
  payload: AudioBatchPayload,
  retry: { attempts: 1 },
  softTimeoutMs: 60 * 60_000,
  hardTimeoutMs: 61 * 60_000,
  description: 'narrates many contents in turn and returns a summary',
  async handler(p, ctx: TaskContext<TaskDeps>): Promise<AudioBatchSummary> {
    const media = ctx.deps.media();
    const provider = p.provider ?? media.config.defaultTtsProvider;
    const items: AudioBatchItem[] = [];
    let cost = 0;
    /** One content's narration; an outage of one content is recorded and the batch goes on. */
    const narrateOne = async (contentId: number): Promise<AudioBatchItem> => {
      const content = await media.repo.contentContext(contentId);
      if (!content || content.blocks.length === 0)
        return {
          content_id: contentId,
          generation_id: null,
          status: 'skipped',
          verifier: null,
          score: null,
          similarity: null,
          error: content ? 'no script blocks' : 'content not found',
        };
      const gen = await media.repo.createAudioGeneration({
        content_id: contentId,
        provider,
        voice: p.voice ?? content.voice,
        language: content.language,
        text_hash: null,
      });
      try {
        const out = await media.narration.narrate({
          generationId: gen.id,
          threshold: p.threshold,
          maxAttempts: p.max_attempts,
          taskId: ctx.jobId,
          signal: ctx.signal,
        });
        cost += out.costUsd;
        return {
          content_id: contentId,
          generation_id: gen.id,
          status: out.status,
          verifier: out.verifier,
          score: out.score,
          similarity: out.similarity,
          error: out.error,
        };
      } catch (err) {
        const message = (err as Error).message;
        ctx.logger.warn(
          { content: contentId, generation: gen.id, err: message },
          'batch narration failed for one content',
        );
        await media.repo.updateAudioGeneration(gen.id, {
          status: 'failed',
          error: message,
          finished_at: new Date().toISOString(),
        });
        return {
          content_id: contentId,
          generation_id: gen.id,
          status: 'failed',
          verifier: media.verifier.name,
          score: null,
          similarity: null,
          error: message,
        };
      }
    };
    for (const [i, contentId] of p.content_ids.entries()) {
      ctx.signal.throwIfAborted();
      // Traced, each content is a trace of its own linked to the batch's: a batch of 500 is not one trace.
      items.push(
        await (media.spans
          ? media.spans.fanOutItem({ task: 'audio.batch', contentId }, () => narrateOne(contentId))
          : narrateOne(contentId)),
      );
      await ctx.progress(Math.round(((i + 1) / p.content_ids.length) * 100));
    }
    const count = (s: AudioBatchItem['status']) => items.filter((x) => x.status === s).length;
    return {
      total: items.length,
      succeeded: count('succeeded'),
      partial: count('partial'),
      failed: count('failed'),
      skipped: count('skipped'),
      cost_usd: Math.round(cost * 1e6) / 1e6,
      items,
    };
  },
});
