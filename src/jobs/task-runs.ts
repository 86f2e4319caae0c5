/**
 * The history of attempts: one `task_runs` row per attempt (enqueued, started, finished, wait and run
 * time, attempt, status, worker, error).
 *
 * Where a row is written first: in the job store, with the attempt's outcome. The embedded engine
 * inserts it in the transaction that settles the job; BullMQ adds it to a sorted set ordered by task (so
 * one task's rows are read alone) on the connection that settles the job, sent before the settlement
 * (Redis runs one connection's commands in order).
 * A lost attempt's row is written by the recovery that returns its job, in the same transaction
 * (embedded) or MULTI (BullMQ). So a job that reads as finished always has its attempts' rows
 * somewhere, and a SIGKILL loses none: what a process had not written yet was not settled either.
 *
 * The recorder then moves rows from the job store to `task_runs` in batches (within `everyMs` of its
 * worker's settlements, `maxBatch` at a time; every `idleEveryMs` besides, for rows a dead worker left),
 * and deletes them from the store once inserted. A move repeated after a crash,
 * or made by two workers at once, inserts nothing twice: `run_key` is unique (`on conflict do
 * nothing`). Readers (the task API, the dashboard) read the store's pending rows and then `task_runs`
 * (`listAttempts`), so a row in transit is never missed.
 */
import { CompiledQuery } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/types.js';
import type { TASK_RUN_STATUSES } from '../db/types.js';
import { compileBatchInsert } from './kysely-internals.js';
import type { Shortcuts } from './shortcuts.js';
import type { StalledAttempt } from './types.js';

export type TaskRunStatus = (typeof TASK_RUN_STATUSES)[number];

/** One attempt as the job store keeps it until it is moved to task_runs (times in epoch ms). */
export interface AttemptRow {
  task_id: string;
  queue: string;
  name: string;
  attempt: number;
  status: Exclude<TaskRunStatus, 'running'>;
  enqueued: number;
  /** Null only for a lost attempt whose start the backend no longer knows. */
  started: number | null;
  finished: number;
  worker: string | null;
  error: string | null;
}

/** A row waiting in the job store; `ref` is the store's handle to delete it once moved. */
export interface PendingRun {
  ref: string;
  row: AttemptRow;
}

/** What a job store offers the recorder (both backends, through their leasing role). */
export interface RunStore {
  /** Pending rows, at most `max` (embedded: the oldest; BullMQ: by task, each task's in the order they ended). */
  takeRuns(max: number): Promise<PendingRun[]>;
  /** Deletes rows once they are in task_runs. */
  dropRuns(runs: readonly PendingRun[]): Promise<void>;
}

/** A task_runs row as inserted. */
export interface TaskRunRow {
  task_id: string;
  queue: string;
  name: string;
  attempt: number;
  status: TaskRunStatus;
  enqueued_at: string;
  started_at: string | null;
  finished_at: string;
  wait_ms: number | null;
  run_ms: number | null;
  worker: string | null;
  error: string | null;
  run_key: string;
}

/**
 * The identity of an attempt's row. One attempt has one start; a lost attempt whose start is unknown
 * is told apart by when it was found.
 */
export const runKey = (r: Pick<AttemptRow, 'task_id' | 'attempt' | 'started' | 'finished'>) =>
  `${r.task_id}:${r.attempt}:${r.started ?? `lost@${r.finished}`}`;

/** The error of a lost attempt's row (the telemetry counts rows starting with `stalled:` as dead). */
export const lostAttemptError = (worker: string | null) =>
  `stalled: worker ${worker ?? '(unknown)'} stopped renewing its lease (it died or hung)`;

/**
 * The row of an attempt lost with its worker, found at `foundAt`: the job runs again (`retrying`), is
 * dead past the stall limit (`failed`), or was asked to cancel and ends so (`cancelled`).
 */
export function lostAttemptRow(a: StalledAttempt, foundAt: number): AttemptRow {
  return {
    task_id: a.id,
    queue: a.queue,
    name: a.name,
    attempt: a.attempt,
    status: a.cancelled ? 'cancelled' : a.dead ? 'failed' : 'retrying',
    enqueued: a.enqueuedAt,
    started: a.startedAt,
    finished: foundAt,
    worker: a.worker,
    error: lostAttemptError(a.worker),
  };
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

export type AttemptView = Pick<TaskRunRow, (typeof ATTEMPT_COLUMNS)[number]>;

/** Every TaskRunRow field, in the column order of the cached full-batch insert. */
export const TASK_RUN_COLUMNS = [
  'task_id',
  'queue',
  'name',
  ...ATTEMPT_COLUMNS,
  'run_key',
] as const satisfies ReadonlyArray<keyof TaskRunRow>;

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

const toIso = (ms: number) => new Date(ms).toISOString();

/**
 * The task_runs row of an attempt. `iso` formats its times (the recorder passes its IsoClocks: enqueue
 * times repeat within a bulk, starts and ends within a millisecond).
 */
export function toTaskRunRow(
  a: AttemptRow,
  iso: { enqueued: (ms: number) => string; run: (ms: number) => string } = { enqueued: toIso, run: toIso },
): TaskRunRow {
  return {
    task_id: a.task_id,
    queue: a.queue,
    name: a.name,
    attempt: a.attempt,
    status: a.status,
    enqueued_at: iso.enqueued(a.enqueued),
    started_at: a.started === null ? null : iso.run(a.started),
    finished_at: iso.run(a.finished),
    wait_ms: a.started === null ? null : Math.max(0, a.started - a.enqueued),
    run_ms: a.started === null ? null : Math.max(0, a.finished - a.started),
    worker: a.worker,
    error: a.error,
    run_key: runKey(a),
  };
}

/**
 * The attempts of a task, oldest first (at most `limit`): the rows still in the job store and those in
 * task_runs. The store is read first: a row moved meanwhile is then found in task_runs (and counted
 * once), never missed.
 */
export async function listAttempts(
  db: Db,
  store: { pendingRuns(taskId: string): Promise<AttemptRow[]> },
  taskId: string,
  limit = 100,
): Promise<AttemptView[]> {
  const pending = await store.pendingRuns(taskId);
  const moved = await db
    .selectFrom('task_runs')
    .select([...ATTEMPT_COLUMNS, 'run_key'])
    .where('task_id', '=', taskId)
    .orderBy('id')
    .limit(limit)
    .execute();
  const keys = new Set(moved.map((r) => r.run_key));
  const out: AttemptView[] = moved.map(({ run_key: _key, ...view }) => view as AttemptView);
  for (const a of pending) {
    if (out.length >= limit) break;
    const row = toTaskRunRow(a);
    if (keys.has(row.run_key)) continue;
    const { task_id: _t, queue: _q, name: _n, run_key: _k, ...view } = row;
    out.push(view);
  }
  return out;
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
  run_key: '',
};

export class TaskRunRecorder {
  private idleTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  /** A move is chained and has not begun: another request joins it. */
  private queued = false;
  private readonly enqueuedIso = new IsoClock();
  private readonly runIso = new IsoClock();
  private readonly iso = {
    enqueued: (ms: number) => this.enqueuedIso.iso(ms),
    run: (ms: number) => this.runIso.iso(ms),
  };
  private moving: Promise<void> = Promise.resolve();
  /**
   * The insert statement of a full batch (maxBatch rows), compiled once for this database's dialect
   * (shortcut `task_runs_sql`, see kysely-internals.ts); undefined: every batch is built by Kysely.
   */
  private readonly fullBatchSql: string | undefined;

  constructor(
    private readonly db: Db,
    private readonly store: RunStore,
    private readonly logger: Logger,
    private readonly shortcuts: Shortcuts,
    private readonly opts: { everyMs: number; idleEveryMs: number; maxBatch: number } = {
      everyMs: 100,
      idleEveryMs: 2000,
      maxBatch: 100,
    },
  ) {
    this.fullBatchSql = shortcuts.probe('task_runs_sql', () =>
      compileBatchInsert(db, 'task_runs', TASK_RUN_COLUMNS, { ...TEMPLATE_ROW }, opts.maxBatch, 'run_key'),
    )?.sql;
  }

  /** Moves rows every `idleEveryMs` until close() (rows of workers that died), and when asked (soon()). */
  start(): this {
    this.idleTimer ??= setInterval(() => void this.move(), this.opts.idleEveryMs);
    return this;
  }

  /** Rows were stored (this worker settled or recovered jobs): a move within `everyMs`. */
  soon(): void {
    this.soonTimer ??= setTimeout(() => {
      this.soonTimer = undefined;
      void this.move();
    }, this.opts.everyMs);
  }

  /**
   * Moves every pending row to task_runs (moves are chained: one at a time in this process). A batch
   * the database refuses stays in the store and is tried again at the next move.
   */
  move(): Promise<void> {
    if (this.queued) return this.moving;
    this.queued = true;
    this.moving = this.moving.then(async () => {
      this.queued = false;
      try {
        for (;;) {
          const runs = await this.store.takeRuns(this.opts.maxBatch);
          if (runs.length === 0) return;
          await this.insert(runs.map((r) => toTaskRunRow(r.row, this.iso)));
          await this.store.dropRuns(runs);
          if (runs.length < this.opts.maxBatch) return;
          // The embedded store answers synchronously: without a turn of the event loop between batches, a
          // backlog of rows held the worker (its claims, a high-priority start) for the whole move.
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch (err) {
        this.logger.error(
          { err },
          'could not move task_runs rows; they stay in the job store and are tried again',
        );
      }
    });
    return this.moving;
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
    await this.db
      .insertInto('task_runs')
      .values(rows)
      .onConflict((oc) => oc.column('run_key').doNothing())
      .execute();
  }

  /** Stops the timer and moves what is left (rows the database refuses stay in the job store). */
  async close(): Promise<void> {
    clearInterval(this.idleTimer);
    clearTimeout(this.soonTimer);
    this.idleTimer = undefined;
    this.soonTimer = undefined;
    await this.move();
  }
}
