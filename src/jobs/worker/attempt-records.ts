/**
 * Recording attempts: each attempt's `task_runs` row and its two log lines (`task started`, `task
 * finished`) are made here, from one description of the attempt, so the row and the line always agree.
 * The row rides on the attempt's settlement: the backend stores it with the outcome (see task-runs.ts).
 * An attempt lost with its worker gets its row from the recovery that returns its job.
 */
import type { Logger } from 'pino';
import type { Shortcuts } from '../shortcuts.js';
import { TaskLines } from '../task-lines.js';
import { type AttemptRow, lostAttemptRow } from '../task-runs.js';
import type { ClaimedJob, StalledAttempt } from '../types.js';

/** How an attempt ended, as recorded. */
export interface AttemptOutcome {
  status: AttemptRow['status'];
  startedAt: number;
  finishedAt: number;
  /** `Name: message` of the error, when there was one. */
  error?: string;
  /** Set when the job runs again after this delay. */
  retryInMs?: number;
}

/** Hears every attempt recorded (finished here, or lost and found by this worker's recovery): metrics. */
export type AttemptObserver = (row: AttemptRow) => void;

export class AttemptRecords {
  private readonly lines: TaskLines;

  constructor(
    /** The worker's task logger (its id bound once: pino serialises child bindings once, not per line). */
    taskLog: Logger,
    private readonly workerId: string,
    private readonly observer: AttemptObserver | undefined,
    shortcuts: Shortcuts,
    /** The logger's mixin, when it has one (see TaskLines). */
    mixin?: () => Record<string, string | undefined>,
  ) {
    this.lines = new TaskLines(taskLog, shortcuts, mixin);
  }

  started(job: ClaimedJob, startedAt: number): void {
    this.lines.started(fieldsOf(job), Math.max(0, startedAt - job.enqueuedAt));
  }

  /** Writes the attempt's log line and returns its row, for the settlement to carry. */
  finished(job: ClaimedJob, o: AttemptOutcome): AttemptRow {
    const waitMs = Math.max(0, o.startedAt - job.enqueuedAt);
    const runMs = o.finishedAt - o.startedAt;
    const row: AttemptRow = {
      task_id: job.id,
      queue: job.queue,
      name: job.name,
      attempt: job.attempt,
      status: o.status,
      enqueued: job.enqueuedAt,
      started: o.startedAt,
      finished: o.finishedAt,
      worker: this.workerId,
      error: o.error ?? null,
    };
    this.observer?.(row);
    this.lines.finished(fieldsOf(job), {
      ...(o.retryInMs === undefined ? {} : { retryInMs: o.retryInMs }),
      status: o.status,
      waitMs,
      runMs,
      ...(o.error === undefined ? {} : { error: o.error }),
    });
    return row;
  }

  /** An attempt lost with its worker, found by this worker at `foundAt` (its row is already stored). */
  lost(a: StalledAttempt, foundAt: number): void {
    this.observer?.(lostAttemptRow(a, foundAt));
  }
}

const fieldsOf = (job: ClaimedJob) => ({
  jobId: job.id,
  task: job.name,
  queue: job.queue,
  attempt: job.attempt,
});
