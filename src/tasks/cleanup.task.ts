/**
 * `maintenance.cleanup` (low_priority): ends the render and narration rows
 * whose task ended without finishing them (src/media/unfinished-rows.ts), then
 * prunes finished jobs beyond the retention (JOBS_KEEP_LAST per queue and state,
 * JOBS_KEEP_HOURS) and task_runs rows older than JOBS_TASK_RUNS_KEEP_DAYS. Workers enqueue it every
 * JOBS_CLEANUP_INTERVAL_S with an idempotency key naming the interval, so one
 * run happens per interval however many workers there are.
 */
import { Type } from '@sinclair/typebox';
import { defineTask } from '../jobs/registry.js';
import { settleUnfinishedRows } from '../media/unfinished-rows.js';
import type { TaskDeps } from './deps.js';

export const cleanupTask = defineTask({
  name: 'maintenance.cleanup',
  queue: 'low_priority',
  payload: Type.Object({}, { additionalProperties: false }),
  retry: { attempts: 3, backoff: { baseMs: 10_000 } },
  softTimeoutMs: 5 * 60_000,
  hardTimeoutMs: 6 * 60_000,
  description:
    'ends media rows whose task ended without them, prunes finished jobs and old task_runs per retention',
  async handler(_p, ctx: { deps: TaskDeps }) {
    const { jobs } = ctx.deps.config;
    // Before pruning: a row is best ended with its task's own reason, while the task is still stored.
    const mediaRowsSettled = await settleUnfinishedRows(ctx.deps.media().repo, ctx.deps.queue());
    const jobsRemoved = await ctx.deps
      .queue()
      .prune({ keepLast: jobs.keepLast, maxAgeMs: jobs.keepHours * 3_600_000 });
    const cutoff = new Date(Date.now() - jobs.taskRunsKeepDays * 86_400_000).toISOString();
    const res = await ctx.deps
      .db()
      .deleteFrom('task_runs')
      .where('created_at', '<', cutoff)
      .executeTakeFirst();
    return {
      jobs_removed: jobsRemoved,
      task_runs_removed: Number(res.numDeletedRows),
      media_rows_settled: mediaRowsSettled,
    };
  },
});
