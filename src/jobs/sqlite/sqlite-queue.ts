/**
 * The embedded queue engine: one `jobs` table in its own SQLite file (WAL),
 * shared safely by several processes on one machine (the API enqueues, worker
 * processes claim). Every write is a short `BEGIN IMMEDIATE` transaction; readers
 * never block writers.
 *
 * Claim cost: the partial index `jobs_ready (queue, priority DESC, run_at, id)
 * WHERE state = 'waiting'` holds only ready-or-delayed jobs, in claim order, so a
 * claim reads the first rows of one index range: O(log n) however long the
 * backlog. Priority mapping: our `priority` (higher first) is stored as is and
 * the index is DESC on it; queues are ranked by the worker (QUEUE_PRIORITY).
 *
 * Throughput: claims are batched by the runtime (one transaction leases every
 * free slot) and completions are coalesced: settlements arriving in the same
 * tick commit in one transaction.
 *
 * Wake-up: an enqueue in this process wakes this process's workers at once;
 * other processes notice within JOBS_POLL_MS through `PRAGMA data_version`.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { AppError } from '../../errors.js';
import { IdempotencyConflictError } from '../errors.js';
import type {
  BackoffOptions,
  ClaimedJob,
  ClaimOptions,
  EnqueueRequest,
  EnqueueResult,
  FailOutcome,
  HeartbeatResult,
  Job,
  JobEventMap,
  JobEventName,
  JobPage,
  JobQueue,
  JobState,
  ListJobsFilter,
  QueueCounts,
  QueueName,
  Settlement,
  StalledAttempt,
  WorkerRecord,
} from '../types.js';
import { JOB_STATES, QUEUE_NAMES, rankQueues } from '../types.js';
import { assertRetryable, cancelAction } from '../state-rules.js';
import { decodeJobCursor, encodeJobCursor, pageLimit } from '../paging.js';
import { type HostIdentity, thisHost } from '../host.js';
import { type AttemptRow, lostAttemptRow, type PendingRun } from '../task-runs.js';
import { WakeChannel } from './wake-channel.js';
import { retryBusy } from './write-lock.js';

export interface SqliteQueueOptions {
  /** Database file, or ':memory:' (single process only). */
  file: string;
  leaseMs: number;
  maxStalls: number;
  pollMs: number;
  busyTimeoutMs?: number;
  /** Injectable clock, epoch ms (tests). */
  now?: () => number;
  /** This machine, to tell which worker records' processes can be checked here (see thisHost()). */
  host?: HostIdentity;
  /** Hears errors of the cross-process wake-up sockets (they fall back to the poll). */
  onError?: (err: Error, what: string) => void;
}

interface JobRow {
  id: number;
  queue: QueueName;
  name: string;
  payload: string;
  /** `active` covers prefetched jobs too: those have no started_at yet (see stateOf). */
  state: Exclude<JobState, 'delayed' | 'prefetched'>;
  priority: number;
  run_at: number;
  enqueued_at: number;
  attempts_made: number;
  max_attempts: number;
  backoff: string;
  idempotency_key: string | null;
  progress: number;
  result: string | null;
  error: string | null;
  started_at: number | null;
  finished_at: number | null;
  lease_until: number | null;
  worker: string | null;
  stalls: number;
  cancel_requested: number;
  /** The trace context its attempts continue (JobSpans), null when none was carried. */
  trace: string | null;
}

type ClaimRow = Pick<
  JobRow,
  | 'id'
  | 'queue'
  | 'name'
  | 'payload'
  | 'priority'
  | 'run_at'
  | 'enqueued_at'
  | 'attempts_made'
  | 'max_attempts'
  | 'backoff'
  | 'trace'
>;

const SCHEMA = `
create table if not exists jobs (
  id integer primary key autoincrement,
  queue text not null,
  name text not null,
  payload text not null,
  state text not null check (state in ('waiting', 'active', 'completed', 'failed', 'dead', 'cancelled')),
  priority integer not null,
  run_at integer not null,
  enqueued_at integer not null,
  attempts_made integer not null default 0,
  max_attempts integer not null,
  backoff text not null,
  idempotency_key text,
  progress real not null default 0,
  result text,
  error text,
  started_at integer,
  finished_at integer,
  lease_until integer,
  worker text,
  stalls integer not null default 0,
  cancel_requested integer not null default 0,
  trace text
);
create index if not exists jobs_ready on jobs (queue, priority desc, run_at, id) where state = 'waiting';
create unique index if not exists jobs_idempotency on jobs (idempotency_key) where idempotency_key is not null;
create index if not exists jobs_state on jobs (state, queue, id);
create table if not exists queues (name text primary key, paused integer not null default 0);
create table if not exists workers (id text primary key, record text not null, last_seen integer not null);
create table if not exists runs (id integer primary key autoincrement, task_id text not null, row text not null);
`;

type Pending = { run: () => (() => void) | undefined; resolve: () => void; reject: (err: unknown) => void };

const parseJson = (s: string | null): unknown => (s === null ? null : JSON.parse(s));

export class SqliteQueue implements JobQueue {
  readonly backend = 'sqlite' as const;
  /** A delete per completion would cost every job an index write: maintenance.cleanup applies it. */
  readonly keepLastApplies = 'at-cleanup' as const;
  private readonly db: SQLite.Database;
  private readonly events = new EventEmitter();
  private readonly now: () => number;
  private readonly stmts: ReturnType<SqliteQueue['prepare']>;
  private pending: Pending[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly host: HostIdentity;
  /** Wakes waiting workers in other processes (none for an in-memory queue: one process only). */
  private readonly wake: WakeChannel | undefined;
  /** The shared data_version poll while anyone waits (the safety net under the wake-ups). */
  private poll: NodeJS.Timeout | undefined;
  private polledVersion: number | undefined;
  private nextAt: { version: string; queues: readonly QueueName[]; t: number } | undefined;
  private readonly busyTimeoutMs: number;
  /** Bumped whenever this process makes work ready (see version()). */
  private localVersion = 0;
  /** The last PRAGMA data_version read by version(), and when (performance.now()). */
  private dataVersion = 0;
  private dataVersionAt = -Infinity;

  constructor(private readonly opts: SqliteQueueOptions) {
    this.now = opts.now ?? Date.now;
    this.host = opts.host ?? thisHost();
    if (opts.file !== ':memory:') fs.mkdirSync(path.dirname(opts.file), { recursive: true });
    this.db = new SQLite(opts.file);
    this.busyTimeoutMs = Math.trunc(opts.busyTimeoutMs ?? 10_000);
    // SQLite's own busy handler while the file is opened and set up; then retryBusy (see write-lock.ts).
    this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    if (opts.file !== ':memory:') this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a power loss may drop the last commits, never corrupts; a process crash loses nothing.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`begin immediate; ${SCHEMA}; commit;`);
    // A jobs file made before jobs carried a trace context gets the column, under the write lock.
    this.db
      .transaction(() => {
        const columns = this.db.prepare<[], { name: string }>(`pragma table_info(jobs)`).all();
        if (!columns.some((c) => c.name === 'trace')) this.db.exec(`alter table jobs add column trace text`);
      })
      .immediate();
    this.db
      .prepare(`insert or ignore into queues (name) values ${QUEUE_NAMES.map(() => '(?)').join(',')}`)
      .run(...QUEUE_NAMES);
    this.stmts = this.prepare();
    this.events.setMaxListeners(0);
    this.wake =
      opts.file === ':memory:'
        ? undefined
        : new WakeChannel(
            this.db,
            () => this.wakeWaiters(),
            (jobId) => this.events.emit('cancel-requested', jobId),
            (err, what) => opts.onError?.(err, what),
            (write) => this.write(write),
          );
    this.db.pragma('busy_timeout = 0');
  }

  /** Runs `fn` in a `BEGIN IMMEDIATE` transaction, waiting for the write lock in fine steps (write-lock.ts). */
  private write<T>(fn: () => T): T {
    return retryBusy(() => this.db.transaction(fn).immediate(), this.busyTimeoutMs);
  }

  private prepare() {
    const d = this.db;
    return {
      insert: d.prepare<
        [string, string, string, number, number, number, number, string, string | null, string | null]
      >(
        `insert into jobs (queue, name, payload, state, priority, run_at, enqueued_at, max_attempts, backoff, idempotency_key, trace)
         values (?, ?, ?, 'waiting', ?, ?, ?, ?, ?, ?, ?)
         on conflict (idempotency_key) where idempotency_key is not null do nothing`,
      ),
      byKey: d.prepare<[string], { id: number; name: string }>(
        `select id, name from jobs where idempotency_key = ?`,
      ),
      get: d.prepare<[number], JobRow>(`select * from jobs where id = ?`),
      claim: d.prepare<{ queue: string; now: number; lease: number; worker: string; n: number }, ClaimRow>(
        `update jobs set state = 'active', attempts_made = attempts_made + 1, started_at = null,
           lease_until = @lease, worker = @worker, progress = 0, error = null
         where id in (select id from jobs where state = 'waiting' and queue = @queue and run_at <= @now
                      order by priority desc, run_at, id limit @n)
         returning id, queue, name, payload, priority, run_at, enqueued_at, attempts_made, max_attempts, backoff, trace`,
      ),
      paused: d.prepare<[], { name: string }>(`select name from queues where paused = 1`),
      setPaused: d.prepare<[number, string]>(`update queues set paused = ? where name = ?`),
      // Each outcome carries its attempt's start: a job that ended before it was noted started gets it here.
      complete: d.prepare<[string, number, number | null, number, string]>(
        `update jobs set state = 'completed', result = ?, finished_at = ?, progress = 100, lease_until = null,
           started_at = coalesce(started_at, ?)
         where id = ? and state = 'active' and worker = ?`,
      ),
      failFinal: d.prepare<[string, number, number | null, number, string]>(
        `update jobs set state = 'failed', error = ?, finished_at = ?, lease_until = null,
           started_at = coalesce(started_at, ?)
         where id = ? and state = 'active' and worker = ?`,
      ),
      failRetry: d.prepare<[string, number, number | null, number, string]>(
        `update jobs set state = 'waiting', error = ?, run_at = ?, lease_until = null, worker = null,
           started_at = coalesce(started_at, ?)
         where id = ? and state = 'active' and worker = ?`,
      ),
      cancelActive: d.prepare<[number, number | null, number, string]>(
        `update jobs set state = 'cancelled', error = 'cancelled', finished_at = ?, lease_until = null,
           started_at = coalesce(started_at, ?)
         where id = ? and state = 'active' and worker = ?`,
      ),
      // A prefetched job its worker started: active from now on.
      noteStarted: d.prepare<[number, number, string]>(
        `update jobs set started_at = ? where id = ? and state = 'active' and worker = ? and started_at is null`,
      ),
      // A job someone asked to cancel does not go back: it ends cancelled (it must never run again).
      release: d.prepare<[number, number, number, string], { state: string }>(
        `update jobs set state = iif(cancel_requested, 'cancelled', 'waiting'),
           error = iif(cancel_requested, 'cancelled', error), finished_at = iif(cancel_requested, ?, finished_at),
           attempts_made = iif(cancel_requested, attempts_made, max(attempts_made - 1, 0)),
           lease_until = null, worker = iif(cancel_requested, worker, null), run_at = ?
         where id = ? and state = 'active' and worker = ? returning state`,
      ),
      progress: d.prepare<[number, number, string]>(
        `update jobs set progress = ? where id = ? and state = 'active' and worker = ?`,
      ),
      extend: d.prepare<[number, number, string]>(
        `update jobs set lease_until = ? where id = ? and state = 'active' and worker = ?`,
      ),
      cancelFlag: d.prepare<[number, string], { cancel_requested: number }>(
        `select cancel_requested from jobs where id = ? and worker = ?`,
      ),
      upsertWorker: d.prepare<[string, string, number]>(
        `insert into workers (id, record, last_seen) values (?, ?, ?)
         on conflict (id) do update set record = excluded.record, last_seen = excluded.last_seen`,
      ),
      removeWorker: d.prepare<[string]>(`delete from workers where id = ?`),
      workers: d.prepare<[], { record: string; last_seen: number }>(
        `select record, last_seen from workers order by id`,
      ),
      expiredLeases: d.prepare<
        [number, number, string],
        Pick<
          JobRow,
          | 'id'
          | 'queue'
          | 'name'
          | 'attempts_made'
          | 'enqueued_at'
          | 'started_at'
          | 'stalls'
          | 'worker'
          | 'cancel_requested'
        >
      >(
        `select id, queue, name, attempts_made, enqueued_at, started_at, stalls, worker, cancel_requested
           from jobs indexed by jobs_state where state = 'active' and
           (lease_until < ? or worker in (select id from workers where last_seen < ?)
            or worker in (select value from json_each(?)))`,
      ),
      // As release: a stalled job someone asked to cancel ends cancelled instead of running again.
      // A prefetched job (never started) goes back without counting a stall (the second parameter: 0).
      requeueStalled: d.prepare<[number, number, number, number]>(
        `update jobs set state = iif(cancel_requested, 'cancelled', 'waiting'), stalls = stalls + ?,
           error = iif(cancel_requested, 'cancelled', error), finished_at = iif(cancel_requested, ?, finished_at),
           attempts_made = iif(cancel_requested, attempts_made, max(attempts_made - 1, 0)),
           run_at = ?, lease_until = null, worker = null where id = ? and state = 'active'`,
      ),
      killStalled: d.prepare<[string, number, number]>(
        `update jobs set state = 'dead', stalls = stalls + 1, error = ?, finished_at = ?, lease_until = null
         where id = ? and state = 'active'`,
      ),
      dataVersion: d.prepare<[], { data_version: number }>(`pragma data_version`),
      // Attempt rows waiting to be moved to task_runs (see task-runs.ts). AUTOINCREMENT: an id is never
      // reused, so a mover's range delete never takes a row written after its read.
      insertRun: d.prepare<[string, string]>(`insert into runs (task_id, row) values (?, ?)`),
      takeRuns: d.prepare<[number], { id: number; row: string }>(
        `select id, row from runs order by id limit ?`,
      ),
      dropRuns: d.prepare<[number, number]>(`delete from runs where id between ? and ?`),
      pendingRuns: d.prepare<[string], { row: string }>(`select row from runs where task_id = ? order by id`),
      nextRunAt: d.prepare<[string], { t: number | null }>(
        `select min(run_at) as t from jobs where state = 'waiting' and queue = ?`,
      ),
    };
  }

  // ------------------------------------------------------------------ producers

  async enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    const [r] = await this.enqueueBulk([req]);
    return r as EnqueueResult;
  }

  async enqueueBulk(reqs: readonly EnqueueRequest[]): Promise<EnqueueResult[]> {
    this.assertOpen();
    const now = this.now();
    const out = this.write(() =>
      reqs.map((r, index): EnqueueResult => {
        const info = this.stmts.insert.run(
          r.queue,
          r.name,
          JSON.stringify(r.payload ?? null),
          r.priority,
          now + r.delayMs,
          now,
          r.attempts,
          JSON.stringify(r.backoff),
          r.idempotencyKey,
          r.trace ?? null,
        );
        if (info.changes === 1) return { id: String(info.lastInsertRowid), created: true };
        const existing = this.stmts.byKey.get(r.idempotencyKey as string);
        if (!existing) throw new Error(`idempotency key ${r.idempotencyKey} conflicted but no job has it`);
        // Thrown inside the transaction: nothing of this batch is enqueued.
        if (existing.name !== r.name)
          throw new IdempotencyConflictError(
            r.idempotencyKey as string,
            String(existing.id),
            existing.name,
            r.name,
            index,
          );
        return { id: String(existing.id), created: false };
      }),
    );
    for (const q of new Set(reqs.map((r) => r.queue))) this.events.emit('enqueued', q);
    this.workReady();
    return out;
  }

  async get(id: string): Promise<Job | null> {
    const n = toRowId(id);
    if (n === null) return null;
    const row = this.stmts.get.get(n);
    return row ? this.toJob(row) : null;
  }

  async list(filter: ListJobsFilter): Promise<JobPage> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: Array<string | number> = [];
    const add = (clause: string, ...values: Array<string | number>) => {
      where.push(clause);
      params.push(...values);
    };
    const now = this.now();
    if (filter.state === 'delayed') add(`state = 'waiting' and run_at > ?`, now);
    else if (filter.state === 'waiting') add(`state = 'waiting' and run_at <= ?`, now);
    else if (filter.state === 'prefetched') add(`state = 'active' and started_at is null`);
    else if (filter.state === 'active') add(`state = 'active' and started_at is not null`);
    else if (filter.state) add('state = ?', filter.state);
    if (filter.queue) add('queue = ?', filter.queue);
    if (filter.name) add('name = ?', filter.name);
    if (filter.cursor) add('id < ?', decodeJobCursor(filter.cursor));
    const rows = this.db
      .prepare<unknown[], JobRow>(
        `select * from jobs ${where.length ? `where ${where.join(' and ')}` : ''} order by id desc limit ${limit + 1}`,
      )
      .all(...params);
    const items = rows.slice(0, limit).map((r) => this.toJob(r));
    const last = items[items.length - 1];
    return { items, next_cursor: rows.length > limit && last ? encodeJobCursor(Number(last.id)) : null };
  }

  async counts(): Promise<QueueCounts[]> {
    const now = this.now();
    const paused = new Set(this.stmts.paused.all().map((r) => r.name));
    const rows = this.db
      .prepare<[number], { queue: QueueName; state: string; n: number }>(
        `select queue, case when state = 'waiting' and run_at > ? then 'delayed'
           when state = 'active' and started_at is null then 'prefetched' else state end as state, count(*) as n
         from jobs group by 1, 2`,
      )
      .all(now);
    const recent = this.db
      .prepare<[number], { queue: QueueName; state: string; n: number }>(
        `select queue, state, count(*) as n from jobs indexed by jobs_state
         where state in ('completed', 'failed') and finished_at >= ? group by 1, 2`,
      )
      .all(now - 60_000);
    return QUEUE_NAMES.map((queue) => {
      const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
      for (const r of rows) if (r.queue === queue) counts[r.state as JobState] += r.n;
      const oldest = this.db
        .prepare<[string, number], { t: number | null }>(
          `select min(run_at) as t from jobs where state = 'waiting' and queue = ? and run_at <= ?`,
        )
        .get(queue, now);
      return {
        queue,
        paused: paused.has(queue),
        counts,
        completedLastMinute: recent.find((r) => r.queue === queue && r.state === 'completed')?.n ?? 0,
        failedLastMinute: recent.find((r) => r.queue === queue && r.state === 'failed')?.n ?? 0,
        oldestWaitingMs: oldest?.t ? Math.max(0, now - oldest.t) : 0,
      };
    });
  }

  async cancel(id: string): Promise<Job> {
    const n = this.requireId(id);
    const now = this.now();
    const asked = this.write(() => {
      const row = this.row(id, n);
      if (cancelAction(id, this.stateOf(row, now)) === 'cancel-now') {
        this.db
          .prepare(`update jobs set state = 'cancelled', finished_at = ?, error = 'cancelled' where id = ?`)
          .run(now, n);
        return false;
      }
      this.db.prepare(`update jobs set cancel_requested = 1 where id = ?`).run(n);
      return true;
    });
    // The worker running it stops it at once: in this process, or in another through the wake channel
    // (a lost datagram: at that worker's next heartbeat).
    if (asked) {
      this.events.emit('cancel-requested', id);
      this.wake?.notifyCancel(id);
    }
    return (await this.get(id)) as Job;
  }

  async retry(id: string): Promise<Job> {
    const n = this.requireId(id);
    const now = this.now();
    this.write(() => {
      const row = this.row(id, n);
      assertRetryable(id, this.stateOf(row, now));
      this.db
        .prepare(
          `update jobs set state = 'waiting', attempts_made = 0, stalls = 0, run_at = ?, finished_at = null,
               started_at = null, error = null, result = null, progress = 0, cancel_requested = 0, worker = null
             where id = ?`,
        )
        .run(now, n);
    });
    const job = (await this.get(id)) as Job;
    this.events.emit('enqueued', job.queue);
    this.workReady();
    return job;
  }

  async pause(queue: QueueName): Promise<void> {
    this.write(() => this.stmts.setPaused.run(1, queue));
  }

  async resume(queue: QueueName): Promise<void> {
    this.write(() => this.stmts.setPaused.run(0, queue));
    this.events.emit('enqueued', queue);
    this.workReady();
  }

  async prune(opts: { keepLast: number; maxAgeMs: number }): Promise<number> {
    const cutoff = this.now() - opts.maxAgeMs;
    let removed = 0;
    for (const queue of QUEUE_NAMES) {
      for (const state of ['completed', 'failed', 'dead', 'cancelled'] as const) {
        // As BullMQ's removeOnComplete {count, age}: at most the newest keepLast of each finished state,
        // and of those only the ones finished after the cutoff.
        const nth = this.db
          .prepare<[string, string, number], { id: number }>(
            `select id from jobs where state = ? and queue = ? order by id desc limit 1 offset ?`,
          )
          .get(state, queue, Math.max(opts.keepLast - 1, 0));
        const beyond = opts.keepLast > 0 ? (nth?.id ?? 0) : Number.MAX_SAFE_INTEGER;
        const prune = this.db.prepare(
          `delete from jobs where state = ? and queue = ? and (id < ? or finished_at < ?)`,
        );
        removed += this.write(() => prune.run(state, queue, beyond, cutoff)).changes;
      }
    }
    return removed;
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    return this.stmts.workers
      .all()
      .map((r) => ({ ...(JSON.parse(r.record) as WorkerRecord), lastSeenAt: r.last_seen }));
  }

  on<E extends JobEventName>(event: E, listener: (...args: JobEventMap[E]) => void): void {
    this.events.on(event, listener as (...args: unknown[]) => void);
  }

  off<E extends JobEventName>(event: E, listener: (...args: JobEventMap[E]) => void): void {
    this.events.off(event, listener as (...args: unknown[]) => void);
  }

  private emit<E extends JobEventName>(event: E, ...args: JobEventMap[E]): void {
    this.events.emit(event, ...args);
  }

  // ------------------------------------------------------------------ workers

  async claim(opts: ClaimOptions): Promise<ClaimedJob[]> {
    this.assertOpen();
    const now = this.now();
    const lease = now + this.opts.leaseMs;
    let after: Array<(() => void) | undefined> = [];
    const rows = this.write(() => {
      for (const n of opts.started ?? [])
        this.stmts.noteStarted.run(n.startedAt, Number(n.job.id), opts.workerId);
      after = (opts.settle ?? []).map((s) => this.apply(opts.workerId, s));
      if (opts.max <= 0) return [];
      const paused = this.stmts.paused.all();
      const out: ClaimRow[] = [];
      let nonHigh = 0;
      for (const queue of rankQueues(opts.queues)) {
        if (out.length >= opts.max) break;
        if (paused.some((p) => p.name === queue)) continue;
        let n = opts.max - out.length;
        if (queue !== 'high_priority') n = Math.min(n, (opts.maxNonHigh ?? opts.max) - nonHigh);
        if (n <= 0) continue;
        const got = this.stmts.claim.all({ queue, now, lease, worker: opts.workerId, n });
        if (queue !== 'high_priority') nonHigh += got.length;
        // RETURNING order is unspecified: restore claim order.
        got.sort((a, b) => b.priority - a.priority || a.run_at - b.run_at || a.id - b.id);
        out.push(...got);
      }
      return out;
    });
    for (const a of after) a?.();
    return rows.map((r) => {
      const job: ClaimedJob = {
        id: String(r.id),
        queue: r.queue,
        name: r.name,
        payload: JSON.parse(r.payload),
        priority: r.priority,
        attempt: r.attempts_made,
        maxAttempts: r.max_attempts,
        backoff: JSON.parse(r.backoff) as BackoffOptions,
        enqueuedAt: r.enqueued_at,
        startedAt: now,
        ...(r.trace === null ? {} : { trace: r.trace }),
      };
      this.emit('active', job);
      return job;
    });
  }

  /**
   * Resolves on an enqueue (or redrive, resume, job handed back) in this process or, through the wake
   * channel, in another; on the run time of the first delayed job of `queues`; on a commit by another
   * process seen by the shared data_version poll (every JOBS_POLL_MS, in case a wake-up was lost); on
   * `signal`; or after `timeoutMs`.
   */
  waitForWork(queues: readonly QueueName[], timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.closed) return Promise.resolve();
    void this.wake?.listen();
    return new Promise((resolve) => {
      const now = this.now();
      const next = this.nextRunAt(queues);
      const until = Math.max(0, Math.min(timeoutMs, next - now));
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        if (this.waiters.size === 0) this.stopPoll();
        resolve();
      };
      const timer = setTimeout(done, until);
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
      this.startPoll();
    });
  }

  /**
   * The first run time of a job waiting in `queues`, reused while nothing changed (the same version and
   * queues): a worker with only its reserved slot free waits once per finished job, and the query costs
   * more than the wait.
   */
  private nextRunAt(queues: readonly QueueName[]): number {
    const version = this.version();
    if (this.nextAt?.version === version && this.nextAt.queues === queues) return this.nextAt.t;
    let t = Infinity;
    for (const q of queues) {
      const at = this.stmts.nextRunAt.get(q)?.t;
      if (at !== null && at !== undefined) t = Math.min(t, at);
    }
    this.nextAt = { version, queues, t };
    return t;
  }

  /** One data_version poll for all waiters: another process committed (an enqueue, a resume, a retry). */
  private startPoll(): void {
    if (this.poll) return;
    this.polledVersion = this.stmts.dataVersion.get()?.data_version;
    this.poll = setInterval(() => {
      if (this.closed) return this.wakeWaiters();
      const v = this.stmts.dataVersion.get()?.data_version;
      if (v !== this.polledVersion) {
        this.polledVersion = v;
        this.wakeWaiters();
      }
    }, this.opts.pollMs);
  }

  private stopPoll(): void {
    clearInterval(this.poll);
    this.poll = undefined;
  }

  private wakeWaiters(): void {
    this.localVersion++;
    for (const w of [...this.waiters]) w();
  }

  /** Work became ready (after the commit): this process's waiters and the other processes' wake up. */
  private workReady(): void {
    this.wakeWaiters();
    this.wake?.notify();
  }

  /**
   * Changes whenever work may have become ready: an enqueue, retry, resume or
   * release in this process at once, and any commit by another process (PRAGMA
   * data_version) within a millisecond. The pragma costs a statement (more than a
   * no-op job's share of a claim) and a busy worker asks once per job
   * started from its prefetch buffer, so its value is reused for up to 1 ms.
   */
  version(): string {
    const t = performance.now();
    if (t - this.dataVersionAt >= 1) {
      this.dataVersion = this.stmts.dataVersion.get()?.data_version ?? 0;
      this.dataVersionAt = t;
    }
    return `${this.localVersion}:${this.dataVersion}`;
  }

  async heartbeat(record: WorkerRecord, jobs: readonly ClaimedJob[]): Promise<HeartbeatResult> {
    if (this.closed) return { cancel: [], lost: [] };
    const now = this.now();
    const lease = now + this.opts.leaseMs;
    return this.write(() => {
      this.stmts.upsertWorker.run(record.id, JSON.stringify(record), now);
      const cancel: string[] = [];
      const lost: string[] = [];
      for (const j of jobs) {
        // The lease is this worker's only while the row is active under its id (the token check).
        if (this.stmts.extend.run(lease, Number(j.id), record.id).changes === 0) lost.push(j.id);
        else if (this.stmts.cancelFlag.get(Number(j.id), record.id)?.cancel_requested) cancel.push(j.id);
      }
      return { cancel, lost };
    });
  }

  async progress(job: ClaimedJob, workerId: string, progress: number): Promise<void> {
    const p = Math.max(0, Math.min(100, progress));
    this.write(() => this.stmts.progress.run(p, Number(job.id), workerId));
    this.emit('progress', job.id, p);
  }

  complete(job: ClaimedJob, workerId: string, result: unknown): Promise<void> {
    return this.settle(workerId, { kind: 'complete', job, result });
  }

  fail(job: ClaimedJob, workerId: string, error: string, outcome: FailOutcome): Promise<void> {
    return this.settle(workerId, { kind: 'fail', job, error, outcome });
  }

  cancelActive(job: ClaimedJob, workerId: string): Promise<void> {
    return this.settle(workerId, { kind: 'cancel', job });
  }

  release(job: ClaimedJob, workerId: string): Promise<void> {
    return this.settle(workerId, { kind: 'release', job });
  }

  /**
   * Applies one settlement inside the caller's transaction, with its attempt's row (when the job was still
   * this worker's); returns the event to emit after commit.
   */
  private apply(workerId: string, s: Settlement): (() => void) | undefined {
    const after = this.applyOutcome(workerId, s);
    if (after && s.kind !== 'release' && s.run)
      this.stmts.insertRun.run(s.run.task_id, JSON.stringify(s.run));
    return after;
  }

  private applyOutcome(workerId: string, s: Settlement): (() => void) | undefined {
    const id = Number(s.job.id);
    const now = this.now();
    const started = s.kind === 'release' ? null : (s.run?.started ?? null);
    switch (s.kind) {
      case 'complete':
        return this.stmts.complete.run(JSON.stringify(s.result ?? null), now, started, id, workerId)
          .changes === 1
          ? () => this.emit('completed', s.job.id, s.result)
          : undefined;
      case 'fail':
        if ('final' in s.outcome)
          return this.stmts.failFinal.run(s.error, now, started, id, workerId).changes === 1
            ? () => this.emit('failed', s.job.id, s.error, true)
            : undefined;
        return this.stmts.failRetry.run(s.error, s.outcome.retryAt, started, id, workerId).changes === 1
          ? () => {
              this.emit('failed', s.job.id, s.error, false);
              this.localVersion++;
              this.wake?.notify();
              this.emit('enqueued', s.job.queue);
            }
          : undefined;
      case 'cancel':
        return this.stmts.cancelActive.run(now, started, id, workerId).changes === 1
          ? () => this.emit('failed', s.job.id, 'cancelled', true)
          : undefined;
      case 'release': {
        const released = this.stmts.release.get(now, now, id, workerId);
        if (released?.state === 'cancelled') return () => this.emit('failed', s.job.id, 'cancelled', true);
        return released
          ? () => {
              this.localVersion++;
              this.wake?.notify();
              this.emit('enqueued', s.job.queue);
            }
          : undefined;
      }
    }
  }

  /** Coalesces settlements made in the same tick into one transaction. */
  private settle(workerId: string, settlement: Settlement): Promise<void> {
    this.assertOpen();
    return new Promise((resolve, reject) => {
      this.pending.push({ run: () => this.apply(workerId, settlement), resolve, reject });
      if (this.pending.length >= 512) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let after: Array<(() => void) | undefined>;
    try {
      after = this.write(() => batch.map((s) => s.run()));
    } catch (err) {
      for (const s of batch) s.reject(err);
      return;
    }
    for (const a of after) a?.();
    for (const s of batch) s.resolve();
  }

  async recoverStalled(): Promise<StalledAttempt[]> {
    if (this.closed) return [];
    const now = this.now();
    const gone = this.goneWorkers();
    let returned = 0;
    const stalled: StalledAttempt[] = this.write(() => {
      // A worker whose record is older than a lease, or whose process is gone from this machine, is dead:
      // its jobs need not wait for their lease to run out.
      const rows = this.stmts.expiredLeases.all(
        now,
        now - Math.max(this.opts.leaseMs, 3000),
        JSON.stringify(gone),
      );
      const lost: StalledAttempt[] = [];
      for (const r of rows) {
        // Prefetched, never started: back to its queue, no stall and no attempt to record.
        if (r.started_at === null) {
          this.stmts.requeueStalled.run(0, now, now, r.id);
          continue;
        }
        // Dead past the stall limit whatever else; else a job asked to cancel ends cancelled.
        const dead = r.stalls + 1 > this.opts.maxStalls;
        const cancelled = !dead && r.cancel_requested === 1;
        if (dead)
          this.stmts.killStalled.run(
            `stalled ${r.stalls + 1} times (worker ${r.worker ?? '?'} stopped renewing its lease)`,
            now,
            r.id,
          );
        else this.stmts.requeueStalled.run(1, now, now, r.id);
        const a: StalledAttempt = {
          id: String(r.id),
          queue: r.queue,
          name: r.name,
          attempt: r.attempts_made,
          enqueuedAt: r.enqueued_at,
          startedAt: r.started_at,
          worker: r.worker,
          dead,
          cancelled,
        };
        // The lost attempt's row, in the transaction that returns its job.
        this.stmts.insertRun.run(a.id, JSON.stringify(lostAttemptRow(a, now)));
        lost.push(a);
      }
      returned = rows.length - lost.filter((a) => a.dead).length;
      return lost;
    });
    for (const s of stalled) this.emit('stalled', s.id, s.dead);
    if (returned > 0) this.workReady();
    // Forget worker records nobody has seen for an hour.
    const forget = this.db.prepare(`delete from workers where last_seen < ?`);
    this.write(() => forget.run(now - 3_600_000));
    return stalled;
  }

  /**
   * Workers whose process is gone: recorded on this machine (same host name and boot id) under a pid no
   * process has now. (A pid reused meanwhile reads as alive: that worker is then found by its record's age.)
   */
  private goneWorkers(): string[] {
    const gone: string[] = [];
    for (const r of this.stmts.workers.all()) {
      const w = JSON.parse(r.record) as WorkerRecord;
      if (w.host !== this.host.name || w.bootId !== this.host.bootId || w.pid === process.pid) continue;
      if (!processAlive(w.pid)) {
        gone.push(w.id);
        this.wake?.forgetPid(w.pid);
      }
    }
    return gone;
  }

  onCancelRequested(listener: (jobId: string) => void): () => void {
    this.events.on('cancel-requested', listener);
    return () => this.events.off('cancel-requested', listener);
  }

  async removeWorker(workerId: string): Promise<void> {
    if (!this.closed) this.write(() => this.stmts.removeWorker.run(workerId));
  }

  async takeRuns(max: number): Promise<PendingRun[]> {
    if (this.closed) return [];
    return this.stmts.takeRuns
      .all(max)
      .map((r) => ({ ref: String(r.id), row: JSON.parse(r.row) as AttemptRow }));
  }

  async dropRuns(runs: readonly PendingRun[]): Promise<void> {
    if (this.closed || runs.length === 0) return;
    // The rows were read in id order from one snapshot: they are exactly the ids between the first and last.
    this.write(() => this.stmts.dropRuns.run(Number(runs[0]?.ref), Number(runs[runs.length - 1]?.ref)));
  }

  async pendingRuns(taskId: string): Promise<AttemptRow[]> {
    if (this.closed) return [];
    return this.stmts.pendingRuns.all(taskId).map((r) => JSON.parse(r.row) as AttemptRow);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.wakeWaiters();
    this.stopPoll();
    this.wake?.close();
    this.db.close();
  }

  // ------------------------------------------------------------------ helpers

  /** Query plan of the claim statement (tests prove it uses jobs_ready). */
  explainClaim(): string[] {
    return this.db
      .prepare<[string, number], { detail: string }>(
        `explain query plan select id from jobs where state = 'waiting' and queue = ? and run_at <= ?
         order by priority desc, run_at, id limit 4`,
      )
      .all('default', this.now())
      .map((r) => r.detail);
  }

  /** The state the API shows: a waiting row whose run time is ahead is delayed; an active one not started, prefetched. */
  private stateOf(r: Pick<JobRow, 'state' | 'run_at' | 'started_at'>, now: number): JobState {
    if (r.state === 'waiting' && r.run_at > now) return 'delayed';
    if (r.state === 'active' && r.started_at === null) return 'prefetched';
    return r.state;
  }

  private toJob(r: JobRow): Job {
    const state = this.stateOf(r, this.now());
    return {
      id: String(r.id),
      queue: r.queue,
      name: r.name,
      payload: parseJson(r.payload),
      state,
      priority: r.priority,
      progress: r.progress,
      // A prefetched job's claim counted the attempt it has not started yet.
      attemptsMade: state === 'prefetched' ? Math.max(0, r.attempts_made - 1) : r.attempts_made,
      maxAttempts: r.max_attempts,
      stalls: r.stalls,
      idempotencyKey: r.idempotency_key,
      result: parseJson(r.result),
      error: r.error,
      enqueuedAt: r.enqueued_at,
      runAt: r.run_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      worker: r.worker,
    };
  }

  private row(id: string, n: number): JobRow {
    const row = this.stmts.get.get(n);
    if (!row) throw new AppError('TASK_NOT_FOUND', `task ${id} does not exist`, { id });
    return row;
  }

  private requireId(id: string): number {
    const n = toRowId(id);
    if (n === null) throw new AppError('TASK_NOT_FOUND', `task ${id} does not exist`, { id });
    return n;
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError('QUEUE_UNAVAILABLE', 'the job queue is closed');
  }
}

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function toRowId(id: string): number | null {
  return /^\d{1,15}$/.test(id) ? Number(id) : null;
}
