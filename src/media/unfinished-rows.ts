/**
 * Rows left behind. An audio_generations or renders row is finished by its task;
 * a task that ends without finishing it (cancelled, timed out on its last attempt,
 * its sandbox child killed, dead after its workers were lost, pruned) would leave
 * the row `queued` or `running` for ever. These functions end such a row as
 * `failed`, with the reason taken from the task's final state. They run on read
 * (GET /audio-generations/{id}, /renders/{id}), in the maintenance.cleanup sweep,
 * and at once when the job engine reports a task's end in this process, so the
 * row ends whatever path ended its task.
 */
import type { Job } from '../jobs/types.js';
import type { MediaRepo } from './media.repo.js';

/** What settling needs of the job system: a task's current state. */
export interface TaskStates {
  get(id: string): Promise<Job | null>;
}

/** Why a row of this task will not be finished by it, or undefined while the task may still finish it. */
export function endReason(taskId: string, job: Job | null): string | undefined {
  if (!job) return `its task ${taskId} no longer exists`;
  switch (job.state) {
    case 'cancelled':
      return `cancelled: task ${job.id} was cancelled`;
    case 'dead':
      return `task ${job.id} died: its worker was lost ${job.stalls} time${job.stalls === 1 ? '' : 's'}${job.error ? ` (${job.error})` : ''}`;
    case 'failed':
      return `task ${job.id} failed: ${job.error ?? 'no error recorded'}`;
    case 'completed':
      return `task ${job.id} completed without finishing this row`;
    default:
      return undefined;
  }
}

/** Ends the unfinished rows of one task if the task has ended; returns how many rows changed. */
export async function settleRowsOfTask(repo: MediaRepo, tasks: TaskStates, taskId: string): Promise<number> {
  const reason = endReason(taskId, await tasks.get(taskId));
  return reason === undefined ? 0 : repo.failUnfinishedRowsOfTask(taskId, reason);
}

/** The sweep: settles the rows of every ended task among the oldest `limit` tasks with unfinished rows. */
export async function settleUnfinishedRows(repo: MediaRepo, tasks: TaskStates, limit = 500): Promise<number> {
  let settled = 0;
  for (const taskId of await repo.tasksOfUnfinishedRows(limit))
    settled += await settleRowsOfTask(repo, tasks, taskId);
  return settled;
}
