/**
 * Recording attempts: each attempt's `task_runs` row and its two log lines (`task started`, `task
 * finished`) are made here, from one description of the attempt, so the row and the line always agree.
 * An attempt lost with its worker gets its row from the worker that recovers its job.
 */
import type { Logger } from 'pino';
import type { Shortcuts } from '../shortcuts.js';
import { TaskLines } from '../task-lines.js';
import type { TaskRunSink, TaskRunStatus } from '../task-runs.js';
import type { ClaimedJob, StalledAttempt } from '../types.js';

/** How an attempt ended, as recorded. */
export interface AttemptOutcome {
  status: Exclude<TaskRunStatus, 'running'>;
  startedAt: number;
  finishedAt: number;
  /** `Name: message` of the error, when there was one. */
  error?: string;
  /** Set when the job runs again after this delay. */
  retryInMs?: number;
}

/** ISO strings for epoch ms, remembering the last one: consecutive attempts mostly share their millisecond. */
class IsoClock {
  private ms = Number.NaN;
  private text = '';

  iso(ms: number): string {
    if (ms !== this.ms) {
      this.ms = ms;
      this.text = new Date(ms).toISOString();
    }
    return this.text;
  }
}

export class AttemptRecords {
  private readonly lines: TaskLines;
  /** task_runs timestamps: enqueue times repeat within a bulk, start and finish within a millisecond. */
  private readonly enqueuedIso = new IsoClock();
  private readonly runIso = new IsoClock();

  constructor(
    /** The worker's task logger (its id bound once: pino serialises child bindings once, not per line). */
    taskLog: Logger,
    private readonly workerId: string,
    private readonly sink: TaskRunSink | undefined,
    shortcuts: Shortcuts,
    /** The logger's mixin, when it has one (see TaskLines). */
    mixin?: () => Record<string, string | undefined>,
  ) {
    this.lines = new TaskLines(taskLog, shortcuts, mixin);
  }

  started(job: ClaimedJob, startedAt: number): void {
    this.lines.started(fieldsOf(job), Math.max(0, startedAt - job.enqueuedAt));
  }

  finished(job: ClaimedJob, o: AttemptOutcome): void {
    const waitMs = Math.max(0, o.startedAt - job.enqueuedAt);
    const runMs = o.finishedAt - o.startedAt;
    this.sink?.record({
      task_id: job.id,
      queue: job.queue,
      name: job.name,
      attempt: job.attempt,
      status: o.status,
      enqueued_at: this.enqueuedIso.iso(job.enqueuedAt),
      started_at: this.runIso.iso(o.startedAt),
      finished_at: this.runIso.iso(o.finishedAt),
      wait_ms: waitMs,
      run_ms: runMs,
      worker: this.workerId,
      error: o.error ?? null,
    });
    this.lines.finished(fieldsOf(job), {
      ...(o.retryInMs === undefined ? {} : { retryInMs: o.retryInMs }),
      status: o.status,
      waitMs,
      runMs,
      ...(o.error === undefined ? {} : { error: o.error }),
    });
  }

  /** The row of an attempt lost with its worker, found by this worker at `foundAt`. */
  lost(a: StalledAttempt, foundAt: number): void {
    this.sink?.record({
      task_id: a.id,
      queue: a.queue,
      name: a.name,
      attempt: a.attempt,
      // The job runs again (retrying) or, past the stall limit, is dead (failed).
      status: a.dead ? 'failed' : 'retrying',
      enqueued_at: new Date(a.enqueuedAt).toISOString(),
      started_at: a.startedAt === null ? null : new Date(a.startedAt).toISOString(),
      finished_at: new Date(foundAt).toISOString(),
      wait_ms: a.startedAt === null ? null : Math.max(0, a.startedAt - a.enqueuedAt),
      run_ms: a.startedAt === null ? null : Math.max(0, foundAt - a.startedAt),
      worker: a.worker,
      error: `stalled: worker ${a.worker ?? '(unknown)'} stopped renewing its lease (it died or hung)`,
    });
  }

  close(): Promise<void> {
    return this.sink?.close() ?? Promise.resolve();
  }
}

const fieldsOf = (job: ClaimedJob) => ({
  jobId: job.id,
  task: job.name,
  queue: job.queue,
  attempt: job.attempt,
});
