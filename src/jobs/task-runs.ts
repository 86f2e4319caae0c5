/**
 * Writes one `task_runs` row per attempt (enqueued, started, finished, wait and
 * run time, attempt, status, worker, error). Rows are buffered and inserted in
 * batches (every `flushMs` or `maxBatch` rows) so timing costs the queue almost
 * nothing; `close()` flushes what is left.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/types.js';
import type { TASK_RUN_STATUSES } from '../db/types.js';

export type TaskRunStatus = (typeof TASK_RUN_STATUSES)[number];

export interface TaskRunRow {
  task_id: string;
  queue: string;
  name: string;
  attempt: number;
  status: TaskRunStatus;
  enqueued_at: string;
  started_at: string;
  finished_at: string;
  wait_ms: number;
  run_ms: number;
  worker: string;
  error: string | null;
}

export interface TaskRunSink {
  record(row: TaskRunRow): void;
  close(): Promise<void>;
}

export class TaskRunRecorder implements TaskRunSink {
  private buffer: TaskRunRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly opts: { flushMs: number; maxBatch: number } = { flushMs: 100, maxBatch: 500 },
  ) {}

  record(row: TaskRunRow): void {
    this.buffer.push(row);
    if (this.buffer.length >= this.opts.maxBatch) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.opts.flushMs);
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const rows = this.buffer;
    this.buffer = [];
    if (rows.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      try {
        await this.db.insertInto('task_runs').values(rows).execute();
      } catch (err) {
        // Timing rows must not take the worker down; losing them is logged loudly.
        this.logger.error({ err: String(err), rows: rows.length }, 'could not write task_runs rows');
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
