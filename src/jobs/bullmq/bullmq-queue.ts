/**
 * The queue contract on BullMQ 6 (REDIS_URL). One BullMQ queue per queue name,
 * all under our own key prefix (JOBS_REDIS_PREFIX, default `ov:q`), on our own
 * connections (never the cache's or the rate limiter's).
 *
 * Explicit mappings:
 * - priority: ours is 1..100, higher first; BullMQ's is "lower number first"
 *   (0 = none), so a job gets BullMQ priority `101 - priority` (1..100). Queue
 *   rank is applied by the worker runtime, which claims high_priority first.
 * - ids: BullMQ ids are per queue, so ours carry the queue: `h-12`, `d-12`, `l-12`.
 *   An idempotency key becomes the BullMQ jobId (`k<sha1>`), so BullMQ dedups atomically.
 * - retries: the runtime decides (capped jittered back-off, permanent, retry-after);
 *   BullMQ executes it through a custom backoff strategy that returns our delay
 *   and UnrecoverableError for a final failure.
 * - leases: BullMQ locks, renewed by our heartbeats. A lock lasts the lease less one stalled-check
 *   interval (for leases of 3 intervals and more), so a dead worker's job is back within the lease;
 *   BullMQ's stalled check returns it (maxStalledCount = JOBS_MAX_STALLS; beyond it the job fails
 *   with "stalled" and shows as dead), run by the housekeeping of every worker with the lost
 *   attempt's row in the same MULTI (bullmq-internals.ts, StalledSweep).
 * - attempt rows wait in a sorted set (`<prefix>:pending-runs`) until the recorder moves them to task_runs;
 *   each member starts with its task's id, so one task's rows are read by a lexical range (runMember).
 * - cancelled jobs: BullMQ has no such state; a waiting job is removed and a
 *   tombstone kept (`<prefix>:cancelled`), an active one fails with reason `cancelled`.
 * - retention: removeOnComplete/removeOnFail keep the last JOBS_KEEP_LAST, at most JOBS_KEEP_HOURS.
 */
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  Job as BullJob,
  type JobJson,
  type KeepJobs,
  type MinimalJob,
  Queue,
  UnrecoverableError,
  Worker as BullWorker,
} from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AppError } from '../../errors.js';
import { IdempotencyConflictError } from '../errors.js';
import { DEFAULT_BACKOFF } from '../backoff.js';
import { decodeJobCursor, encodeJobCursor, pageLimit } from '../paging.js';
import type { Shortcuts } from '../shortcuts.js';
import { assertRetryable, cancelAction } from '../state-rules.js';
import {
  FinishShortcut,
  markerDueAt,
  markerKeys,
  type NextJobData,
  probeBullmqInternals,
  redriveDeadInPlace,
  StalledSweep,
} from './bullmq-internals.js';
import { type AttemptRow, lostAttemptError, lostAttemptRow, type PendingRun } from '../task-runs.js';
import {
  type BackoffOptions,
  type ClaimedJob,
  type ClaimOptions,
  type EnqueueRequest,
  type EnqueueResult,
  type FailOutcome,
  type HeartbeatResult,
  type Job,
  JOB_STATES,
  type JobEventMap,
  type JobEventName,
  type JobPage,
  type JobQueue,
  type JobState,
  type ListJobsFilter,
  MAX_JOB_PRIORITY,
  QUEUE_NAMES,
  type QueueCounts,
  type QueueName,
  rankQueues,
  type Settlement,
  type StalledAttempt,
  type StartNotice,
  type WorkerRecord,
} from '../types.js';

export interface BullmqQueueOptions {
  url: string;
  prefix: string;
  leaseMs: number;
  maxStalls: number;
  logger: Logger;
  /** Finished jobs kept per queue (default 1000) and their maximum age, hours (default 24). */
  keepLast?: number;
  keepHours?: number;
  /** Longest blocking wait for a marker, ms (default 1000). */
  blockMs?: number;
  /** How often an idle worker looks for work when it cannot block on BullMQ's markers, ms (default 50). */
  pollMs?: number;
  /** Fast paths through BullMQ's internals (bullmq-internals.ts), probed here. */
  shortcuts: Shortcuts;
}

interface JobData {
  /** The task payload. */
  p: unknown;
  /** Our back-off settings (only with more than one attempt; DEFAULT_BACKOFF otherwise). */
  b?: BackoffOptions;
  /** Our priority (1..100); jobs enqueued by earlier versions. Now derived from the BullMQ priority. */
  pr?: number;
  /** Idempotency key. */
  k?: string;
  /** The trace context its attempts continue (JobSpans). */
  t?: string;
}

type Bull = BullJob<JobData, unknown, string>;

/** A task cancelled before it started (BullMQ removed it): its view, and the trace a retry continues. */
type Tombstone = Job & { trace?: string };

const viewOf = ({ trace: _carried, ...job }: Tombstone): Job => job;

/**
 * A job this process leased: BullMQ's decoded hash as its backend returns it, the payload parsed once.
 * BullMQ's Job wrapper is made only for the rare transitions that need its logic (fail, release,
 * progress, a dead job): building one per job, and going through it to complete, cost this process
 * about as much as the no-op task itself.
 */
interface Held {
  queue: QueueName;
  bullId: string;
  json: JobJson;
  data: JobData;
  bull?: Bull;
  /** Its start is noted (see startedKey): the note is removed when the job is settled. */
  noted?: boolean;
}

const SHORT: Record<QueueName, string> = { high_priority: 'h', default: 'd', low_priority: 'l' };
const BY_SHORT: Record<string, QueueName> = { h: 'high_priority', d: 'default', l: 'low_priority' };
const BACKOFF_TYPE = 'ov-jittered';
const CANCELLED_REASON = 'cancelled';
/** The failed reason of a job that stalled past the limit (BullMQ's own deferred failure follows it). */
const DEAD_PREFIX = 'dead: ';

/** Carries the runtime's retry delay to BullMQ's backoff strategy. */
class ScheduledRetry extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'ScheduledRetry';
  }
}

/**
 * A pending row's member in the sorted set of pending rows: `<task id>\n<finish time, 15 digits>\n<row JSON>`.
 * Members of one task sort together, in the order they finished (task ids hold no newline); the stalled
 * sweep's script builds the same (bullmq-internals.ts).
 */
const runMember = (row: AttemptRow) =>
  `${row.task_id}\n${String(row.finished).padStart(15, '0')}\n${JSON.stringify(row)}`;
const rowOfMember = (m: string) =>
  JSON.parse(m.slice(m.indexOf('\n', m.indexOf('\n') + 1) + 1)) as AttemptRow;
/** The character after the newline: `(<task id><RUN_AFTER>` ends a lexical range of that task's members. */
const RUN_AFTER = String.fromCharCode('\n'.charCodeAt(0) + 1);

/** A start note for the claim that set `processedOn` (see startedKey). */
const startNote = (processedOn: number | undefined, startedAt: number) => `${processedOn ?? 0}:${startedAt}`;
/** The start a note records for the claim that set `processedOn` (undefined: none, or a note of an earlier claim). */
function startOf(note: string | null | undefined, processedOn: number | undefined): number | undefined {
  if (!note) return undefined;
  const colon = note.indexOf(':');
  return note.slice(0, colon) === String(processedOn ?? 0) ? Number(note.slice(colon + 1)) : undefined;
}

export const toBullPriority = (p: number) => MAX_JOB_PRIORITY + 1 - p;
const fromBullPriority = (p: number | undefined) => (p ? MAX_JOB_PRIORITY + 1 - p : 50);

export class BullmqQueue implements JobQueue {
  readonly backend = 'bullmq' as const;
  /**
   * A claim in flight per slot, as BullMQ's own workers keep one "complete and fetch next" per slot:
   * Redis runs one slot's call while this process runs and settles the other slots' jobs.
   */
  readonly claimsInFlight = Number.POSITIVE_INFINITY;
  /** BullMQ trims its finished sets as jobs finish (removeOnComplete/removeOnFail): cheap there. */
  readonly keepLastApplies = 'at-completion' as const;
  private readonly conn: Redis;
  private blocking: Redis | undefined;
  private readonly queues = new Map<QueueName, Queue<JobData, unknown, string>>();
  private readonly workers = new Map<QueueName, BullWorker<JobData, unknown, string>>();
  private readonly held = new Map<string, Held>();
  /** Retention of finished jobs (the claiming worker's setting; see jobOptions). */
  private readonly keep: KeepJobs;
  /** Completions through BullMQ's moveToFinished script (shortcut bullmq_complete). */
  private readonly finish: FinishShortcut;
  /**
   * Without the stalled sweep (shortcut off): jobs BullMQ's own stalled checker in this process returned
   * to their queue, until recoverStalled() reports them.
   */
  private readonly stalledFound: Array<{ queue: QueueName; bullId: string }> = [];
  private readonly sweep: StalledSweep;
  /** How often stalled jobs are checked (the worker housekeeping's period), and how long a lock lasts. */
  private readonly stallEveryMs: number;
  private readonly lockMs: number;
  /**
   * Attempt rows waiting to be moved to task_runs: a sorted set whose members all score 0, so it is ordered
   * by member (runMember: task id, finish time, row), and concurrent movers remove exactly what they moved.
   */
  private readonly runsKey: string;
  /**
   * Start notes: task id → `<processedOn of its claim>:<start, epoch ms>`. An active BullMQ job is ours
   * `active` only when its note names its current claim (processedOn changes with every claim), else
   * `prefetched`: held by a worker, not started. Written with the worker's next claim or flush after the
   * start (a job that ends first needs none), removed when the job is settled or returned.
   */
  private readonly startedKey: string;
  private readonly events = new EventEmitter();
  /** Who waits for work, with the marker keys each wants watched ([] when the markers shortcut is off). */
  private readonly waiters = new Map<() => void, readonly string[]>();
  private watching = false;
  /** The marker keys the blocking pop in flight watches. */
  private watched: ReadonlySet<string> = new Set();
  /** A key of this process's own, watched beside the markers: a push to it ends a blocking pop early. */
  private readonly wakeKey: string;
  private ranked: { of: readonly QueueName[]; ranked: readonly QueueName[] } | undefined;
  private closed = false;
  /** Cancel requests as they are made: published on this channel, heard by workers' subscriptions. */
  private readonly cancelChannel: string;
  private cancelSub: Redis | undefined;
  private readonly cancelListeners = new Set<(jobId: string) => void>();
  private readonly keepLast: number;
  private readonly keepHours: number;

  constructor(private readonly opts: BullmqQueueOptions) {
    this.keepLast = opts.keepLast ?? 1000;
    this.wakeKey = `${opts.prefix}:wake:${randomUUID()}`;
    this.keepHours = opts.keepHours ?? 24;
    this.keep = { count: this.keepLast, age: this.keepHours * 3600 };
    this.runsKey = `${opts.prefix}:pending-runs`;
    this.startedKey = `${opts.prefix}:started`;
    this.cancelChannel = `${opts.prefix}:cancels`;
    this.stallEveryMs = Math.max(200, Math.min(1000, Math.floor(opts.leaseMs / 2)));
    // A lock renewed last at t runs out at t + lockMs; the next check after that (within stallEveryMs)
    // returns the job, and another worker claims it within a few ms: so it runs again within one lease of
    // its worker's death (200 ms left for that claim). Shorter leases keep the whole lease as lock.
    this.lockMs =
      opts.leaseMs >= 3 * this.stallEveryMs ? opts.leaseMs - this.stallEveryMs - 200 : opts.leaseMs;
    // Commands wait through a Redis restart instead of failing (BullMQ's advice for workers).
    this.conn = new Redis(opts.url, { maxRetriesPerRequest: null, enableReadyCheck: true });
    this.conn.on('error', (err) => opts.logger.warn({ err }, 'job queue Redis connection error'));
    for (const name of QUEUE_NAMES) {
      const q = new Queue<JobData, unknown, string>(name, { connection: this.conn, prefix: opts.prefix });
      q.on('error', (err) => opts.logger.warn({ err, queue: name }, 'BullMQ queue error'));
      this.queues.set(name, q);
    }
    this.events.setMaxListeners(0);
    probeBullmqInternals(opts.shortcuts, this.q('default') as never, this.keep);
    this.finish = new FinishShortcut(opts.shortcuts, this.keep);
    this.sweep = new StalledSweep(opts.shortcuts);
  }

  /** Warns when Redis may evict keys (queue data would vanish). Called once at start-up. */
  async checkEvictionPolicy(): Promise<string | undefined> {
    try {
      const res = (await this.conn.config('GET', 'maxmemory-policy')) as string[];
      const policy = res[1];
      if (policy !== 'noeviction')
        this.opts.logger.warn(
          { policy },
          'Redis maxmemory-policy is not noeviction: queue keys can be evicted under memory pressure',
        );
      return policy;
    } catch (err) {
      this.opts.logger.warn({ err }, 'could not read Redis maxmemory-policy (CONFIG may be disabled)');
      return undefined;
    }
  }

  /** The BullMQ queues, for Bull Board. */
  bullQueues(): Queue<JobData, unknown, string>[] {
    return [...this.queues.values()];
  }

  private q(name: QueueName): Queue<JobData, unknown, string> {
    return this.queues.get(name) as Queue<JobData, unknown, string>;
  }

  /** BullMQ worker used for manual claims (never autorun: our runtime decides what to claim). */
  private w(name: QueueName): BullWorker<JobData, unknown, string> {
    let w = this.workers.get(name);
    if (!w) {
      w = new BullWorker<JobData, unknown, string>(name, null, {
        connection: this.conn,
        prefix: this.opts.prefix,
        autorun: false,
        lockDuration: this.lockMs,
        // The sweep runs every stallEveryMs in each worker; one check per interval is enough across them
        // (BullMQ's stalled-check key lives this long).
        stalledInterval: this.sweep.usable ? Math.max(100, this.stallEveryMs - 100) : this.stallEveryMs,
        maxStalledCount: this.opts.maxStalls,
        removeOnComplete: this.keep,
        removeOnFail: this.keep,
        settings: {
          backoffStrategy: (attemptsMade: number, _type?: string, err?: Error, job?: MinimalJob) => {
            if (err instanceof ScheduledRetry) return err.delayMs;
            const b = (job?.data as JobData | undefined)?.b;
            return b ? Math.min(b.capMs, b.baseMs * 2 ** (attemptsMade - 1)) : 1000;
          },
        },
      });
      w.on('error', (err) => this.opts.logger.warn({ err, queue: name }, 'BullMQ worker error'));
      if (!this.sweep.usable) {
        // BullMQ's own checker returns the jobs of dead workers (lock expired) to the queue, or fails
        // them past maxStalledCount; their rows are written afterwards from what the job then holds.
        w.on('stalled', (jobId: string) => this.stalledFound.push({ queue: name, bullId: jobId }));
        void w
          .startStalledCheckTimer()
          .catch((err: unknown) => this.opts.logger.warn({ err }, 'stalled checker stopped'));
      }
      this.workers.set(name, w);
    }
    return w;
  }

  private publicId(queue: QueueName, bullId: string): string {
    return `${SHORT[queue]}-${bullId}`;
  }

  private parseId(id: string): { queue: QueueName; bullId: string } | null {
    const m = /^([hdl])-(.{1,200})$/.exec(id);
    const queue = m ? BY_SHORT[m[1] as string] : undefined;
    return m && queue ? { queue, bullId: m[2] as string } : null;
  }

  /**
   * Only what a job needs stored with it: every job's hash is written at enqueue and read back, parsed,
   * at each claim (BullMQ returns the whole hash), so each field costs Redis and this process per job.
   * Retention (removeOnComplete/removeOnFail) is the claiming worker's setting, the same for every job;
   * a back-off only matters with a second attempt.
   */
  private jobOptions(r: EnqueueRequest) {
    return {
      ...(r.idempotencyKey ? { jobId: `k${createHash('sha1').update(r.idempotencyKey).digest('hex')}` } : {}),
      ...(r.delayMs > 0 ? { delay: r.delayMs } : {}),
      priority: toBullPriority(r.priority),
      attempts: r.attempts,
      ...(r.attempts > 1 ? { backoff: { type: BACKOFF_TYPE, delay: r.backoff.baseMs } } : {}),
    };
  }

  private data(r: EnqueueRequest): JobData {
    return {
      p: r.payload ?? null,
      ...(r.attempts > 1 ? { b: r.backoff } : {}),
      ...(r.idempotencyKey ? { k: r.idempotencyKey } : {}),
      ...(r.trace ? { t: r.trace } : {}),
    };
  }

  async enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    const [r] = await this.enqueueBulk([req]);
    return r as EnqueueResult;
  }

  async enqueueBulk(reqs: readonly EnqueueRequest[]): Promise<EnqueueResult[]> {
    this.assertOpen();
    const out: EnqueueResult[] = new Array<EnqueueResult>(reqs.length);
    // A key names one task across all queues, as in the embedded engine; a key that names a task of
    // another name refuses the whole batch before anything is added.
    const existing = await this.jobsByKey(reqs);
    for (const [i, found] of existing) {
      const r = reqs[i] as EnqueueRequest;
      const id = this.publicId(found.queue, found.bullId);
      if (found.name !== r.name)
        throw new IdempotencyConflictError(r.idempotencyKey as string, id, found.name, r.name, i);
      out[i] = { id, created: false };
    }
    const byQueue = new Map<QueueName, number[]>();
    reqs.forEach((r, i) => {
      if (existing.has(i)) return;
      const idx = byQueue.get(r.queue);
      if (idx) idx.push(i);
      else byQueue.set(r.queue, [i]);
    });
    for (const [queue, idx] of byQueue) {
      const jobs =
        idx.length === 1
          ? [
              await this.q(queue).add(
                (reqs[idx[0] as number] as EnqueueRequest).name,
                this.data(reqs[idx[0] as number] as EnqueueRequest),
                this.jobOptions(reqs[idx[0] as number] as EnqueueRequest),
              ),
            ]
          : await this.q(queue).addBulk(
              idx.map((i) => {
                const r = reqs[i] as EnqueueRequest;
                return { name: r.name, data: this.data(r), opts: this.jobOptions(r) };
              }),
            );
      idx.forEach((i, n) => {
        out[i] = { id: this.publicId(queue, String((jobs[n] as Bull).id)), created: true };
      });
      this.events.emit('enqueued', queue);
    }
    this.wakeWaiters();
    return out;
  }

  /**
   * The jobs that already have the idempotency keys of these requests, by request index: one
   * pipeline reads the name of each keyed job id in every queue (its own queue first).
   */
  private async jobsByKey(
    reqs: readonly EnqueueRequest[],
  ): Promise<Map<number, { queue: QueueName; bullId: string; name: string }>> {
    const found = new Map<number, { queue: QueueName; bullId: string; name: string }>();
    const keyed = reqs.flatMap((r, i) => (r.idempotencyKey ? [i] : []));
    if (keyed.length === 0) return found;
    const pipe = this.conn.pipeline();
    const asked: { i: number; queue: QueueName; bullId: string }[] = [];
    for (const i of keyed) {
      const r = reqs[i] as EnqueueRequest;
      const bullId = this.jobOptions(r).jobId as string;
      for (const queue of [r.queue, ...QUEUE_NAMES.filter((q) => q !== r.queue)]) {
        pipe.hget(this.q(queue).toKey(bullId), 'name');
        asked.push({ i, queue, bullId });
      }
    }
    const res = (await pipe.exec()) ?? [];
    asked.forEach((a, n) => {
      const name = res[n]?.[1];
      if (typeof name === 'string' && !found.has(a.i))
        found.set(a.i, { queue: a.queue, bullId: a.bullId, name });
    });
    return found;
  }

  /** `note`: the job's start note (startedKey), if it has one. */
  private async toJob(queue: QueueName, j: Bull, note: string | null | undefined): Promise<Job> {
    const raw = await j.getState();
    let state: JobState;
    let startedAt = j.processedOn ?? null;
    switch (raw) {
      case 'waiting':
      case 'prioritized':
      case 'waiting-children':
        // Stalled past the limit: BullMQ fails it when next claimed; it will never run again.
        state = j.deferredFailure ? 'dead' : 'waiting';
        break;
      case 'delayed':
        state = 'delayed';
        break;
      case 'active': {
        const started = startOf(note, j.processedOn);
        state = started === undefined ? 'prefetched' : 'active';
        startedAt = started ?? null;
        break;
      }
      case 'completed':
        state = 'completed';
        break;
      case 'failed':
        state =
          j.failedReason === CANCELLED_REASON
            ? 'cancelled'
            : j.failedReason?.startsWith(DEAD_PREFIX)
              ? 'dead'
              : 'failed';
        break;
      default:
        state = 'waiting';
    }
    return {
      id: this.publicId(queue, String(j.id)),
      queue,
      name: j.name,
      payload: j.data.p,
      state,
      priority: j.data.pr ?? fromBullPriority(j.priority),
      // Completed means done: 100, as on the embedded engine, whether or not the task reported progress.
      progress: state === 'completed' ? 100 : typeof j.progress === 'number' ? j.progress : 0,
      // BullMQ counts finished attempts (completed or failed); ours counts started ones.
      attemptsMade: j.attemptsMade + (state === 'active' ? 1 : 0),
      maxAttempts: j.opts.attempts ?? 1,
      stalls: j.stalledCounter,
      idempotencyKey: j.data.k ?? null,
      result: j.returnvalue ?? null,
      error: j.failedReason || null,
      enqueuedAt: j.timestamp,
      runAt: j.timestamp + (j.delay ?? 0),
      startedAt,
      finishedAt: j.finishedOn ?? null,
      worker: null,
    };
  }

  private async cancelledTombstone(id: string): Promise<Tombstone | null> {
    const raw = await this.conn.hget(`${this.opts.prefix}:cancelled`, id);
    return raw ? (JSON.parse(raw) as Tombstone) : null;
  }

  async get(id: string): Promise<Job | null> {
    const p = this.parseId(id);
    if (!p) return null;
    const [j, note] = await Promise.all([
      this.q(p.queue).getJob(p.bullId) as Promise<Bull | undefined>,
      this.conn.hget(this.startedKey, id),
    ]);
    if (j) return this.toJob(p.queue, j, note);
    const tomb = await this.cancelledTombstone(id);
    return tomb ? viewOf(tomb) : null;
  }

  async list(filter: ListJobsFilter): Promise<JobPage> {
    const limit = pageLimit(filter.limit);
    const offset = filter.cursor ? decodeJobCursor(filter.cursor) : 0;
    const types: Record<JobState, string[]> = {
      waiting: ['waiting', 'prioritized'],
      delayed: ['delayed'],
      // Active in BullMQ's terms, told apart by their start notes (toJob).
      prefetched: ['active'],
      active: ['active'],
      completed: ['completed'],
      failed: ['failed'],
      dead: ['failed'],
      cancelled: ['failed'],
    };
    const wanted = filter.state
      ? types[filter.state]
      : ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'];
    const queues = wanted.length === 0 ? [] : filter.queue ? [filter.queue] : [...QUEUE_NAMES];
    // Read enough of each queue to fill the page after filtering, newest first.
    const span = offset + limit + 1;
    const all: Job[] = [];
    for (const queue of queues) {
      const jobs = (await this.q(queue).getJobs(
        wanted as never,
        0,
        filter.name || filter.state ? span * 4 : span,
        false,
      )) as Bull[];
      const found = jobs.filter(Boolean);
      const notes = found.length
        ? await this.conn.hmget(this.startedKey, ...found.map((j) => this.publicId(queue, String(j.id))))
        : [];
      for (const [i, j] of found.entries()) all.push(await this.toJob(queue, j, notes[i]));
    }
    if (!filter.state || filter.state === 'cancelled') {
      const tomb = await this.conn.hvals(`${this.opts.prefix}:cancelled`);
      for (const t of tomb) {
        const j = viewOf(JSON.parse(t) as Tombstone);
        if (!filter.queue || j.queue === filter.queue) all.push(j);
      }
    }
    const filtered = all
      .filter((j) => (!filter.state || j.state === filter.state) && (!filter.name || j.name === filter.name))
      .sort((a, b) => b.enqueuedAt - a.enqueuedAt || (b.id < a.id ? -1 : 1));
    const items = filtered.slice(offset, offset + limit);
    return { items, next_cursor: filtered.length > offset + limit ? encodeJobCursor(offset + limit) : null };
  }

  async counts(): Promise<QueueCounts[]> {
    const now = Date.now();
    const out: QueueCounts[] = [];
    const tomb = (await this.conn.hvals(`${this.opts.prefix}:cancelled`)).map((t) => JSON.parse(t) as Job);
    for (const queue of QUEUE_NAMES) {
      const q = this.q(queue);
      const c = await q.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
      const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
      counts.waiting = (c.waiting ?? 0) + (c.prioritized ?? 0);
      counts.delayed = c.delayed ?? 0;
      const started = await this.startedCount(queue);
      counts.active = started;
      counts.prefetched = Math.max(0, (c.active ?? 0) - started);
      counts.completed = c.completed ?? 0;
      counts.failed = c.failed ?? 0;
      counts.cancelled = tomb.filter((t) => t.queue === queue).length;
      const key = (s: string) => q.toKey(s);
      const [completedLastMinute, failedLastMinute] = await Promise.all([
        this.conn.zcount(key('completed'), now - 60_000, '+inf'),
        this.conn.zcount(key('failed'), now - 60_000, '+inf'),
      ]);
      const oldest = (await q.getJobs(['waiting', 'prioritized'] as never, 0, 50, true)) as Bull[];
      const t = oldest.filter(Boolean).reduce((m, j) => Math.min(m, j.timestamp), Infinity);
      out.push({
        queue,
        paused: await q.isPaused(),
        counts,
        completedLastMinute,
        failedLastMinute,
        oldestWaitingMs: Number.isFinite(t) ? Math.max(0, now - t) : 0,
      });
    }
    return out;
  }

  /** How many of `queue`'s active jobs (BullMQ's term) have a start note for their current claim. */
  private async startedCount(queue: QueueName): Promise<number> {
    const q = this.q(queue);
    const ids = await this.conn.lrange(q.keys.active as string, 0, -1);
    if (ids.length === 0) return 0;
    const pipe = this.conn.pipeline();
    pipe.hmget(this.startedKey, ...ids.map((bullId) => this.publicId(queue, bullId)));
    for (const bullId of ids) pipe.hget(q.toKey(bullId), 'processedOn');
    const [notes, ...claims] = ((await pipe.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return v;
    });
    return ids.filter((_, i) => {
      const claim = claims[i] as string | null;
      return (
        startOf((notes as Array<string | null>)[i], claim === null ? undefined : Number(claim)) !== undefined
      );
    }).length;
  }

  async cancel(id: string): Promise<Job> {
    const job = await this.get(id);
    const p = this.parseId(id);
    if (!job || !p) throw new AppError('TASK_NOT_FOUND', `task ${id} does not exist`, { id });
    if (cancelAction(id, job.state) === 'ask-worker') {
      await this.askToCancel(id);
      return job;
    }
    const j = (await this.q(p.queue).getJob(p.bullId)) as Bull | undefined;
    try {
      await j?.remove();
    } catch (err) {
      // It was claimed meanwhile: ask the worker to stop it instead.
      this.opts.logger.info({ id, err }, 'job started while being cancelled; cancelling the active job');
      await this.askToCancel(id);
      return (await this.get(id)) as Job;
    }
    const cancelled: Job = { ...job, state: 'cancelled', error: CANCELLED_REASON, finishedAt: Date.now() };
    const tomb: Tombstone = { ...cancelled, ...(j?.data.t ? { trace: j.data.t } : {}) };
    await this.conn.hset(`${this.opts.prefix}:cancelled`, id, JSON.stringify(tomb));
    return cancelled;
  }

  /** Flags an active job for cancelling (its worker's heartbeat reads the flag) and tells workers at once. */
  private async askToCancel(id: string): Promise<void> {
    await this.conn
      .multi()
      .set(`${this.opts.prefix}:cancel:${id}`, '1', 'EX', 86_400)
      .publish(this.cancelChannel, id)
      .exec();
  }

  onCancelRequested(listener: (jobId: string) => void): () => void {
    this.cancelListeners.add(listener);
    if (!this.cancelSub && !this.closed) {
      const sub = this.conn.duplicate({ maxRetriesPerRequest: null });
      sub.on('error', (err) => this.opts.logger.warn({ err }, 'job cancel subscription error'));
      sub.on('message', (_channel: string, id: string) => {
        for (const l of this.cancelListeners) l(id);
      });
      sub
        .subscribe(this.cancelChannel)
        .catch((err: unknown) =>
          this.opts.logger.warn(
            { err },
            'could not hear cancel requests; heartbeats find them within a second',
          ),
        );
      this.cancelSub = sub;
    }
    return () => this.cancelListeners.delete(listener);
  }

  async retry(id: string): Promise<Job> {
    const job = await this.get(id);
    const p = this.parseId(id);
    if (!job || !p) throw new AppError('TASK_NOT_FOUND', `task ${id} does not exist`, { id });
    assertRetryable(id, job.state);
    let j = (await this.q(p.queue).getJob(p.bullId)) as Bull | undefined;
    // The trace its attempts continue: a task enqueued again below keeps it, as one redriven in place does.
    let trace = j?.data.t;
    if (j && j.deferredFailure && (await j.getState()) !== 'failed') {
      // Dead but still listed as waiting (see toJob): clear the pending failure and the stall count, or
      // (without that shortcut) remove it and enqueue it again below.
      if (!(await redriveDeadInPlace(this.opts.shortcuts, this.conn, this.q(p.queue) as never, p.bullId))) {
        await j.remove();
        j = undefined;
      }
    } else if (j) {
      await j.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    } else trace = (await this.cancelledTombstone(id))?.trace;
    if (!j) {
      // A task cancelled before it started was removed (BullMQ has no finished state it can enter
      // without running): enqueue it again. BullMQ refuses its own numeric ids as custom ids, so such a
      // task comes back under a new id (returned; the cancelled one stays in the history); a task
      // enqueued with an idempotency key keeps its id.
      const numeric = /^\d+$/.test(p.bullId);
      const added = await this.q(p.queue).add(
        job.name,
        {
          p: job.payload,
          b: DEFAULT_BACKOFF,
          pr: job.priority,
          ...(job.idempotencyKey ? { k: job.idempotencyKey } : {}),
          ...(trace ? { t: trace } : {}),
        },
        {
          ...(numeric ? {} : { jobId: p.bullId }),
          priority: toBullPriority(job.priority),
          attempts: job.maxAttempts,
          backoff: { type: BACKOFF_TYPE, delay: DEFAULT_BACKOFF.baseMs },
        },
      );
      if (numeric) {
        this.events.emit('enqueued', p.queue);
        this.wakeWaiters();
        return (await this.get(this.publicId(p.queue, String(added.id)))) as Job;
      }
    }
    await this.conn.hdel(`${this.opts.prefix}:cancelled`, id);
    await this.conn.del(`${this.opts.prefix}:cancel:${id}`);
    this.events.emit('enqueued', p.queue);
    this.wakeWaiters();
    return (await this.get(id)) as Job;
  }

  async pause(queue: QueueName): Promise<void> {
    await this.q(queue).pause();
  }

  async resume(queue: QueueName): Promise<void> {
    await this.q(queue).resume();
    this.events.emit('enqueued', queue);
    this.wakeWaiters();
  }

  async prune(opts: { keepLast: number; maxAgeMs: number }): Promise<number> {
    let removed = 0;
    for (const queue of QUEUE_NAMES) {
      const q = this.q(queue);
      for (const type of ['completed', 'failed'] as const) {
        // BullMQ's clean removes by age; the count limit is applied at completion (removeOnComplete/removeOnFail,
        // whose {count, age} the embedded engine's prune applies the same way).
        removed += (await q.clean(opts.maxAgeMs, 100_000, type)).length;
      }
    }
    const cutoff = Date.now() - opts.maxAgeMs;
    const tomb = await this.conn.hgetall(`${this.opts.prefix}:cancelled`);
    for (const [id, raw] of Object.entries(tomb)) {
      if (((JSON.parse(raw) as Job).finishedAt ?? 0) < cutoff) {
        await this.conn.hdel(`${this.opts.prefix}:cancelled`, id);
        removed++;
      }
    }
    return removed;
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    const all = await this.conn.hgetall(`${this.opts.prefix}:workers`);
    const now = Date.now();
    const out: WorkerRecord[] = [];
    for (const [id, raw] of Object.entries(all)) {
      const r = JSON.parse(raw) as WorkerRecord;
      if (now - r.lastSeenAt > 3_600_000) await this.conn.hdel(`${this.opts.prefix}:workers`, id);
      else out.push(r);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  on<E extends JobEventName>(event: E, listener: (...args: JobEventMap[E]) => void): void {
    this.events.on(event, listener as (...args: unknown[]) => void);
  }

  off<E extends JobEventName>(event: E, listener: (...args: JobEventMap[E]) => void): void {
    this.events.off(event, listener as (...args: unknown[]) => void);
  }

  async claim(opts: ClaimOptions): Promise<ClaimedJob[]> {
    this.assertOpen();
    const noting = opts.started?.length ? this.noteStarts(opts.started) : undefined;
    // Leases only for free slots: a lease is one script call per job whether it is made ahead or not, so
    // holding jobs ahead saves nothing here (each slot keeps its own claim in flight instead). The room
    // (`hold`) takes only a completion's fetched job that a high_priority job found by this claim displaces.
    const hold = opts.room ?? 0;
    const slots = opts.max - hold;
    const nonHighSlots = (opts.maxNonHigh ?? opts.max) - hold;
    // Completing a job may lease its queue's next job in the same call (as BullMQ's own workers do: it
    // halves the round trips) when nothing could outrank that job: its queue is the top-ranked one this
    // worker serves, or only high_priority ranks above it. In that case this claim still asks high_priority
    // for every free slot, and what it finds starts first: so such a fetch is made only while the room can
    // hold what it fetched (nothing is leased that might have to go back). Without it, the default
    // three-queue worker paid a separate lease for every default job.
    const ranked = this.rank(opts.queues);
    const top = ranked[0];
    const second = top === 'high_priority' ? ranked[1] : undefined;
    let fetchedHigh = 0;
    let fetchedNonHigh = 0;
    let fetchedSecond = 0;
    // Settlements are independent of each other and of the claims: all go out together, one round trip.
    // (Usually one: the worker runtime keeps a claim in flight per slot.)
    const pending: Array<Promise<Held | undefined>> = [];
    for (const s of opts.settle ?? []) {
      const q = s.job.queue;
      const left = slots - fetchedHigh - fetchedNonHigh;
      let fetch = false;
      if (s.kind === 'complete' && q === 'high_priority' && q === top) fetch = left > 0;
      else if (s.kind === 'complete' && q === top) fetch = left > 0 && fetchedNonHigh < nonHighSlots;
      else if (s.kind === 'complete' && q === second)
        fetch = left > 0 && fetchedNonHigh < nonHighSlots && fetchedSecond < hold;
      if (fetch && q === 'high_priority') fetchedHigh++;
      else if (fetch) fetchedNonHigh++;
      if (fetch && q === second) fetchedSecond++;
      pending.push(this.settle(s, opts.workerId, fetch));
    }
    const settled = pending.length === 1 ? (pending[0] as Promise<Held | undefined>) : Promise.all(pending);
    const out: ClaimedJob[] = [];
    let nonHigh = 0;
    // Slots promised to fetch-next completions are not claimed again (but high_priority, when it ranks
    // above a fetched queue, may still take every slot).
    const max = slots - fetchedHigh - (second ? 0 : fetchedNonHigh);
    const maxNonHigh = nonHighSlots - fetchedNonHigh;
    let next: Held | undefined | Array<Held | undefined>;
    try {
      // Usually nothing is left to claim: every free slot's job came with a completion.
      if (max > 0)
        await this.claimInto(
          out,
          { ...opts, max, maxNonHigh },
          () => nonHigh++,
          () => nonHigh,
        );
    } finally {
      next = await settled;
      await noting;
    }
    for (const h of Array.isArray(next) ? next : [next]) {
      if (!h) continue;
      const c = h.json.deferredFailure ? await this.failDead(h, opts.workerId) : this.adopt(h);
      if (c) out.push(c);
    }
    return out;
  }

  /**
   * Notes the starts of held jobs (see startedKey), in one command sent with the claim that carries them.
   * A job settled meanwhile is no longer held and needs none: its row carries its start.
   */
  private async noteStarts(notices: readonly StartNotice[]): Promise<void> {
    const fields: string[] = [];
    for (const n of notices) {
      const h = this.held.get(n.job.id);
      if (!h || h.noted) continue;
      h.noted = true;
      fields.push(n.job.id, startNote(h.json.processedOn, n.startedAt));
    }
    if (fields.length === 0) return;
    try {
      await this.conn.hset(this.startedKey, ...fields);
    } catch (err) {
      // The claim's settlements are committed: failing it would send them again. These jobs read as
      // prefetched until they end (a crash meanwhile returns them without a row).
      for (let i = 0; i < fields.length; i += 2) {
        const h = this.held.get(fields[i] as string);
        if (h) h.noted = false;
      }
      this.opts.logger.warn({ err, jobs: fields.length / 2 }, 'could not note job starts');
    }
  }

  /**
   * Commits one settlement; a completion with `fetch` returns the queue's next job, leased in the same call.
   * The attempt's row goes out first, on the same connection: Redis has it before the job reads as settled.
   */
  private async settle(s: Settlement, workerId: string, fetch: boolean): Promise<Held | undefined> {
    const recorded = s.kind !== 'release' && s.run ? this.recordRun(s.run) : undefined;
    const noted = this.held.get(s.job.id)?.noted === true;
    try {
      if (fetch && s.kind === 'complete') return await this.completeAndFetch(s.job, workerId, s.result, true);
      if (s.kind === 'complete') await this.complete(s.job, workerId, s.result);
      else if (s.kind === 'fail') await this.fail(s.job, workerId, s.error, s.outcome);
      else if (s.kind === 'cancel') await this.cancelActive(s.job, workerId);
      else await this.release(s.job, workerId);
    } catch (err) {
      // Typically "Missing lock": the lease was lost and the job already went back to the queue.
      this.opts.logger.warn(
        { err, jobId: s.job.id, kind: s.kind },
        'could not settle a job; it will run again',
      );
    } finally {
      // After the settlement, not before: a note outliving its job's claim reads as nothing (see startOf).
      if (noted) this.dropNote(s.job.id);
      await recorded;
    }
    return undefined;
  }

  /** Removes a settled job's start note (not awaited: the claim does not wait for it). */
  private dropNote(id: string): void {
    this.conn
      .hdel(this.startedKey, id)
      .catch((err: unknown) =>
        this.opts.logger.warn({ err, jobId: id }, 'could not remove a start note; it names a finished claim'),
      );
  }

  /** Adds an attempt's row to the pending rows (see task-runs.ts). */
  private recordRun(row: AttemptRow): Promise<void> {
    return this.conn.zadd(this.runsKey, 0, runMember(row)).then(
      () => undefined,
      (err: unknown) =>
        this.opts.logger.error({ err, jobId: row.task_id }, 'could not store an attempt row; it is lost'),
    );
  }

  /** The first pending rows in member order: by task, each task's rows in the order they finished. */
  async takeRuns(max: number): Promise<PendingRun[]> {
    if (this.closed) return [];
    const members = await this.conn.zrange(this.runsKey, '0', String(max - 1));
    return members.map((m) => ({ ref: m, row: rowOfMember(m) }));
  }

  async dropRuns(runs: readonly PendingRun[]): Promise<void> {
    if (this.closed || runs.length === 0) return;
    await this.conn.zrem(this.runsKey, ...runs.map((r) => r.ref));
  }

  /** One task's pending rows: a lexical range of the members that start with its id (O(log n) to find). */
  async pendingRuns(taskId: string): Promise<AttemptRow[]> {
    const members = await this.conn.zrangebylex(this.runsKey, `[${taskId}\n`, `(${taskId}${RUN_AFTER}`);
    return members.map(rowOfMember);
  }

  /** The queues in claim order; the worker runtime passes the same list to every claim. */
  private rank(queues: readonly QueueName[]): readonly QueueName[] {
    if (this.ranked?.of !== queues) this.ranked = { of: queues, ranked: rankQueues(queues) };
    return this.ranked.ranked;
  }

  /** A leased job from BullMQ's next-job tuple (none: the queue had nothing ready). */
  private leased(queue: QueueName, next: NextJobData): Held | undefined {
    const json = next?.[0];
    const bullId = next?.[1];
    if (!json || !bullId) return undefined;
    return { queue, bullId, json, data: JSON.parse(json.data || '{}') as JobData };
  }

  /** BullMQ's Job wrapper for a held job, made on first need (as its worker would have made it). */
  private bull(h: Held): Bull {
    return (h.bull ??= BullJob.fromJSON<JobData, unknown, string>(this.w(h.queue), h.json, h.bullId));
  }

  /** BullMQ 6 marks a job that stalled past maxStalledCount and fails it when next claimed: it is dead. */
  private async failDead(h: Held, workerId: string): Promise<undefined> {
    await this.bull(h).moveToFailed(
      new UnrecoverableError(`${DEAD_PREFIX}${h.json.deferredFailure ?? 'stalled too often'}`),
      workerId,
      false,
    );
    this.events.emit('stalled', this.publicId(h.queue, h.bullId), true);
    return undefined;
  }

  /** Turns a leased BullMQ job into a claimed one (a dead one goes through failDead first). */
  private adopt(h: Held): ClaimedJob {
    const id = this.publicId(h.queue, h.bullId);
    this.held.set(id, h);
    const { json, data } = h;
    const claimed: ClaimedJob = {
      id,
      queue: h.queue,
      name: json.name,
      payload: data.p,
      priority: data.pr ?? fromBullPriority(json.priority),
      attempt: json.attemptsMade + 1,
      maxAttempts: json.opts.attempts ?? 1,
      backoff: data.b ?? DEFAULT_BACKOFF,
      enqueuedAt: json.timestamp,
      startedAt: json.processedOn ?? Date.now(),
      ...(data.t ? { trace: data.t } : {}),
    };
    this.events.emit('active', claimed);
    return claimed;
  }

  private async claimInto(
    out: ClaimedJob[],
    opts: ClaimOptions,
    countNonHigh: () => void,
    nonHighCount: () => number,
  ): Promise<void> {
    for (const queue of this.rank(opts.queues)) {
      if (opts.emptyQueues?.includes(queue)) continue;
      const backend = this.w(queue).getBackend();
      for (;;) {
        const room = Math.min(
          opts.max - out.length,
          queue === 'high_priority' ? Infinity : (opts.maxNonHigh ?? opts.max) - nonHighCount(),
        );
        if (room <= 0) break;
        // Concurrent claims on one queue take its next jobs in order (each moveToActive is atomic);
        // queues are still visited strictly in rank order.
        const got = await Promise.all(
          Array.from({ length: room }, () => backend.moveToActive(opts.workerId) as Promise<NextJobData>),
        );
        const jobs = got.map((next) => this.leased(queue, next)).filter((h): h is Held => h !== undefined);
        for (const h of jobs) {
          const c = h.json.deferredFailure ? await this.failDead(h, opts.workerId) : this.adopt(h);
          if (!c) continue;
          if (queue !== 'high_priority') countNonHigh();
          out.push(c);
        }
        // The queue ran dry (or every claim was a dead job): go to the next queue.
        if (jobs.length < room) break;
      }
    }
  }

  waitForWork(queues: readonly QueueName[], timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.closed) return Promise.resolve();
    const keys = markerKeys(
      this.opts.shortcuts,
      QUEUE_NAMES.filter((q) => queues.includes(q)).map((q) => this.q(q) as never),
    );
    this.opts.shortcuts.count('bullmq_markers', keys !== undefined);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      // Without the markers, look again after the poll interval (a claim finds what was added meanwhile).
      const timer = setTimeout(done, keys ? timeoutMs : Math.min(timeoutMs, this.opts.pollMs ?? 50));
      signal.addEventListener('abort', done, { once: true });
      this.waiters.set(done, keys ?? []);
      if (!keys) return;
      if (!this.watching) void this.watchMarkers();
      // The pop in flight watches other queues (a wait for high_priority alone): end it, so the next
      // pop watches this wait's queues too.
      else if (keys.some((k) => !this.watched.has(k))) this.interruptWatch();
    });
  }

  /**
   * Blocks on the BullMQ marker keys of every queue someone waits for (BZPOPMIN, one dedicated
   * connection) while anyone waits, and wakes the waiters when a job is added, a delayed job comes
   * due, or a retry is scheduled.
   */
  private async watchMarkers(): Promise<void> {
    this.watching = true;
    this.blocking ??= this.conn.duplicate({ maxRetriesPerRequest: null });
    try {
      while (!this.closed && this.waiters.size > 0) {
        const keys = new Set([...this.waiters.values()].flat());
        if (keys.size === 0) break;
        this.watched = keys;
        const res = await this.blocking.bzpopmin(...keys, this.wakeKey, (this.opts.blockMs ?? 1000) / 1000);
        if (!res || res[0] === this.wakeKey) continue;
        const due = markerDueAt(res);
        const wait = due - Date.now();
        if (due > 0 && wait > 0) {
          // A delayed job: wake when it is due (the claim promotes it).
          setTimeout(() => this.wakeWaiters(), wait).unref();
        } else this.wakeWaiters();
      }
    } catch (err) {
      if (!this.closed) this.opts.logger.warn({ err }, 'waiting for jobs failed; falling back to polling');
    } finally {
      this.watching = false;
      this.watched = new Set();
    }
  }

  /** Ends the blocking pop in flight (the key expires by itself should no pop take it). */
  private interruptWatch(): void {
    this.conn
      .multi()
      .zadd(this.wakeKey, 0, 'wake')
      .pexpire(this.wakeKey, 60_000)
      .exec()
      .catch((err: unknown) =>
        this.opts.logger.warn({ err }, 'could not wake the marker watch; it wakes within blockMs'),
      );
  }

  private wakeWaiters(): void {
    for (const w of [...this.waiters.keys()]) w();
  }

  async heartbeat(record: WorkerRecord, jobs: readonly ClaimedJob[]): Promise<HeartbeatResult> {
    if (this.closed) return { cancel: [], lost: [] };
    // Leases are renewed through BullMQ's token-checked extendLocks (the token is the worker id every
    // claim passes): a lock that expired, or that another worker took over, is reported lost.
    const byQueue = new Map<QueueName, string[]>();
    for (const j of jobs) {
      const h = this.held.get(j.id);
      if (!h) continue;
      const ids = byQueue.get(h.queue);
      if (ids) ids.push(h.bullId);
      else byQueue.set(h.queue, [h.bullId]);
    }
    const [, flags, ...failed] = await Promise.all([
      this.conn.hset(`${this.opts.prefix}:workers`, record.id, JSON.stringify(record)),
      jobs.length
        ? this.conn.mget(...jobs.map((j) => `${this.opts.prefix}:cancel:${j.id}`))
        : Promise.resolve([] as Array<string | null>),
      ...[...byQueue].map(async ([queue, ids]) => {
        const lostIds = await this.w(queue)
          .getBackend()
          .extendLocks(
            ids,
            ids.map(() => record.id),
            this.lockMs,
          );
        // A job settled while the renewal was in flight is no longer held: it was not lost.
        return lostIds.map((bullId) => this.publicId(queue, bullId)).filter((id) => this.held.has(id));
      }),
    ]);
    return { cancel: jobs.filter((_, i) => flags[i]).map((j) => j.id), lost: failed.flat() };
  }

  async progress(job: ClaimedJob, _workerId: string, progress: number): Promise<void> {
    const p = Math.max(0, Math.min(100, progress));
    const h = this.held.get(job.id);
    if (h) await this.bull(h).updateProgress(p);
    this.events.emit('progress', job.id, p);
  }

  private take(job: ClaimedJob): Held {
    const h = this.held.get(job.id);
    if (!h) throw new Error(`job ${job.id} is not held by this process`);
    this.held.delete(job.id);
    return h;
  }

  async complete(job: ClaimedJob, workerId: string, result: unknown): Promise<void> {
    await this.completeAndFetch(job, workerId, result, false);
  }

  /**
   * Completes a job; with `fetchNext`, BullMQ leases the queue's next job in the same call (as its own
   * workers do). Runs BullMQ's moveToFinished script with the arguments its backend builds: from a
   * template made by the backend once per queue, worker and attempts, with this job's id, time, result
   * and fetch flag filled in (packing the options per job cost more than the rest of the call). A job
   * with options of its own that change them completes through the backend's own path.
   */
  private async completeAndFetch(
    job: ClaimedJob,
    workerId: string,
    result: unknown,
    fetchNext: boolean,
  ): Promise<Held | undefined> {
    const h = this.take(job);
    const w = this.w(job.queue);
    let next: NextJobData;
    const fast = await this.finish.complete(
      w as never,
      job.queue,
      h.bullId,
      h.json.opts,
      workerId,
      result,
      fetchNext,
    );
    if (fast) next = fast.next;
    else {
      const finishing: Pick<MinimalJob, 'id' | 'opts'> = { id: h.bullId, opts: h.json.opts };
      ({ result: next } = (await w
        .getBackend()
        .moveToCompleted(
          finishing as MinimalJob,
          result ?? null,
          h.json.opts.removeOnComplete ?? this.keep,
          workerId,
          fetchNext,
        )) as { result: NextJobData });
    }
    this.events.emit('completed', job.id, result);
    return fetchNext ? this.leased(job.queue, next) : undefined;
  }

  async fail(job: ClaimedJob, workerId: string, error: string, outcome: FailOutcome): Promise<void> {
    const j = this.bull(this.take(job));
    const err =
      'final' in outcome
        ? new UnrecoverableError(error)
        : new ScheduledRetry(error, Math.max(0, outcome.retryAt - Date.now()));
    await j.moveToFailed(err, workerId, false);
    this.events.emit('failed', job.id, error, 'final' in outcome);
    if (!('final' in outcome)) this.events.emit('enqueued', job.queue);
  }

  async cancelActive(job: ClaimedJob, workerId: string): Promise<void> {
    await this.bull(this.take(job)).moveToFailed(new UnrecoverableError(CANCELLED_REASON), workerId, false);
    await this.conn.del(`${this.opts.prefix}:cancel:${job.id}`);
    this.events.emit('failed', job.id, CANCELLED_REASON, true);
  }

  async release(job: ClaimedJob, workerId: string): Promise<void> {
    // A job someone asked to cancel does not go back: it ends cancelled (it must never run again).
    if (await this.conn.exists(`${this.opts.prefix}:cancel:${job.id}`))
      return this.cancelActive(job, workerId);
    await this.bull(this.take(job)).moveToWait(workerId);
    this.events.emit('enqueued', job.queue);
  }

  async recoverStalled(): Promise<StalledAttempt[]> {
    if (this.closed) return [];
    const out: StalledAttempt[] = [];
    if (this.sweep.usable) {
      for (const queue of QUEUE_NAMES) {
        const rows = await this.sweep.sweep(this.w(queue) as never, {
          runsKey: this.runsKey,
          startedKey: this.startedKey,
          maxStalls: this.opts.maxStalls,
          idPrefix: `${SHORT[queue]}-`,
          cancelPrefix: `${this.opts.prefix}:cancel:`,
          queue,
          error: lostAttemptError(null),
        });
        for (const raw of rows) out.push(this.stalledAttempt(JSON.parse(raw) as AttemptRow));
      }
    } else {
      this.opts.shortcuts.count('bullmq_stalled', false);
      out.push(...(await this.stalledFromEvents()));
    }
    for (const a of out) {
      // Back in its queue though someone asked to cancel it: it is cancelled there instead of running again.
      if (a.cancelled) await this.cancel(a.id);
      // A dead job's event comes when it is next claimed and failed (failDead).
      if (!a.dead) this.events.emit('stalled', a.id, false);
    }
    return out;
  }

  private stalledAttempt(row: AttemptRow): StalledAttempt {
    return {
      id: row.task_id,
      queue: row.queue as QueueName,
      name: row.name,
      attempt: row.attempt,
      enqueuedAt: row.enqueued,
      startedAt: row.started,
      worker: row.worker,
      dead: row.status === 'failed',
      cancelled: row.status === 'cancelled',
    };
  }

  /**
   * Without the sweep: the attempts BullMQ's checker in this process found since the last call, read from
   * the job afterwards. A job claimed again meanwhile reads as its new attempt (its number and start), and
   * a job gone meanwhile (removed, or re-run and pruned) has nothing left to report. A job with no start
   * note was only held (prefetched): no attempt was lost (BullMQ's checker counted a stall all the same).
   */
  private async stalledFromEvents(): Promise<StalledAttempt[]> {
    const found = this.stalledFound.splice(0);
    const out: StalledAttempt[] = [];
    const now = Date.now();
    for (const { queue, bullId } of found) {
      const j = (await this.q(queue).getJob(bullId)) as Bull | undefined;
      if (!j) continue;
      const id = this.publicId(queue, bullId);
      const note = await this.conn.hget(this.startedKey, id);
      if (!note) continue;
      await this.conn.hdel(this.startedKey, id);
      const cancelled = (await this.conn.exists(`${this.opts.prefix}:cancel:${id}`)) === 1;
      const a: StalledAttempt = {
        id,
        queue,
        name: j.name,
        attempt: j.attemptsMade + 1,
        enqueuedAt: j.timestamp,
        startedAt: j.processedOn ?? null,
        // The lock held the worker's token and expired with it.
        worker: null,
        dead: Boolean(j.deferredFailure),
        cancelled: cancelled && !j.deferredFailure,
      };
      await this.recordRun(lostAttemptRow(a, now));
      out.push(a);
    }
    return out;
  }

  async removeWorker(workerId: string): Promise<void> {
    if (!this.closed) await this.conn.hdel(`${this.opts.prefix}:workers`, workerId);
  }

  async close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeWaiters();
    const all = Promise.all([
      ...[...this.workers.values()].map((w) => w.close(true)),
      ...[...this.queues.values()].map((q) => q.close()),
    ]);
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs))]);
    this.blocking?.disconnect();
    this.cancelSub?.disconnect();
    this.conn.disconnect();
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError('QUEUE_UNAVAILABLE', 'the job queue is closed');
  }
}
