/**
 * `video.render` (default, sandboxed): one renders row → MP4 + thumbnail with
 * ffmpeg (see src/media/render/). ffmpeg failures are retried; the last attempt
 * marks the row failed with the tail of ffmpeg's stderr.
 */
import { Type } from '@sinclair/typebox';
import { PermanentError } from '../jobs/errors.js';
import { defineTask, type TaskContext } from '../jobs/registry.js';
import { RENDER_QUALITIES } from '../media/render/presets.js';
import { RenderInputError, type RenderOutcome } from '../media/render/render.service.js';
import type { TaskDeps } from './deps.js';

export const RenderVideoPayload = Type.Object(
  {
    render_id: Type.Integer({ minimum: 1 }),
    quality: Type.Union(RENDER_QUALITIES.map((q) => Type.Literal(q))),
    /** Render without narration, timed by block durations. */
    silent: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const renderVideoTask = defineTask({
  name: 'video.render',
  queue: 'default',
  payload: RenderVideoPayload,
  retry: { attempts: 3, backoff: { baseMs: 10_000 } },
  softTimeoutMs: 10 * 60_000,
  hardTimeoutMs: 11 * 60_000,
  sandboxed: true,
  description: 'renders a content to an H.264/AAC MP4 for its platform preset, with captions and a thumbnail',
  async handler(p, ctx: TaskContext<TaskDeps>): Promise<RenderOutcome> {
    const media = ctx.deps.media();
    try {
      return await media.renders.render({
        renderId: p.render_id,
        quality: p.quality,
        silent: p.silent,
        taskId: ctx.jobId,
        signal: ctx.signal,
        onProgress: (v) => void ctx.progress(Math.round(v)),
      });
    } catch (err) {
      const final = ctx.attempt >= ctx.maxAttempts;
      if (err instanceof RenderInputError || final) {
        await media.renders.markFailed(p.render_id, (err as Error).message);
        throw new PermanentError((err as Error).message, { cause: err });
      }
      throw err;
    }
  },
});
