/**
 * Which job states an operator may cancel or retry, and what cancelling does in each: the one
 * definition both backends apply (each then carries it out in its own storage).
 */
import { AppError } from '../errors.js';
import type { JobState } from './types.js';

/** How a cancel is carried out: at once (nothing runs it), or by asking the worker that runs it to stop. */
export type CancelAction = 'cancel-now' | 'ask-worker';

const CANCEL: Partial<Record<JobState, CancelAction>> = {
  waiting: 'cancel-now',
  delayed: 'cancel-now',
  // Held by a worker that has not started it: that worker ends it (at its next heartbeat).
  prefetched: 'ask-worker',
  active: 'ask-worker',
};

/** States a redrive (retry) applies to: the job ended without completing. */
export const RETRYABLE_STATES: readonly JobState[] = ['failed', 'dead', 'cancelled'];

/** What cancelling a job in `state` does; throws TASK_STATE_CONFLICT when it cannot be cancelled. */
export function cancelAction(id: string, state: JobState): CancelAction {
  const action = CANCEL[state];
  if (!action)
    throw new AppError(
      'TASK_STATE_CONFLICT',
      `task ${id} is ${state}; only waiting, delayed, prefetched or active tasks can be cancelled`,
      { id, state },
    );
  return action;
}

/** Throws TASK_STATE_CONFLICT unless a job in `state` can be redriven. */
export function assertRetryable(id: string, state: JobState): void {
  if (!RETRYABLE_STATES.includes(state))
    throw new AppError(
      'TASK_STATE_CONFLICT',
      `task ${id} is ${state}; only failed, dead or cancelled tasks can be retried`,
      { id, state },
    );
}
