/**
 * Writes one `task_runs` row per attempt (enqueued, started, finished, wait and
 * run time, attempt, status, worker, error). Rows are buffered and inserted in
 * batches (every `flushMs` or `maxBatch` rows) so timing costs the queue almost
 * nothing; `close()` flushes what is left.
 */
import { CompiledQuery } from 'kysely';
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
  /** Null only for a lost attempt whose start the backend no longer knows (see StalledAttempt). */
  started_at: string | null;
  finished_at: string;
  wait_ms: number | null;
  run_ms: number | null;
  worker: string | null;
  error: string | null;
}

/** The columns of one attempt, as the task API and the dashboard show them. */
const ATTEMPT_COLUMNS = [
  'attempt',
  'status',
  'enqueued_at',
  'started_at',
  'finished_at',
  'wait_ms',
  'run_ms',
  'worker',
  'error',
] as const satisfies ReadonlyArray<keyof TaskRunRow>;

/** Every TaskRunRow field, in the column order of the cached full-batch insert. */
export const TASK_RUN_COLUMNS = [
  'task_id',
  'queue',
  'name',
  ...ATTEMPT_COLUMNS,
] as const satisfies ReadonlyArray<keyof TaskRunRow>;

/** The recorded attempts of a task, oldest first (at most `limit`): the task API and the dashboard show them. */
export function listTaskRuns(db: Db, taskId: string, limit = 100) {
  return db
    .selectFrom('task_runs')
    .select(ATTEMPT_COLUMNS)
    .where('task_id', '=', taskId)
    .orderBy('id')
    .limit(limit)
    .execute();
}

export interface TaskRunSink {
  record(row: TaskRunRow): void;
  close(): Promise<void>;
}

export class TaskRunRecorder implements TaskRunSink {
  private buffer: TaskRunRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /**
   * The insert statement of a full batch (maxBatch rows), compiled once for this database's dialect.
   * Building and compiling a 500-row insert costs about as much as running it; busy workers flush
   * full batches, so they reuse the text and bind new values.
   */
  private fullBatchSql: string | undefined;

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
        await this.insert(rows);
      } catch (err) {
        // Timing rows must not take the worker down; losing them is logged loudly.
        this.logger.error({ err: String(err), rows: rows.length }, 'could not write task_runs rows');
      }
    });
    return this.flushing;
  }

  private async insert(rows: TaskRunRow[]): Promise<void> {
    if (rows.length !== this.opts.maxBatch) {
      await this.db.insertInto('task_runs').values(rows).execute();
      return;
    }
    if (this.fullBatchSql === undefined) {
      // Every column present in a fixed order, so the text fits any full batch.
      const template: TaskRunRow = {
        task_id: '',
        queue: '',
        name: '',
        attempt: 0,
        status: 'succeeded',
        enqueued_at: '',
        started_at: '',
        finished_at: '',
        wait_ms: 0,
        run_ms: 0,
        worker: '',
        error: null,
      };
      const compiled = this.db
        .insertInto('task_runs')
        .values(rows.map(() => template))
        .compile();
      if (
        Object.keys(template).join() !== TASK_RUN_COLUMNS.join() ||
        compiled.parameters.length !== rows.length * TASK_RUN_COLUMNS.length
      )
        throw new Error('task_runs insert: the batch statement does not match its column list');
      this.fullBatchSql = compiled.sql;
    }
    const params: unknown[] = new Array(rows.length * TASK_RUN_COLUMNS.length);
    let i = 0;
    for (const row of rows) for (const c of TASK_RUN_COLUMNS) params[i++] = row[c] ?? null;
    await this.db.executeQuery(CompiledQuery.raw(this.fullBatchSql, params));
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
