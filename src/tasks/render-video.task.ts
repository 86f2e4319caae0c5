/**
 * `video.render` (default, sandboxed): one renders row → MP4 + thumbnail with
 * ffmpeg (see src/media/render/). ffmpeg failures are retried; the last attempt
 * marks the row failed with the tail of ffmpeg's stderr.
 */
import { Type } from '@sinclair/typebox';
import { PermanentError } from '../jobs/errors.js';
import { defineTask, type TaskContext, type TaskTimeouts } from '../jobs/registry.js';
import { RENDER_QUALITIES } from '../media/render/presets.js';
import { RenderInputError, type RenderOutcome } from '../media/render/render.service.js';
import type { TaskDeps } from './deps.js';

export const RenderVideoPayload = Type.Object(
  {
    render_id: Type.Integer({ minimum: 1 }),
    quality: Type.Union(RENDER_QUALITIES.map((q) => Type.Literal(q))),
    /** Render without narration, timed by block durations. */
    silent: Type.Optional(Type.Boolean()),
    /** Length of the video to render, s (the narration's, or the blocks' when silent): sets the timeouts. */
    duration_s: Type.Optional(Type.Number({ minimum: 0, maximum: 24 * 3600 })),
  },
  { additionalProperties: false },
);

/** Render timeouts: the shortest a render gets, the longest, and what it gets without a known length. */
export const RENDER_TIMEOUT_FLOOR_MS = 2 * 60_000;
export const RENDER_TIMEOUT_CEILING_MS = 30 * 60_000;
const RENDER_TIMEOUT_UNKNOWN_MS = 10 * 60_000;
/** Time allowed per second of video (ffmpeg at the slowest preset on a small, busy machine), and once per render. */
const RENDER_MS_PER_VIDEO_S = 10_000;
const RENDER_BASE_MS = 60_000;
/** The hard timeout's margin over the soft one: time for ffmpeg to stop after the abort. */
const RENDER_HARD_MARGIN_MS = 30_000;

/**
 * A render's timeouts follow the length of what it renders, within a floor and a ceiling: a hung
 * 20-second render is killed after a few minutes, not the 11 of a fixed timeout (times 3 attempts).
 */
export function renderTimeouts(p: { duration_s?: number }): TaskTimeouts {
  const soft =
    p.duration_s === undefined
      ? RENDER_TIMEOUT_UNKNOWN_MS
      : Math.min(
          RENDER_TIMEOUT_CEILING_MS,
          Math.max(RENDER_TIMEOUT_FLOOR_MS, RENDER_BASE_MS + RENDER_MS_PER_VIDEO_S * p.duration_s),
        );
  return { softTimeoutMs: soft, hardTimeoutMs: soft + RENDER_HARD_MARGIN_MS };
}

export const renderVideoTask = defineTask({
  name: 'video.render',
  queue: 'default',
  payload: RenderVideoPayload,
  retry: { attempts: 3, backoff: { baseMs: 10_000 } },
  timeouts: renderTimeouts,
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
