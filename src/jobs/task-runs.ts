/**
 * Writes one `task_runs` row per attempt (enqueued, started, finished, wait and
 * run time, attempt, status, worker, error). Rows are buffered and inserted in
 * batches (every `flushMs` or `maxBatch` rows) so timing costs the queue almost
 * nothing; `close()` flushes what is left. A batch the database refuses stays buffered and is
 * tried again: no row is dropped while the process lives.
 */
import { CompiledQuery } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/types.js';
import type { TASK_RUN_STATUSES } from '../db/types.js';
import { compileBatchInsert } from './kysely-internals.js';
import type { Shortcuts } from './shortcuts.js';

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

/** A row with every column, in TASK_RUN_COLUMNS order: compiles the statement a full batch reuses. */
const TEMPLATE_ROW: TaskRunRow = {
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

export class TaskRunRecorder implements TaskRunSink {
  private buffer: TaskRunRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /**
   * The insert statement of a full batch (maxBatch rows), compiled once for this database's dialect
   * (shortcut `task_runs_sql`, see kysely-internals.ts); undefined: every batch is built by Kysely.
   */
  private readonly fullBatchSql: string | undefined;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly shortcuts: Shortcuts,
    private readonly opts: { flushMs: number; maxBatch: number } = { flushMs: 100, maxBatch: 500 },
  ) {
    this.fullBatchSql = shortcuts.probe('task_runs_sql', () =>
      compileBatchInsert(db, 'task_runs', TASK_RUN_COLUMNS, { ...TEMPLATE_ROW }, opts.maxBatch),
    )?.sql;
  }

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
        // Rows are never dropped: they go back to the front of the buffer and the next flush tries again.
        this.logger.error({ err, rows: rows.length }, 'could not write task_runs rows; retrying');
        this.buffer = rows.concat(this.buffer);
        this.timer ??= setTimeout(() => void this.flush(), this.opts.flushMs);
      }
    });
    return this.flushing;
  }

  private async insert(rows: TaskRunRow[]): Promise<void> {
    if (rows.length === this.opts.maxBatch && this.fullBatchSql !== undefined) {
      const params: unknown[] = new Array(rows.length * TASK_RUN_COLUMNS.length);
      let i = 0;
      for (const row of rows) for (const c of TASK_RUN_COLUMNS) params[i++] = row[c] ?? null;
      this.shortcuts.count('task_runs_sql', true);
      await this.db.executeQuery(CompiledQuery.raw(this.fullBatchSql, params));
      return;
    }
    if (rows.length === this.opts.maxBatch) this.shortcuts.count('task_runs_sql', false);
    await this.db.insertInto('task_runs').values(rows).execute();
  }

  /** Flushes what is left; a flush that fails is tried once more here, then the rows are reported lost. */
  async close(): Promise<void> {
    await this.flush();
    if (this.buffer.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const rows = this.buffer.splice(0);
    try {
      await this.insert(rows);
    } catch (err) {
      this.logger.error(
        { err, rows: rows.length },
        'task_runs rows lost at close: the database refused them',
      );
    }
  }
}
